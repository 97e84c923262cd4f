package resolver

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/routes"
)

// instance is one resolver with its HTTP handler, as a process would run it.
type instance struct {
	*Resolver
	h http.Handler
}

func newInstance(t *testing.T, o Options) instance {
	t.Helper()
	reg := prometheus.NewRegistry()
	o.Metrics = observability.NewResolveMetrics(reg)
	r := newTestResolver(t, o)
	return instance{Resolver: r, h: r.Handler(reg)}
}

// get resolves path on the instance: status, X-Cache and the url or error code.
func (in instance) get(t testing.TB, k routes.Key) (int, string, string) {
	t.Helper()
	rec := serve(t, in.h, http.MethodGet, ResolvePrefix+l1Key(k))
	if rec.Code == http.StatusOK {
		var body struct{ URL string }
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("200 body %s: %v", rec.Body, err)
		}
		return rec.Code, rec.Header().Get("X-Cache"), body.URL
	}
	return rec.Code, rec.Header().Get("X-Cache"), decodeError(t, rec.Body.Bytes()).Error.Code
}

func (in instance) expect(t testing.TB, k routes.Key, status int, xcache, urlOrCode string) {
	t.Helper()
	s, c, u := in.get(t, k)
	if s != status || c != xcache || u != urlOrCode {
		t.Fatalf("GET %s = %d %q %q; want %d %q %q", k, s, c, u, status, xcache, urlOrCode)
	}
}

// seed writes a route as the write path's commit step does.
func seed(t testing.TB, st *routes.Store, a routes.Action, k routes.Key, url string, active bool) routes.Result {
	t.Helper()
	res, err := st.Apply(context.Background(), routes.Mutation{Action: a, Key: k, URL: url, Active: active, ChangedBy: "test"})
	if err != nil {
		t.Fatalf("%s %s: %v", a, k, err)
	}
	return res
}

func testKey(t testing.TB, version string) routes.Key {
	return routes.Key{Tenant: testenv.Name(t, "t"), Service: "checkout", Env: "prod", Version: version}
}

func TestTiersOverPostgresAndRedis(t *testing.T) {
	pool, rdb := testenv.Postgres(t), testenv.Redis(t)
	st := routes.NewStore(pool)
	rc := cache.NewRedis(rdb, time.Minute)
	active, inactive, missing := testKey(t, "v1"), testKey(t, "off"), testKey(t, "none")
	seed(t, st, routes.ActionCreated, active, "https://v1.example", true)
	seed(t, st, routes.ActionCreated, inactive, "https://off.example", false)

	a := newInstance(t, Options{Store: st, Redis: rc})
	a.expect(t, active, 200, "miss", "https://v1.example")
	a.expect(t, active, 200, "hit", "https://v1.example")
	a.expect(t, missing, 404, "miss", "route_not_found")
	a.expect(t, missing, 404, "negative-hit", "route_not_found")
	a.expect(t, inactive, 404, "miss", "route_not_found")
	a.expect(t, inactive, 404, "negative-hit", "route_not_found")

	for _, c := range []struct {
		k    routes.Key
		want cache.Entry
	}{
		{active, cache.Entry{Found: true, URL: "https://v1.example", Revision: 1}},
		{missing, cache.Entry{Found: false, Revision: 0}},
		{inactive, cache.Entry{Found: false, Revision: 1}},
	} {
		got, ok, err := rc.Get(context.Background(), c.k)
		if err != nil || !ok || got != c.want {
			t.Fatalf("redis %s = %+v %v %v, want %+v", cache.Key(c.k), got, ok, err, c.want)
		}
		if ttl := rdb.PTTL(context.Background(), cache.Key(c.k)).Val(); ttl <= 0 {
			t.Fatalf("redis %s has no TTL", cache.Key(c.k))
		}
	}

	// A second instance with an empty L1 answers from Redis, not Postgres.
	b := newInstance(t, Options{Store: st, Redis: rc})
	b.expect(t, active, 200, "hit", "https://v1.example")
	b.expect(t, missing, 404, "negative-hit", "route_not_found")
	b.expect(t, inactive, 404, "negative-hit", "route_not_found")
	b.expect(t, active, 200, "hit", "https://v1.example")
	if q, r := counter(b.m.DBQueries), counter(b.m.TierHits.WithLabelValues("redis")); q != 0 || r != 3 {
		t.Fatalf("second instance: %v db queries and %v redis hits, want 0 and 3", q, r)
	}
}

func TestTTLEndsAnAnswerWithoutAnEvent(t *testing.T) {
	pool, rdb := testenv.Postgres(t), testenv.Redis(t)
	st := routes.NewStore(pool)
	k := testKey(t, "v1")
	seed(t, st, routes.ActionCreated, k, "https://old.example", true)
	in := newInstance(t, Options{Store: st, Redis: cache.NewRedis(rdb, time.Minute),
		PositiveTTL: 300 * time.Millisecond, NegativeTTL: 300 * time.Millisecond})

	in.expect(t, k, 200, "miss", "https://old.example")
	seed(t, st, routes.ActionUpdated, k, "https://new.example", false) // no event published
	in.expect(t, k, 200, "hit", "https://old.example")
	time.Sleep(400 * time.Millisecond)
	in.expect(t, k, 200, "miss", "https://new.example")
}

