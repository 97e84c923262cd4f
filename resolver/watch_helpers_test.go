package resolver

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/routes"
)

// watchEnv is a resolver with the watch stream over a real Postgres ledger,
// consuming a kfake topic that change publishes to, served over real HTTP.
type watchEnv struct {
	pool   *pgxpool.Pool
	st     *routes.Store
	res    *Resolver
	srv    *httptest.Server
	pub    *events.Publisher
	tenant string
}

func newWatchEnv(t testing.TB, o WatchOptions, wrap func(http.Handler) http.Handler) *watchEnv {
	t.Helper()
	pool := testenv.Postgres(t)
	st := routes.NewStore(pool)
	topic := testenv.Name(t, "route-events")
	brokers := testenv.Kafka(t, topic, 3)
	reg := prometheus.NewRegistry()
	r, err := New(Options{Store: st, Metrics: observability.NewResolveMetrics(reg), Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	o.Feed = NewLedgerFeed(pool)
	o.Registerer = reg
	if err := r.EnableWatch(o); err != nil {
		t.Fatal(err)
	}
	h := r.Handler(reg)
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(r.closeWatch) // streams end before srv.Close waits for them

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	subscribed := make(chan struct{})
	go func() { done <- r.ConsumeEvents(ctx, brokers, topic, func() { close(subscribed) }) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-subscribed:
	case err := <-done:
		t.Fatalf("consumer: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("consumer not subscribed within 15s")
	}
	pub := events.NewPublisher(brokers, topic)
	t.Cleanup(func() { _ = pub.Close() })
	return &watchEnv{pool: pool, st: st, res: r, srv: srv, pub: pub, tenant: testenv.Name(t, "w")}
}

// change commits a mutation through the real store (so the ledger is
// genuine) and publishes its event as the write path's workflow would.
func (e *watchEnv) change(t testing.TB, a routes.Action, k routes.Key, url string, active bool) events.Event {
	t.Helper()
	id := uuid.NewString()
	res, err := e.st.Apply(context.Background(), routes.Mutation{Action: a, Key: k, URL: url, Active: active, ChangedBy: "watch-test", EventID: id})
	if err != nil {
		t.Fatalf("%s %s: %v", a, k, err)
	}
	ev := events.FromResult(id, a, res, "watch-test")
	if res.Changed {
		if err := e.pub.Publish(context.Background(), ev); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	return ev
}

func (e *watchEnv) key(service, version string) routes.Key {
	return routes.Key{Tenant: e.tenant, Service: service, Env: "prod", Version: version}
}

// sse is one received SSE message: an event, or a comment (event "").
type sse struct {
	id, event, data, comment string
}

func (m sse) decode(t testing.TB) events.Event {
	t.Helper()
	var e events.Event
	if err := json.Unmarshal([]byte(m.data), &e); err != nil {
		t.Fatalf("event data %q: %v", m.data, err)
	}
	return e
}

// stream is an open watch: its messages arrive on ch, which closes when the
// stream ends.
type stream struct {
	resp *http.Response
	ch   chan sse
	once sync.Once
}

func (s *stream) Close() { s.once.Do(func() { s.resp.Body.Close() }) }

// openWatch GETs path (with lastID as Last-Event-ID unless empty, and an
// Authorization header for token) and returns the response; on 200 its
// messages are read into the stream's channel.
func openWatch(t testing.TB, base, path, lastID, token string) (*stream, int) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	s := &stream{resp: resp, ch: make(chan sse, 4096)}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		close(s.ch)
		return s, resp.StatusCode
	}
	go func() {
		defer close(s.ch)
		rd := bufio.NewReader(resp.Body)
		var m sse
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if m != (sse{}) {
					s.ch <- m
				}
				m = sse{}
			case strings.HasPrefix(line, ":"):
				m.comment = strings.TrimSpace(line[1:])
			default:
				k, v, _ := strings.Cut(line, ":")
				v = strings.TrimPrefix(v, " ")
				switch k {
				case "id":
					m.id = v
				case "event":
					m.event = v
				case "data":
					m.data = v
				}
			}
		}
	}()
	t.Cleanup(s.Close)
	return s, resp.StatusCode
}

// next returns the stream's next event (skipping comments) or fails after d.
func (s *stream) next(t testing.TB, d time.Duration) sse {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m, ok := <-s.ch:
			if !ok {
				t.Fatal("the stream ended")
			}
			if m.event != "" {
				return m
			}
		case <-deadline:
			t.Fatalf("no event within %v", d)
		}
	}
}

// quiet checks that no event arrives within d.
func (s *stream) quiet(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m, ok := <-s.ch:
			if ok && m.event != "" {
				t.Fatalf("unexpected event %+v", m)
			}
			if !ok {
				return
			}
		case <-deadline:
			return
		}
	}
}
