package resolver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/trafficmanager/trafficmanager/routes"
)

// memSplitStore adds splits to memStore.
type memSplitStore struct {
	*memStore
	splits map[routes.SplitKey]routes.Split
}

func (s *memSplitStore) SplitState(_ context.Context, k routes.SplitKey) (routes.Split, bool, error) {
	sp, ok := s.splits[k]
	return sp, ok, nil
}

func (s *memSplitStore) ActiveVersions(_ context.Context, k routes.SplitKey) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for rk, r := range s.routes {
		if rk.Tenant == k.Tenant && rk.Service == k.Service && rk.Env == k.Env && r.IsActive {
			out = append(out, rk.Version)
		}
	}
	return out, nil
}

func benchSplitResolver(b *testing.B) (*Resolver, routes.SplitKey) {
	b.Helper()
	gin.SetMode(gin.ReleaseMode)
	st := &memSplitStore{memStore: newMemStore(), splits: map[routes.SplitKey]routes.Split{}}
	sk := routes.SplitKey{Tenant: "acme", Service: "checkout", Env: "prod"}
	st.put(sk.Route("v1.2.3"), "https://checkout.acme.example/v1", true)
	st.put(sk.Route("v1.3.0"), "https://checkout.acme.example/v2", true)
	w := routes.Weights{"v1.2.3": 90, "v1.3.0": 10}
	st.splits[sk] = routes.Split{Tenant: sk.Tenant, Service: sk.Service, Env: sk.Env, Weights: w, Revision: 1,
		Slots: routes.RebalanceSlots(nil, nil, w)}
	r, err := New(Options{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.Close)
	if a, err := r.ResolveSplit(context.Background(), sk, "warm"); err != nil || a.Source() != SourceMiss {
		b.Fatalf("warm-up resolve: %+v, %v", a, err)
	}
	return r, sk
}

// BenchmarkResolveSplitL1Hit is the unversioned lookup of a fresh L1
// entry with a routing key: one L1 read, one hash, one table index.
// Compare with BenchmarkResolveL1Hit (the budget is 1.2x).
func BenchmarkResolveSplitL1Hit(b *testing.B) {
	r, sk := benchSplitResolver(b)
	ctx := context.Background()
	key := "acme/checkout/prod"
	b.ReportAllocs()
	for b.Loop() {
		a, err := r.resolveSplit(ctx, key, sk, "user-1234567")
		if err != nil || a.Source() != SourceHit {
			b.Fatalf("resolve: %+v, %v", a, err)
		}
	}
}

// BenchmarkResolveSplitL1HitRandom is the same without a routing key (a
// random slot).
func BenchmarkResolveSplitL1HitRandom(b *testing.B) {
	r, sk := benchSplitResolver(b)
	ctx := context.Background()
	key := "acme/checkout/prod"
	b.ReportAllocs()
	for b.Loop() {
		a, err := r.resolveSplit(ctx, key, sk, "")
		if err != nil || a.Source() != SourceHit {
			b.Fatalf("resolve: %+v, %v", a, err)
		}
	}
}

// BenchmarkHandlerSplitL1Hit is BenchmarkHandlerL1HitNoRecorder for the
// unversioned resolve with X-Route-Key.
func BenchmarkHandlerSplitL1Hit(b *testing.B) {
	r, _ := benchSplitResolver(b)
	h := r.Handler(nil)
	req := httptest.NewRequest(http.MethodGet, "/api/v1/resolve/acme/checkout/prod", nil)
	req.Header.Set(RouteKeyHeader, "user-1234567")
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
