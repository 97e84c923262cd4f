package resolver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/routes"
)

// These tests run the tiered lookup over an in-memory store; the ones in
// integration_test.go run it over Postgres, Redis and Kafka.

func key(v string) routes.Key {
	return routes.Key{Tenant: "acme", Service: "checkout", Env: "prod", Version: v}
}

func newTestResolver(t *testing.T, o Options) *Resolver {
	t.Helper()
	if o.Logger == nil {
		o.Logger = zaptest.NewLogger(t)
	}
	if o.Metrics == nil {
		o.Metrics = observability.NewResolveMetrics(prometheus.NewRegistry())
	}
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func mustResolve(t *testing.T, r *Resolver, k routes.Key) Answer {
	t.Helper()
	a, err := r.Resolve(context.Background(), k)
	if err != nil {
		t.Fatalf("resolve %s: %v", k, err)
	}
	return a
}

func expect(t *testing.T, a Answer, found bool, url string, src Source) {
	t.Helper()
	if a.Found() != found || a.URL() != url || a.Source() != src {
		t.Fatalf("answer = found %v url %q source %s; want found %v url %q source %s",
			a.Found(), a.URL(), a.Source(), found, url, src)
	}
	if found && string(a.Body()) != fmt.Sprintf(`{"url":%q}`, url) {
		t.Fatalf("body = %s", a.Body())
	}
}

func TestResolveCachesPositiveAndNegativeAnswers(t *testing.T) {
	st := newMemStore()
	st.put(key("v1"), "https://v1.example", true)
	st.put(key("off"), "https://off.example", false)
	r := newTestResolver(t, Options{Store: st})

	steps := []struct {
		name  string
		key   routes.Key
		found bool
		url   string
		src   Source
		calls int64
	}{
		{"a first read of an active route is a miss", key("v1"), true, "https://v1.example", SourceMiss, 1},
		{"a second read is an L1 hit", key("v1"), true, "https://v1.example", SourceHit, 1},
		{"a missing route is a miss", key("nope"), false, "", SourceMiss, 2},
		{"a missing route read again is a negative hit", key("nope"), false, "", SourceNegativeHit, 2},
		{"an inactive route is not found", key("off"), false, "", SourceMiss, 3},
		{"an inactive route read again is a negative hit", key("off"), false, "", SourceNegativeHit, 3},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			expect(t, mustResolve(t, r, s.key), s.found, s.url, s.src)
			if got := st.calls.Load(); got != s.calls {
				t.Fatalf("store calls = %d, want %d", got, s.calls)
			}
		})
	}
	if a := mustResolve(t, r, key("off")); a.Revision() != 1 {
		t.Fatalf("negative answer of an inactive route carries revision %d, want 1", a.Revision())
	}
	m := r.m
	for name, c := range map[string]struct {
		got  float64
		want float64
	}{
		"hits":          {counter(m.CacheHit), 1},
		"negative hits": {counter(m.NegativeCacheHit), 3},
		"misses":        {counter(m.CacheMiss), 3},
		"db queries":    {counter(m.DBQueries), 3},
		"l1 tier hits":  {counter(m.TierHits.WithLabelValues("l1")), 4},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", name, c.got, c.want)
		}
	}
}

func TestResolveRejectsBadNamesWithoutALookup(t *testing.T) {
	st := newMemStore()
	r := newTestResolver(t, Options{Store: st})
	_, err := r.Resolve(context.Background(), routes.Key{Tenant: "Acme", Service: "s", Env: "e", Version: "v"})
	var inv *routes.InvalidError
	if !errors.As(err, &inv) || inv.Field != "tenant" {
		t.Fatalf("err = %v, want an invalid tenant", err)
	}
	if st.calls.Load() != 0 {
		t.Fatal("a bad name reached the store")
	}
}

