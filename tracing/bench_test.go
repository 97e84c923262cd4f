package tracing_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/trafficmanager/trafficmanager/resolver"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/tracing"
)

// The resolve hot path with traces off must cost what it did before
// tracing existed: cmd builds the handler with Middleware(...), which is
// empty when off, so BenchmarkResolveHandler/off equals resolver's
// BenchmarkHandlerL1HitNoRecorder. /on shows what a traced request costs
// (otelgin's span through the batch processor into a no-op exporter). Run:
//
//	go test ./tracing -run '^$' -bench ResolveHandler -benchmem

type oneRoute struct{ r routes.Route }

func (s oneRoute) Get(context.Context, routes.Key) (routes.Route, error) { return s.r, nil }

type discard struct {
	h    http.Header
	code int
}

func (w *discard) Header() http.Header         { return w.h }
func (w *discard) Write(b []byte) (int, error) { return len(b), nil }
func (w *discard) WriteHeader(code int)        { w.code = code }

func BenchmarkResolveHandler(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	k := routes.Key{Tenant: "acme", Service: "checkout", Env: "prod", Version: "v1.2.3"}
	store := oneRoute{routes.Route{Tenant: k.Tenant, Service: k.Service, Env: k.Env, Version: k.Version,
		URL: "https://checkout.acme.example/v1", IsActive: true, Revision: 1}}
	run := func(b *testing.B, build func(*resolver.Resolver) http.Handler) {
		r, err := resolver.New(resolver.Options{Store: store})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(r.Close)
		h := build(r)
		req := httptest.NewRequest(http.MethodGet, resolver.ResolvePrefix+"acme/checkout/prod/v1.2.3", nil)
		w := &discard{h: http.Header{}}
		h.ServeHTTP(w, req) // warm the L1
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			w.code = 0
			h.ServeHTTP(w, req)
			if w.code != http.StatusOK {
				b.Fatalf("status %d", w.code)
			}
		}
	}
	b.Run("baseline", func(b *testing.B) { // as before tracing: no middleware argument
		run(b, func(r *resolver.Resolver) http.Handler { return r.Handler(nil) })
	})
	b.Run("off", func(b *testing.B) { // as cmd builds it with no OTEL_* variables
		if tracing.Active() {
			b.Fatal("tracing is active without OTEL_* variables")
		}
		mw := tracing.Middleware("trafficmanager-resolver")
		if mw != nil {
			b.Fatal("middleware installed with tracing off")
		}
		run(b, func(r *resolver.Resolver) http.Handler { return r.Handler(nil, mw...) })
	})
	b.Run("on", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
		tracing.Install(tp)
		b.Cleanup(func() {
			otel.SetTracerProvider(noop.NewTracerProvider())
			otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
		})
		run(b, func(r *resolver.Resolver) http.Handler {
			return r.Handler(nil, tracing.Middleware("trafficmanager-resolver")...)
		})
	})
}
