package resolver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/trafficmanager/trafficmanager/routes"
)

func benchResolver(b *testing.B) (*Resolver, routes.Key) {
	b.Helper()
	gin.SetMode(gin.ReleaseMode)
	st := newMemStore()
	k := routes.Key{Tenant: "acme", Service: "checkout", Env: "prod", Version: "v1.2.3"}
	st.put(k, "https://checkout.acme.example/v1", true)
	r, err := New(Options{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.Close)
	if a, err := r.Resolve(context.Background(), k); err != nil || a.Source() != SourceMiss {
		b.Fatalf("warm-up resolve: %+v, %v", a, err)
	}
	return r, k
}

// BenchmarkResolveL1Hit measures the in-process lookup of a fresh L1 entry.
func BenchmarkResolveL1Hit(b *testing.B) {
	r, k := benchResolver(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		a, err := r.Resolve(ctx, k)
		if err != nil || a.Source() != SourceHit {
			b.Fatalf("resolve: %+v, %v", a, err)
		}
	}
}

// BenchmarkResolveL1HitParallel is the same lookup from every P at once.
func BenchmarkResolveL1HitParallel(b *testing.B) {
	r, k := benchResolver(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if a, err := r.Resolve(ctx, k); err != nil || a.Source() != SourceHit {
				b.Errorf("resolve: %+v, %v", a, err)
				return
			}
		}
	})
}

// BenchmarkHandlerL1Hit measures a resolve request through the Gin engine,
// recorder and request included.
func BenchmarkHandlerL1Hit(b *testing.B) {
	r, _ := benchResolver(b)
	h := r.Handler(nil)
	req := httptest.NewRequest(http.MethodGet, "/api/v1/resolve/acme/checkout/prod/v1.2.3", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Header().Get("X-Cache") != "hit" {
			b.Fatalf("status %d, X-Cache %q", rec.Code, rec.Header().Get("X-Cache"))
		}
	}
}

// discardWriter is a reusable ResponseWriter, so the benchmark below counts
// the handler's own allocations only.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// BenchmarkHandlerL1HitNoRecorder is BenchmarkHandlerL1Hit without the
// recorder's allocations: what the Gin engine and the handler cost.
func BenchmarkHandlerL1HitNoRecorder(b *testing.B) {
	r, _ := benchResolver(b)
	h := r.Handler(nil)
	req := httptest.NewRequest(http.MethodGet, "/api/v1/resolve/acme/checkout/prod/v1.2.3", nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		w.code = 0
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	}
}
