package tracing

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

func TestConfigured(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"no variables leave traces off", nil, false},
		{"an OTLP endpoint turns them on", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4318"}, true},
		{"a traces endpoint turns them on", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://localhost:4318/v1/traces"}, true},
		{"OTEL_TRACES_EXPORTER=otlp turns them on with the default endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{"OTEL_TRACES_EXPORTER=none wins over an endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}, false},
		{"OTEL_SDK_DISABLED=true wins over everything", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, false},
		{"a metrics-only endpoint does not", map[string]string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://x:4318"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Configured(func(k string) string { return tt.env[k] }); got != tt.want {
				t.Errorf("Configured = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestOffInstallsNothing(t *testing.T) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER"} {
		t.Setenv(k, "")
	}
	tr, err := FromEnv(t.Context(), "trafficmanager-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() || Active() || Middleware("x") != nil {
		t.Fatalf("tracing off installed something: enabled %v, active %v", tr.Enabled(), Active())
	}
	if err := tr.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestUnsupportedProtocolFails(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
	if _, err := FromEnv(t.Context(), "trafficmanager-test", nil); err == nil {
		t.Fatal("http/json accepted")
	}
}

func TestFromEnvExportsOverOTLPHTTP(t *testing.T) {
	got := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- fmt.Sprintf("%s %s %s %d", r.Method, r.URL.Path, r.Header.Get("Content-Type"), len(body))
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "")
	tr, err := FromEnv(t.Context(), "trafficmanager-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		otel.SetTracerProvider(noop.NewTracerProvider())
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
	})
	if !tr.Enabled() || !Active() || len(Middleware("x")) != 1 {
		t.Fatal("tracing not on with OTEL_EXPORTER_OTLP_ENDPOINT set")
	}
	_, span := otel.Tracer("test").Start(t.Context(), "one")
	span.End()
	if err := tr.Shutdown(t.Context()); err != nil { // flushes the batch
		t.Fatal(err)
	}
	select {
	case req := <-got:
		if !strings.HasPrefix(req, "POST /v1/traces application/x-protobuf ") {
			t.Fatalf("export request %q", req)
		}
	default:
		t.Fatal("nothing exported")
	}
}

func TestProbesAreNotTraced(t *testing.T) {
	for path, want := range map[string]bool{"/healthz": false, "/readyz": false, "/metrics": false,
		"/health/resilience": false, "/api/v1/routes": true, "/api/v1/resolve/a/b/c/v1": true} {
		if got := traced(httptest.NewRequest(http.MethodGet, path, nil)); got != want {
			t.Errorf("traced(%s) = %v, want %v", path, got, want)
		}
	}
}

func TestSampler(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	parent, span := tp.Tracer("t").Start(t.Context(), "request")
	defer span.End()
	tests := []struct {
		name    string
		sampler string
		ctx     context.Context
		kind    trace.SpanKind
		want    sdktrace.SamplingDecision
	}{
		{"a server span starting a trace is sampled", "", t.Context(), trace.SpanKindServer, sdktrace.RecordAndSample},
		{"a client span inside a trace is sampled", "", parent, trace.SpanKindClient, sdktrace.RecordAndSample},
		{"a driver call outside any trace is dropped", "", t.Context(), trace.SpanKindClient, sdktrace.Drop},
		{"always_off drops a request", "always_off", t.Context(), trace.SpanKindServer, sdktrace.Drop},
		{"traceidratio 0 drops a request", "traceidratio", t.Context(), trace.SpanKindServer, sdktrace.Drop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"OTEL_TRACES_SAMPLER": tt.sampler, "OTEL_TRACES_SAMPLER_ARG": "0"}
			if tt.sampler == "" {
				delete(env, "OTEL_TRACES_SAMPLER_ARG")
			}
			s, err := Sampler(func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			res := s.ShouldSample(sdktrace.SamplingParameters{ParentContext: tt.ctx, TraceID: trace.TraceID{1}, Name: "x", Kind: tt.kind})
			if res.Decision != tt.want {
				t.Errorf("decision %v, want %v", res.Decision, tt.want)
			}
		})
	}
	if _, err := Sampler(func(k string) string { return map[string]string{"OTEL_TRACES_SAMPLER": "jaeger_remote"}[k] }); err == nil {
		t.Error("an unsupported sampler is accepted")
	}
}

func TestGRPCProtocolIsHonoured(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	tr, err := FromEnv(t.Context(), "trafficmanager-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		otel.SetTracerProvider(noop.NewTracerProvider())
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
	})
	if !tr.Enabled() {
		t.Fatal("grpc: tracing off")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_ = tr.Shutdown(ctx) // nothing listens; no span to send
}