func TestConcurrentMissesCostOnePostgresQuery(t *testing.T) {
	st := routes.NewStore(testenv.Postgres(t))
	k := testKey(t, "v1")
	seed(t, st, routes.ActionCreated, k, "https://v1.example", true)
	counting := &countingLookup{Lookup: st}
	in := newInstance(t, Options{Store: counting, Redis: cache.NewRedis(testenv.Redis(t), time.Minute)})

	var wg sync.WaitGroup
	start := make(chan struct{})
	statuses := make(chan int, 50)
	for range 50 {
		wg.Go(func() {
			<-start
			statuses <- serve(t, in.h, http.MethodGet, ResolvePrefix+l1Key(k)).Code
		})
	}
	close(start)
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 200 {
			t.Fatalf("status %d", s)
		}
	}
	if n := counting.n.Load(); n != 1 {
		t.Fatalf("50 concurrent misses made %d Postgres queries, want 1", n)
	}
}

func TestMissStormOverPostgresIsBounded(t *testing.T) {
	st := routes.NewStore(testenv.Postgres(t))
	in := newInstance(t, Options{Store: st, MaxInflight: 2, InflightWait: 2 * time.Millisecond})
	tenant := testenv.Name(t, "storm")

	const n = 10_000
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	began := time.Now()
	for i := range n {
		wg.Go(func() {
			s := serve(t, in.h, http.MethodGet, ResolvePrefix+tenant+"/s/e/"+fmt.Sprintf("v%d", i)).Code
			mu.Lock()
			statuses[s]++
			mu.Unlock()
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the miss storm hangs")
	}
	t.Logf("%d misses on distinct keys in %v: statuses %v", n, time.Since(began), statuses)
	if statuses[404] == 0 || statuses[503] == 0 || statuses[404]+statuses[503] != n {
		t.Fatalf("statuses %v, want some 404 and some 503 only", statuses)
	}
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// hangingAddr returns a loopback address that accepts connections and never answers.
func hangingAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func TestRedisDownIsServedFromPostgres(t *testing.T) {
	for _, c := range []struct {
		name string
		addr func(*testing.T) string
	}{
		{"nothing listens", deadAddr},
		{"it accepts and never answers", hangingAddr},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := routes.NewStore(testenv.Postgres(t))
			k := testKey(t, "v1")
			seed(t, st, routes.ActionCreated, k, "https://v1.example", true)
			rdb := redis.NewClient(RedisOptions(&redis.Options{Addr: c.addr(t)}))
			t.Cleanup(func() { rdb.Close() })
			in := newInstance(t, Options{Store: st, Redis: cache.NewRedis(rdb, time.Minute)})

			began := time.Now()
			in.expect(t, k, 200, "miss", "https://v1.example")
			if d := time.Since(began); d > time.Second {
				t.Fatalf("a miss with Redis down took %v: Redis calls are not bounded", d)
			}
			in.expect(t, k, 200, "hit", "https://v1.example")
			for i := range 5 { // misses until the breaker opens
				in.expect(t, testKey(t, fmt.Sprintf("m%d", i)), 404, "miss", "route_not_found")
			}
			if s := in.Resilience().CircuitBreakers["redis"].State; s != "open" {
				t.Fatalf("redis breaker %s, want open", s)
			}
			began = time.Now()
			for i := range 20 {
				in.expect(t, testKey(t, fmt.Sprintf("n%d", i)), 404, "miss", "route_not_found")
			}
			if per := time.Since(began) / 20; per > 40*time.Millisecond {
				t.Fatalf("a miss with the Redis breaker open takes %v", per)
			}
		})
	}
}

func TestPostgresDownServesStaleElse503(t *testing.T) {
	base := testenv.Postgres(t)
	pool, err := pgxpool.NewWithConfig(context.Background(), base.Config())
	if err != nil {
		t.Fatal(err)
	}
	st := routes.NewStore(pool)
	k := testKey(t, "v1")
	seed(t, st, routes.ActionCreated, k, "https://v1.example", true)
	warm := newInstance(t, Options{Store: st, PositiveTTL: 200 * time.Millisecond})
	warm.expect(t, k, 200, "miss", "https://v1.example")

	pool.Close() // Postgres is gone for this instance
	time.Sleep(250 * time.Millisecond)
	warm.expect(t, k, 200, "stale", "https://v1.example")
	warm.expect(t, testKey(t, "other"), 503, "", "unavailable")

	cold, err := pgxpool.New(context.Background(), "postgres://tm@"+deadAddr(t)+"/tm?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cold.Close)
	newInstance(t, Options{Store: routes.NewStore(cold)}).expect(t, k, 503, "", "unavailable")
}