func TestAnswersExpireAfterTheirTTL(t *testing.T) {
	st := newMemStore()
	st.put(key("v1"), "https://old.example", true)
	r := newTestResolver(t, Options{Store: st, PositiveTTL: 500 * time.Millisecond, NegativeTTL: 100 * time.Millisecond})

	expect(t, mustResolve(t, r, key("v1")), true, "https://old.example", SourceMiss)
	expect(t, mustResolve(t, r, key("nope")), false, "", SourceMiss)
	st.put(key("v1"), "https://new.example", true) // no event: only the TTL ends the old answer
	st.put(key("nope"), "https://created.example", true)
	expect(t, mustResolve(t, r, key("v1")), true, "https://old.example", SourceHit)

	time.Sleep(150 * time.Millisecond) // past the negative TTL only
	expect(t, mustResolve(t, r, key("nope")), true, "https://created.example", SourceMiss)
	expect(t, mustResolve(t, r, key("v1")), true, "https://old.example", SourceHit)

	time.Sleep(400 * time.Millisecond) // past the positive TTL
	expect(t, mustResolve(t, r, key("v1")), true, "https://new.example", SourceMiss)
}

func TestInvalidateDropsTheAnswerAndIgnoresOlderEvents(t *testing.T) {
	st := newMemStore()
	st.put(key("v1"), "https://r1.example", true)
	r := newTestResolver(t, Options{Store: st})
	ctx := context.Background()

	expect(t, mustResolve(t, r, key("v1")), true, "https://r1.example", SourceMiss)
	st.put(key("v1"), "https://r2.example", true) // revision 2
	r.Invalidate(ctx, key("v1"), 2)
	a := mustResolve(t, r, key("v1"))
	expect(t, a, true, "https://r2.example", SourceMiss)
	if a.Revision() != 2 {
		t.Fatalf("revision = %d, want 2", a.Revision())
	}

	calls := st.calls.Load()
	r.Invalidate(ctx, key("v1"), 1) // a late event for an older revision
	r.Invalidate(ctx, key("v1"), 2) // a duplicate of the event already applied
	expect(t, mustResolve(t, r, key("v1")), true, "https://r2.example", SourceHit)
	if st.calls.Load() != calls {
		t.Fatal("an old or duplicate event evicted a current answer")
	}

	r.Invalidate(ctx, key("nope"), 1) // an event for a key this instance never read
	expect(t, mustResolve(t, r, key("nope")), false, "", SourceMiss)
}

// A read that began before a change must not put its older answer back after
// the change's event, whether or not a newer read finished first.
func TestAnOlderReadNeverReplacesANewerRevision(t *testing.T) {
	for _, newerReadFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("newer read finishes first: %v", newerReadFirst), func(t *testing.T) {
			st := newMemStore()
			st.put(key("v1"), "https://r1.example", true)
			r := newTestResolver(t, Options{Store: st})
			ctx := context.Background()

			gate := make(chan struct{})
			st.mu.Lock()
			st.gate = gate
			st.mu.Unlock()
			old := make(chan Answer)
			go func() { a, _ := r.Resolve(ctx, key("v1")); old <- a }()
			waitFor(t, func() bool { return st.held.Load() == 1 }) // the read holds revision 1

			st.mu.Lock()
			st.gate = nil
			st.mu.Unlock()
			st.put(key("v1"), "https://r2.example", true)
			r.Invalidate(ctx, key("v1"), 2)

			if newerReadFirst {
				expect(t, mustResolve(t, r, key("v1")), true, "https://r2.example", SourceMiss)
			}
			close(gate)
			if a := <-old; a.URL() != "https://r1.example" {
				t.Fatalf("the read that began before the change answered %q", a.URL())
			}
			a := mustResolve(t, r, key("v1"))
			if a.URL() != "https://r2.example" || a.Revision() != 2 {
				t.Fatalf("after the change: %q revision %d, want r2 revision 2", a.URL(), a.Revision())
			}
		})
	}
}

func TestConcurrentMissesOfOneKeyCostOneQuery(t *testing.T) {
	st := newMemStore()
	st.put(key("v1"), "https://v1.example", true)
	st.delay = 100 * time.Millisecond
	counting := &countingLookup{Lookup: st}
	r := newTestResolver(t, Options{Store: counting})

	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			a, err := r.Resolve(context.Background(), key("v1"))
			if err == nil && a.URL() != "https://v1.example" {
				err = fmt.Errorf("url %q", a.URL())
			}
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := counting.n.Load(); got != 1 {
		t.Fatalf("%d concurrent misses made %d queries, want 1", n, got)
	}
	if got := counter(r.m.DBQueries); got != 1 {
		t.Fatalf("resolve_db_queries_total = %v, want 1", got)
	}
}

