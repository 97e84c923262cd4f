package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/routes"
)

// propagationBound is API.md's: a resolver stops serving the old answer
// within 1 s of the mutation's response; the client is held to the same.
const propagationBound = time.Second

func TestClientFollowsChangesWithinThePropagationBound(t *testing.T) {
	s := newStack(t)
	v1, missing := s.key("checkout", "v1"), s.key("checkout", "v9")
	s.change(routes.ActionCreated, v1, "https://one.example", true)
	c := New(s.URL(), WithLogger(zaptest.NewLogger(t)))
	defer c.Close()
	ctx := context.Background()

	if u, err := c.Resolve(ctx, v1.Tenant, v1.Service, v1.Env, v1.Version); err != nil || u != "https://one.example" {
		t.Fatalf("first resolve = %q %v", u, err)
	}
	if _, err := c.Resolve(ctx, missing.Tenant, missing.Service, missing.Env, missing.Version); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a missing route = %v, want ErrNotFound", err)
	}
	for i := 0; i < 3; i++ {
		_, _ = c.Resolve(ctx, v1.Tenant, v1.Service, v1.Env, v1.Version)
		_, _ = c.Resolve(ctx, missing.Tenant, missing.Service, missing.Env, missing.Version)
	}
	if hits, misses, _, _ := c.Stats(); hits != 6 || misses != 2 {
		t.Fatalf("%d hits and %d misses, want 6 and 2: answers, negative too, are cached", hits, misses)
	}

	s.change(routes.ActionUpdated, v1, "https://two.example", true)
	t.Logf("update seen after %v", eventually(t, c, v1, "https://two.example", propagationBound))
	s.change(routes.ActionDeactivated, v1, "", false)
	t.Logf("deactivation seen after %v", eventually(t, c, v1, "", propagationBound))
	s.change(routes.ActionCreated, missing, "https://nine.example", true)
	t.Logf("creation of a cached miss seen after %v", eventually(t, c, missing, "https://nine.example", propagationBound))

	// A route first created after the stream opened is known without a request.
	fresh := s.key("billing", "v1")
	s.change(routes.ActionCreated, fresh, "https://billing.example", true)
	_, m0, _, _ := c.Stats()
	eventually(t, c, fresh, "https://billing.example", propagationBound)
	if _, m1, _, _ := c.Stats(); m1 != m0 {
		t.Logf("note: %d misses for a route the stream reported (it raced the event)", m1-m0)
	}
}

func TestClientSurvivesAResolverRestartAndMissesNothing(t *testing.T) {
	s := newStack(t)
	var keys []routes.Key
	for i := 0; i < 5; i++ {
		k := s.key("checkout", fmt.Sprintf("v%d", i))
		keys = append(keys, k)
		s.change(routes.ActionCreated, k, "https://old.example", true)
	}
	c := New(s.URL(), WithLogger(zaptest.NewLogger(t)), WithBackoff(50*time.Millisecond, 500*time.Millisecond))
	defer c.Close()
	for _, k := range keys {
		eventually(t, c, k, "https://old.example", time.Second)
	}

	s.shutdown()
	// Changes while no resolver runs: only the ledger has them.
	for i, k := range keys {
		if i%2 == 0 {
			s.change(routes.ActionUpdated, k, fmt.Sprintf("https://new%d.example", i), true)
		} else {
			s.change(routes.ActionDeactivated, k, "", false)
		}
	}
	added := s.key("checkout", "added")
	s.change(routes.ActionCreated, added, "https://added.example", true)
	// While it is down the client answers from its map.
	if u, err := c.Resolve(context.Background(), keys[0].Tenant, keys[0].Service, keys[0].Env, keys[0].Version); err != nil || u != "https://old.example" {
		t.Fatalf("while the resolver is down = %q %v, want the cached answer", u, err)
	}
	s.start()
	_, m0, _, _ := c.Stats()
	for i, k := range keys {
		want := ""
		if i%2 == 0 {
			want = fmt.Sprintf("https://new%d.example", i)
		}
		t.Logf("%s after the restart: %v", k.Version, eventually(t, c, k, want, 5*time.Second))
	}
	eventually(t, c, added, "https://added.example", time.Second)
	_, m1, events, reconnects := c.Stats()
	if m1 != m0 {
		t.Errorf("%d HTTP resolves after the restart, want 0: the resumed stream carries every change", m1-m0)
	}
	if reconnects == 0 || events < 6 {
		t.Errorf("%d reconnects and %d events", reconnects, events)
	}
}

func TestClientAfterCloseAsksTheResolver(t *testing.T) {
	s := newStack(t)
	k := s.key("checkout", "v1")
	s.change(routes.ActionCreated, k, "https://one.example", true)
	c := New(s.URL())
	eventually(t, c, k, "https://one.example", time.Second)
	c.Close()
	s.change(routes.ActionUpdated, k, "https://two.example", true)
	eventually(t, c, k, "https://two.example", 2*time.Second) // the resolver's own propagation
}

// A resolver whose watch stream is unavailable: answers come over HTTP,
// uncached, and only the first Resolve of the tenant waits for the stream.
func TestClientWithoutAWatchStreamAsksEveryTimeWithoutWaiting(t *testing.T) {
	var watches atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/v1/watch/") {
			watches.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":{"code":"unavailable","message":"no watch"}}`)
			return
		}
		fmt.Fprint(w, `{"url":"https://one.example"}`)
	}))
	defer srv.Close()
	c := New(srv.URL, WithBackoff(time.Hour, time.Hour))
	defer c.Close()
	for i := 0; i < 3; i++ {
		start := time.Now()
		if u, err := c.Resolve(context.Background(), "acme", "checkout", "prod", "v1"); err != nil || u != "https://one.example" {
			t.Fatalf("resolve = %q %v", u, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("resolve %d took %v: it waited for a stream that had failed", i, d)
		}
	}
	if hits, misses, _, _ := c.Stats(); hits != 0 || misses != 3 || watches.Load() != 1 {
		t.Fatalf("%d hits, %d misses, %d stream attempts; want 0, 3, 1", hits, misses, watches.Load())
	}
}
