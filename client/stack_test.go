package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/resolver"
	"github.com/trafficmanager/trafficmanager/routes"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	testenv.Main(m)
}

// stack is a real resolver (Postgres ledger, kfake events) served on a
// fixed address, so it can be stopped and started again as a restart.
type stack struct {
	t       testing.TB
	pool    *pgxpool.Pool
	st      *routes.Store
	brokers []string
	topic   string
	pub     *events.Publisher
	addr    string
	tenant  string

	res  *resolver.Resolver
	srv  *http.Server
	stop context.CancelFunc
	done chan struct{}
}

func newStack(t testing.TB) *stack {
	t.Helper()
	s := &stack{t: t, pool: testenv.Postgres(t), topic: testenv.Name(t, "route-events"), tenant: testenv.Name(t, "c")}
	s.st = routes.NewStore(s.pool)
	s.brokers = testenv.Kafka(t, s.topic, 3)
	s.pub = events.NewPublisher(s.brokers, s.topic)
	t.Cleanup(func() { _ = s.pub.Close() })
	s.start()
	t.Cleanup(s.shutdown)
	return s
}

// URL is the resolver's base URL.
func (s *stack) URL() string { return "http://" + s.addr }

// start runs a new resolver instance on the stack's address.
func (s *stack) start() {
	t := s.t
	t.Helper()
	reg := prometheus.NewRegistry()
	r, err := resolver.New(resolver.Options{Store: s.st, Metrics: observability.NewResolveMetrics(reg), Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.EnableWatch(resolver.WatchOptions{Feed: resolver.NewLedgerFeed(s.pool), Tail: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	addr := s.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	for attempt := 0; ; attempt++ { // the old instance's port may linger a moment
		if ln, err = net.Listen("tcp", addr); err == nil || attempt == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	s.res, s.stop, s.done = r, cancel, make(chan struct{})
	s.srv = &http.Server{Handler: r.Handler(reg)}
	go func() { _ = s.srv.Serve(ln) }()
	subscribed := make(chan struct{})
	go func() {
		defer close(s.done)
		_ = r.ConsumeEvents(ctx, s.brokers, s.topic, func() { close(subscribed) })
	}()
	select {
	case <-subscribed:
	case <-time.After(15 * time.Second):
		t.Fatal("resolver consumer not subscribed within 15s")
	}
	r.MarkReady()
}

// shutdown stops the instance as a process would: streams closed, server
// shut down, consumer stopped.
func (s *stack) shutdown() {
	if s.res == nil {
		return
	}
	s.res.SetDraining()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	s.stop()
	<-s.done
	s.res.Close()
	s.res = nil
}

func (s *stack) key(service, version string) routes.Key {
	return routes.Key{Tenant: s.tenant, Service: service, Env: "prod", Version: version}
}

// change commits through the real store and publishes the event as the
// write path does (a publish fails while no broker... kfake stays up).
func (s *stack) change(a routes.Action, k routes.Key, url string, active bool) {
	t := s.t
	t.Helper()
	id := uuid.NewString()
	res, err := s.st.Apply(context.Background(), routes.Mutation{Action: a, Key: k, URL: url, Active: active, ChangedBy: "client-test", EventID: id})
	if err != nil {
		t.Fatalf("%s %s: %v", a, k, err)
	}
	if res.Changed {
		if err := s.pub.Publish(context.Background(), events.FromResult(id, a, res, "client-test")); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
}

// eventually polls c until k resolves to want ("" for ErrNotFound) and
// returns how long it took, failing after limit.
func eventually(t testing.TB, c *Client, k routes.Key, want string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got, err := c.Resolve(context.Background(), k.Tenant, k.Service, k.Env, k.Version)
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatalf("resolve %s: %v", k, err)
		}
		if got == want {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s resolves to %q after %v, want %q", k, got, limit, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