func TestAMissStormIsBoundedAndFailsFast(t *testing.T) {
	st := newMemStore()
	st.delay = 20 * time.Millisecond
	const maxInflight = 4
	r := newTestResolver(t, Options{Store: st, MaxInflight: maxInflight, InflightWait: 5 * time.Millisecond})

	const n = 10_000
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]int{}
	began := time.Now()
	for i := range n {
		wg.Go(func() {
			_, err := r.Resolve(context.Background(), key(fmt.Sprintf("v%d", i)))
			outcome := "answered"
			if errors.Is(err, ErrUnavailable) {
				outcome = "unavailable"
			} else if err != nil {
				outcome = err.Error()
			}
			mu.Lock()
			outcomes[outcome]++
			mu.Unlock()
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the miss storm hangs")
	}
	t.Logf("%d misses on distinct keys in %v: %v; peak concurrent queries %d",
		n, time.Since(began), outcomes, st.peak.Load())
	if outcomes["unavailable"] == 0 || outcomes["answered"] == 0 || len(outcomes) != 2 {
		t.Fatalf("outcomes = %v, want some answered and some unavailable", outcomes)
	}
	if st.peak.Load() > maxInflight {
		t.Fatalf("peak concurrent queries %d > MaxInflight %d", st.peak.Load(), maxInflight)
	}
	if got := counter(r.m.Rejected); got != float64(outcomes["unavailable"]) {
		t.Fatalf("resolve_rejected_total = %v, want %d", got, outcomes["unavailable"])
	}
}

func TestPostgresDownServesStaleAnswersElseUnavailable(t *testing.T) {
	st := newMemStore()
	st.put(key("v1"), "https://v1.example", true)
	r := newTestResolver(t, Options{Store: st, PositiveTTL: 50 * time.Millisecond, NegativeTTL: 50 * time.Millisecond,
		StaleFor: 300 * time.Millisecond})
	expect(t, mustResolve(t, r, key("v1")), true, "https://v1.example", SourceMiss)
	expect(t, mustResolve(t, r, key("nope")), false, "", SourceMiss)

	st.setErr(errDown)
	time.Sleep(60 * time.Millisecond)
	expect(t, mustResolve(t, r, key("v1")), true, "https://v1.example", SourceStale)
	expect(t, mustResolve(t, r, key("nope")), false, "", SourceStale)
	if _, err := r.Resolve(context.Background(), key("cold")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a key in no cache with Postgres down: err = %v, want ErrUnavailable", err)
	}

	// Enough failures open the breaker: then Postgres is not even asked.
	for range 10 {
		mustResolve(t, r, key("v1"))
	}
	if s := r.Resilience().CircuitBreakers["postgres"].State; s != "open" {
		t.Fatalf("postgres breaker %s, want open", s)
	}
	calls := st.calls.Load()
	expect(t, mustResolve(t, r, key("v1")), true, "https://v1.example", SourceStale)
	if st.calls.Load() != calls {
		t.Fatal("a lookup reached Postgres through an open breaker")
	}

	time.Sleep(300 * time.Millisecond) // past the stale grace
	if _, err := r.Resolve(context.Background(), key("v1")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("past the stale grace: err = %v, want ErrUnavailable", err)
	}
}

func TestWarmLoadsRecentRoutes(t *testing.T) {
	st := newMemStore()
	st.put(key("a"), "https://a.example", true)
	st.put(key("b"), "https://b.example", true)
	st.put(key("off"), "https://off.example", false)
	r := newTestResolver(t, Options{Store: st})
	if err := r.Warm(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
	expect(t, mustResolve(t, r, key("a")), true, "https://a.example", SourceHit)
	expect(t, mustResolve(t, r, key("b")), true, "https://b.example", SourceHit)
	if st.calls.Load() != 0 {
		t.Fatal("warmed routes reached the store")
	}
}

func TestWithoutL1AnswersEveryReadGoesToTheStore(t *testing.T) {
	st := newMemStore()
	st.put(key("v1"), "https://v1.example", true)
	r := newTestResolver(t, Options{Store: st, L1Entries: -1})
	expect(t, mustResolve(t, r, key("v1")), true, "https://v1.example", SourceMiss)
	expect(t, mustResolve(t, r, key("v1")), true, "https://v1.example", SourceMiss)
	if st.calls.Load() != 2 {
		t.Fatalf("store calls = %d, want 2", st.calls.Load())
	}
}

// counter reads a counter's value (prometheus/testutil would add a module).
func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
