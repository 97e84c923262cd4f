package resolver

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

// serveFrom answers one request of a client at addr (its RemoteAddr) with
// token (none when empty).
func serveFrom(h http.Handler, addr, token, path string) int {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.RemoteAddr = addr
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

// Issue 16's miss flood: 30,000 resolves of distinct missing routes at 200
// concurrent without a token must not make real, not-yet-cached routes
// answer 503 while Postgres is up. Both come from the same host; the real
// routes' requests carry a token (TM_RESOLVER_AUTH is off: it only tells the
// clients apart), so their lookups wait in a queue of their own and are
// served in turn with the flood's: they all answer 200.
func TestAMissFloodDoesNotStarveRealRoutes(t *testing.T) {
	if testing.Short() {
		t.Skip("30,000 requests")
	}
	// A pool as large as the bulkhead, as openResolverPool makes it: a
	// permitted lookup never queues for a connection.
	pc, err := pgxpool.ParseConfig(testenv.Postgres(t).Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	pc.MaxConns = DefaultMaxInflight
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	rdb := testenv.Redis(t)
	st := routes.NewStore(pool)
	in := newInstance(t, Options{Store: st, Redis: cache.NewRedis(rdb, time.Minute), // default bulkhead: 32, 25 ms
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
	tenant := testenv.Name(t, "real")
	const realRoutes = 100
	for i := range realRoutes {
		seed(t, st, routes.ActionCreated, routes.Key{Tenant: tenant, Service: "checkout", Env: "prod", Version: fmt.Sprintf("v%d", i)},
			fmt.Sprintf("https://v%d.example", i), true)
	}
	flood := testenv.Name(t, "flood")

	const (
		floodRequests = 30_000
		concurrency   = 200
	)
	var next atomic.Int64
	var mu sync.Mutex
	floodStatus := map[int]int{}
	var wg sync.WaitGroup
	began := time.Now()
	for range concurrency {
		wg.Go(func() {
			local := map[int]int{}
			for {
				i := next.Add(1)
				if i > floodRequests {
					break
				}
				local[serveFrom(in.h, "127.0.0.1:40000", "", ResolvePrefix+flood+"/s/e/v"+fmt.Sprint(i))]++
			}
			mu.Lock()
			for s, n := range local {
				floodStatus[s] += n
			}
			mu.Unlock()
		})
	}

	// The real routes, each once, 10 at a time, while the flood runs.
	for next.Load() < floodRequests/10 {
		time.Sleep(time.Millisecond)
	}
	realStatus := make([]int, realRoutes)
	took := make([]time.Duration, realRoutes)
	var rg sync.WaitGroup
	sem := make(chan struct{}, 10)
	for i := range realRoutes {
		sem <- struct{}{}
		rg.Go(func() {
			defer func() { <-sem }()
			start := time.Now()
			realStatus[i] = serveFrom(in.h, "127.0.0.1:50000", "tm_real-service", ResolvePrefix+tenant+"/checkout/prod/v"+fmt.Sprint(i))
			took[i] = time.Since(start)
		})
	}
	rg.Wait()
	during := next.Load() < floodRequests
	wg.Wait()
	elapsed := time.Since(began)

	bad, ok := map[int]int{}, 0
	for _, s := range realStatus {
		if s != http.StatusOK {
			bad[s]++
		} else {
			ok++
		}
	}
	slices.Sort(took)
	t.Logf("flood: %d distinct missing routes at %d concurrent in %s (%.0f/s): statuses %v",
		floodRequests, concurrency, elapsed.Round(time.Millisecond), floodRequests/elapsed.Seconds(), floodStatus)
	t.Logf("real routes during the flood (all asked before it ended: %v): %d/%d 200; latency p50 %s p99 %s max %s",
		during, ok, realRoutes, took[realRoutes/2].Round(10*time.Microsecond),
		took[realRoutes*99/100].Round(10*time.Microsecond), took[realRoutes-1].Round(10*time.Microsecond))
	if len(bad) > 0 {
		t.Fatalf("real, uncached routes answered %v during the flood, want 200 only", bad)
	}
	if floodStatus[http.StatusOK] > 0 {
		t.Fatalf("a missing route answered 200: %v", floodStatus)
	}
}

// The fair queue serves waiting clients in turn: one lookup of a client
// waits behind at most one lookup of each other client, not behind every
// lookup a flooding client has queued.
func TestTheLookupQueueServesClientsInTurn(t *testing.T) {
	g := &fairGate{bh: bulkhead.New[any](1)}
	const flood, real, a, b = 1, 2, 3, 4
	if !g.acquire(context.Background(), flood, 0) {
		t.Fatal("the idle bulkhead refused a permit")
	}
	order := make(chan string, 10)
	var wg sync.WaitGroup
	queued := func(n int) {
		for {
			g.mu.Lock()
			q := 0
			for _, b := range g.queues {
				q += len(b)
			}
			g.mu.Unlock()
			if q == n {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	for i := range 4 {
		wg.Go(func() {
			if g.acquire(context.Background(), flood, 10*time.Second) {
				order <- "flood"
				g.release()
			}
		})
		queued(i + 1)
	}
	wg.Go(func() {
		if g.acquire(context.Background(), real, 10*time.Second) {
			order <- "real"
			g.release()
		}
	})
	queued(5)
	g.release()
	wg.Wait()
	close(order)
	var got []string
	for c := range order {
		got = append(got, c)
	}
	if want := []string{"flood", "real", "flood", "flood", "flood"}; !slices.Equal(got, want) {
		t.Fatalf("served %v, want %v", got, want)
	}

	// A waiter that gives up leaves the queue; the permit goes back.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if !g.acquire(ctx, a, time.Second) {
		t.Fatal("the idle bulkhead refused a permit")
	}
	if g.acquire(ctx, b, time.Second) {
		t.Fatal("a second permit of a bulkhead of one")
	}
	g.release()
	if !g.bh.TryAcquirePermit() {
		t.Fatal("the permit did not go back to the bulkhead")
	}
}

func TestAClientIsItsAddressAndToken(t *testing.T) {
	r := newTestResolver(t, Options{Store: newMemStore()})
	req := func(addr, token string) *http.Request {
		q := httptest.NewRequest(http.MethodGet, "/", nil)
		q.RemoteAddr = addr
		if token != "" {
			q.Header.Set("Authorization", "Bearer "+token)
		}
		return q
	}
	if r.bucketOf(req("10.0.0.1:1", "")) != r.bucketOf(req("10.0.0.1:2", "")) {
		t.Error("two connections of one host without a token are two clients")
	}
	if r.bucketOf(req("10.0.0.1:1", "")) == r.bucketOf(req("10.0.0.1:1", "svc")) {
		t.Error("a token does not make another client")
	}
	r.clientOf = func(q *http.Request) string { return q.Header.Get("X-Client") }
	a, b := req("10.0.0.1:1", ""), req("10.0.0.1:1", "")
	a.Header.Set("X-Client", "a")
	b.Header.Set("X-Client", "b")
	if r.bucketOf(a) == r.bucketOf(b) {
		t.Error("Options.ClientOf is not used")
	}
}
