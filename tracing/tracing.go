// Package tracing turns on OpenTelemetry traces from the standard OTEL_*
// variables. Traces are off unless an OTLP endpoint is configured
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or
// OTEL_TRACES_EXPORTER=otlp; off, nothing is installed: the global tracer
// provider stays OpenTelemetry's no-op one and no middleware, driver hook or
// interceptor is added, so the resolve path runs exactly as without this
// package.
//
// The tracer provider and the propagators are the OpenTelemetry globals on
// purpose (an exception to "no package-level singletons"): the Temporal
// SDK's interceptor, otelgin, otelpgx and redisotel all default to them, and
// so do the Kafka header helpers in events.
package tracing

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/exaring/otelpgx"
	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/zap"
)

// Tracing is the process's trace pipeline; the zero value and nil are
// "off", and every method is then a no-op.
type Tracing struct {
	tp *sdktrace.TracerProvider
}

// Configured reports whether the OTEL_* variables in getenv ask for traces:
// an OTLP endpoint is set or OTEL_TRACES_EXPORTER=otlp, and neither
// OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none says otherwise.
func Configured(getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))) {
	case "none":
		return false
	case "otlp":
		return true
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// FromEnv starts exporting traces when Configured(os.Getenv), as service
// (OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override it), and
// installs the provider and the W3C tracecontext and baggage propagators as
// the globals. Otherwise it returns an off Tracing and installs nothing.
// Call Shutdown before exit to flush the spans still batched.
func FromEnv(ctx context.Context, service string, log *zap.Logger) (*Tracing, error) {
	if !Configured(os.Getenv) {
		return &Tracing{}, nil
	}
	smp, err := Sampler(os.Getenv) // checked before the exporter dials anything
	if err != nil {
		return nil, err
	}
	exp, protocol, err := newExporter(ctx)
	if err != nil {
		return nil, err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES win over the default name
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithProcessPID(),
	)
	if err != nil {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	// The batch processor reads OTEL_BSP_* itself.
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res), sdktrace.WithSampler(smp))
	Install(tp)
	if log != nil {
		log.Info("tracing on", zap.String("protocol", protocol), zap.String("service", serviceName(res, service)))
	}
	return &Tracing{tp: tp}, nil
}

// Install makes tp the global tracer provider and W3C tracecontext + baggage
// the global propagators (tests install an in-memory provider with it).
func Install(tp *sdktrace.TracerProvider) {
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
}

// newExporter builds the OTLP exporter of OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL:
// http/protobuf (the default) or grpc. The exporters read the endpoint,
// headers, timeout and TLS variables themselves.
func newExporter(ctx context.Context) (sdktrace.SpanExporter, string, error) {
	protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if protocol == "" {
		protocol = "http/protobuf"
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch protocol {
	case "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, "", fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%s: only http/protobuf and grpc are supported", protocol)
	}
	if err != nil {
		return nil, "", fmt.Errorf("OTLP trace exporter (%s): %w", protocol, err)
	}
	return exp, protocol, nil
}

func serviceName(res *resource.Resource, fallback string) string {
	if v, ok := res.Set().Value("service.name"); ok {
		return v.AsString()
	}
	return fallback
}

// Enabled reports whether traces are exported.
func (t *Tracing) Enabled() bool { return t != nil && t.tp != nil }

// Shutdown flushes the batched spans and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// Active reports whether an SDK tracer provider is installed (FromEnv
// with traces on, or a test's Install): the wiring in cmd adds middleware,
// driver hooks and interceptors only then.
func Active() bool {
	_, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider)
	return ok
}

// Middleware returns otelgin's middleware, which starts a server span per
// request ("METHOD /route/:pattern") and puts it in the request context;
// nil when not Active, so no request pays for it. Probes and /metrics are
// not traced.
func Middleware(server string) []gin.HandlerFunc {
	if !Active() {
		return nil
	}
	return []gin.HandlerFunc{otelgin.Middleware(server, otelgin.WithFilter(traced))}
}

// traced leaves probes and scrapes out of the traces: a load balancer's
// /readyz every second would outnumber the requests worth reading.
func traced(r *http.Request) bool {
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics", "/health/resilience":
		return false
	}
	return true
}

// Pgx sets otelpgx's tracer on pc's connections when Active: a span per
// query, batch and connect.
func Pgx(pc *pgxpool.Config) {
	if Active() {
		pc.ConnConfig.Tracer = otelpgx.NewTracer()
	}
}

// Redis adds a span per command and pipeline of rdb when Active.
func Redis(rdb *redis.Client) error {
	if !Active() || rdb == nil {
		return nil
	}
	if err := redisotel.InstrumentTracing(rdb); err != nil {
		return fmt.Errorf("trace redis: %w", err)
	}
	return nil
}
