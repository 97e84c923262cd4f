package resolver

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/auth"
	"github.com/trafficmanager/trafficmanager/routes"
)

func TestWatchStreamsChangesFromTheHeadAndResumesAfterAnID(t *testing.T) {
	e := newWatchEnv(t, WatchOptions{}, nil)
	before := e.key("checkout", "v0")
	e.change(t, routes.ActionCreated, before, "https://before.example", true)

	s, code := openWatch(t, e.srv.URL, WatchPrefix+e.tenant, "", "")
	if code != 200 {
		t.Fatalf("watch = %d", code)
	}
	if ct := s.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	v1 := e.key("checkout", "v1")
	start := time.Now()
	e.change(t, routes.ActionCreated, v1, "https://one.example", true)
	m := s.next(t, 5*time.Second)
	t.Logf("first change arrived %v after its commit", time.Since(start))
	if m.event != "route_changed" || m.id == "" {
		t.Fatalf("message %+v", m)
	}
	got := m.decode(t)
	if got.Version != "v1" || got.Action != routes.ActionCreated || got.Revision != 1 || got.URL != "https://one.example" ||
		!got.IsActive || got.EventType != "route_changed" || got.Tenant != e.tenant || got.EventID == "" {
		t.Fatalf("event %+v", got)
	}
	upd := e.change(t, routes.ActionUpdated, v1, "https://two.example", true)
	m2 := s.next(t, 5*time.Second)
	got = m2.decode(t)
	if got.EventID != upd.EventID || got.PreviousURL != "https://one.example" || got.PreviousState != "active" || got.Revision != 2 {
		t.Fatalf("update event %+v, want previous url/state and revision 2", got)
	}
	if m2.id <= m.id {
		t.Fatalf("ids do not increase: %s then %s", m.id, m2.id)
	}
	// An unchanged mutation is no change.
	e.change(t, routes.ActionActivated, v1, "", false)
	s.quiet(t, 300*time.Millisecond)
	s.Close()

	// Missed while disconnected: resume with the header, then with the query parameter.
	d := e.change(t, routes.ActionDeactivated, v1, "", false)
	o := e.change(t, routes.ActionCreated, e.key("other", "v1"), "https://other.example", true)
	r, _ := openWatch(t, e.srv.URL, WatchPrefix+e.tenant, m2.id, "")
	if a, b := r.next(t, 5*time.Second).decode(t), r.next(t, 5*time.Second).decode(t); a.EventID != d.EventID || b.EventID != o.EventID {
		t.Fatalf("resumed with %s and %s, want %s then %s", a.EventID, b.EventID, d.EventID, o.EventID)
	}
	r.quiet(t, 200*time.Millisecond)
	q, _ := openWatch(t, e.srv.URL, WatchPrefix+e.tenant+"?service=other&last_event_id="+m.id, "", "")
	if a := q.next(t, 5*time.Second).decode(t); a.EventID != o.EventID {
		t.Fatalf("?service=other resumed with %+v, want only %s", a, o.EventID)
	}
	q.quiet(t, 200*time.Millisecond)
}

func TestWatchDeliversAChangeWhoseEventWasLostWithinTheSweep(t *testing.T) {
	e := newWatchEnv(t, WatchOptions{Tail: 200 * time.Millisecond}, nil)
	s, _ := openWatch(t, e.srv.URL, WatchPrefix+e.tenant, "", "")
	k := e.key("checkout", "v1")
	start := time.Now()
	// Committed, but no event: only the sweep can wake the tenant's tail.
	if _, err := e.st.Apply(context.Background(), routes.Mutation{Action: routes.ActionCreated, Key: k, URL: "https://lost.example", Active: true}); err != nil {
		t.Fatal(err)
	}
	if got := s.next(t, 3*time.Second).decode(t); got.URL != "https://lost.example" {
		t.Fatalf("got %+v", got)
	}
	t.Logf("a change without an event arrived after %v (sweep every 200ms)", time.Since(start))
}

func TestWatchRejectsBadNamesAndCursors(t *testing.T) {
	e := newWatchEnv(t, WatchOptions{}, nil)
	head, _, _ := e.res.watch.Load().o.Feed.Head(context.Background(), e.tenant)
	ahead := Cursor{Xid: head.Xid + 1000, Seq: 1}
	for _, tt := range []struct{ name, path, lastID string }{
		{"an upper-case tenant", WatchPrefix + "Acme", ""},
		{"a bad service", WatchPrefix + e.tenant + "?service=-x", ""},
		{"a bad env", WatchPrefix + e.tenant + "?env=a_b", ""},
		{"a cursor that is not one", WatchPrefix + e.tenant, "42"},
		{"a cursor in the query that is not one", WatchPrefix + e.tenant + "?last_event_id=zz", ""},
		{"a cursor this stream never gave", WatchPrefix + e.tenant, ahead.String()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", e.srv.URL+tt.path, nil)
			if tt.lastID != "" {
				req.Header.Set("Last-Event-ID", tt.lastID)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 400 || decodeError(t, body).Error.Code != "invalid_argument" {
				t.Fatalf("= %d %s, want 400 invalid_argument", resp.StatusCode, body)
			}
		})
	}
}

func TestWatchLimitsStreamsPerTenantAndInstance(t *testing.T) {
	e := newWatchEnv(t, WatchOptions{MaxWatchers: 3, MaxPerTenant: 2}, nil)
	other := e.tenant + "-b"
	for i := 0; i < 2; i++ {
		if _, code := openWatch(t, e.srv.URL, WatchPrefix+e.tenant, "", ""); code != 200 {
			t.Fatalf("stream %d = %d", i, code)
		}
	}
	if _, code := openWatch(t, e.srv.URL, WatchPrefix+e.tenant, "", ""); code != 429 {
		t.Fatalf("third stream of a tenant = %d, want 429", code)
	}
	b, code := openWatch(t, e.srv.URL, WatchPrefix+other, "", "")
	if code != 200 {
		t.Fatalf("another tenant's stream = %d", code)
	}
	if _, code := openWatch(t, e.srv.URL, WatchPrefix+other, "", ""); code != 503 {
		t.Fatalf("fourth stream on the instance = %d, want 503", code)
	}
	b.Close()
	waitFor(t, func() bool { return e.res.WatchStats().Watchers == 2 })
	if _, code := openWatch(t, e.srv.URL, WatchPrefix+other, "", ""); code != 200 {
		t.Fatalf("a stream after one closed = %d", code)
	}
}

// The server's WriteTimeout (TM_HTTP_WRITE_TIMEOUT) bounds whole responses;
// a stream lifts it and bounds each write instead.
func TestWatchOutlivesTheServersWriteTimeout(t *testing.T) {
	e := newWatchEnv(t, WatchOptions{Heartbeat: 100 * time.Millisecond}, nil)
	srv := httptest.NewUnstartedServer(e.srv.Config.Handler)
	srv.Config.WriteTimeout = 300 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(e.res.closeWatch)
	s, _ := openWatch(t, srv.URL, WatchPrefix+e.tenant, "", "")
	time.Sleep(time.Second)
	e.change(t, routes.ActionCreated, e.key("checkout", "v1"), "https://late.example", true)
	if got := s.next(t, 3*time.Second).decode(t); got.URL != "https://late.example" {
		t.Fatalf("got %+v", got)
	}
}

// A live stream is written without deadlines: one set while it read its
// history must not end it once it has passed.
func TestWatchOutlivesItsOwnWriteTimeout(t *testing.T) {
	e := newWatchEnv(t, WatchOptions{WriteTimeout: 200 * time.Millisecond}, nil)
	s, _ := openWatch(t, e.srv.URL, WatchPrefix+e.tenant, "", "")
	time.Sleep(time.Second)
	e.change(t, routes.ActionCreated, e.key("checkout", "v1"), "https://later.example", true)
	if got := s.next(t, 3*time.Second).decode(t); got.URL != "https://later.example" {
		t.Fatalf("got %+v", got)
	}
}

func TestWatchSendsHeartbeatsAndClosesOnDrain(t *testing.T) {
	e := newWatchEnv(t, WatchOptions{Heartbeat: 50 * time.Millisecond}, nil)
	s, _ := openWatch(t, e.srv.URL, WatchPrefix+e.tenant, "", "")
	deadline := time.After(2 * time.Second)
	for pings := 0; pings < 2; {
		select {
		case m := <-s.ch:
			if m.comment == "ping" {
				pings++
			}
		case <-deadline:
			t.Fatal("no heartbeats")
		}
	}
	e.res.SetDraining()
	if m := s.next(t, 2*time.Second); m.event != "close" || m.data != `{"reason":"shutdown"}` {
		t.Fatalf("on drain: %+v, want close shutdown", m)
	}
	if _, code := openWatch(t, e.srv.URL, WatchPrefix+e.tenant, "", ""); code != 503 {
		t.Fatalf("a stream while draining = %d, want 503", code)
	}
}

// blockedWriter is a client that stops reading: writes block until release.
type blockedWriter struct {
	hdr     http.Header
	mu      sync.Mutex
	buf     strings.Builder
	started chan struct{}
	release chan struct{}
	once    sync.Once
	code    int
}

func (w *blockedWriter) Header() http.Header  { return w.hdr }
func (w *blockedWriter) WriteHeader(code int) { w.code = code }
func (w *blockedWriter) Flush()               { w.once.Do(func() { close(w.started) }) }
func (w *blockedWriter) Write(b []byte) (int, error) {
	select {
	case <-w.started:
		<-w.release
	default:
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(b)
}

func TestWatchClosesASlowConsumerWithAReasonAndItResumes(t *testing.T) {
	const buffer = 4
	e := newWatchEnv(t, WatchOptions{Buffer: buffer}, nil)
	w := &blockedWriter{hdr: http.Header{}, started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.res.Handler(prometheus.NewRegistry()).ServeHTTP(w, httptest.NewRequest("GET", WatchPrefix+e.tenant, nil))
	}()
	<-w.started
	waitFor(t, func() bool {
		h := e.res.watch.Load()
		h.mu.RLock()
		defer h.mu.RUnlock()
		tt := h.tenants[e.tenant]
		if tt == nil {
			return false
		}
		tt.mu.Lock()
		defer tt.mu.Unlock()
		return len(tt.watchers) == 1
	})
	// The handler blocks writing the first change; the next `buffer` fill
	// its buffer and one more overflows it.
	for i := 0; i < buffer+2; i++ {
		e.change(t, routes.ActionCreated, e.key("checkout", fmt.Sprintf("v%d", i)), "https://x.example", true)
	}
	waitFor(t, func() bool {
		return e.res.WatchStats().Watchers == 1 && func() bool {
			h := e.res.watch.Load()
			h.mu.RLock()
			defer h.mu.RUnlock()
			tt := h.tenants[e.tenant]
			tt.mu.Lock()
			defer tt.mu.Unlock()
			return len(tt.watchers) == 0
		}()
	})
	close(w.release)
	<-done
	body := w.buf.String()
	if !strings.HasSuffix(body, "event: close\ndata: {\"reason\":\"slow_consumer\"}\n\n") {
		t.Fatalf("stream of a slow consumer ends with %q", body[max(0, len(body)-120):])
	}
	if n := counter(e.res.watch.Load().slow); n != 1 {
		t.Errorf("watch_slow_consumers_total = %v, want 1", n)
	}
	ids, got := idsIn(body), strings.Count(body, "event: route_changed\n")
	if got == 0 || got > buffer+1 {
		t.Fatalf("the slow consumer got %d changes before the close, want 1..%d", got, buffer+1)
	}
	// It resumes with its last id and gets the rest.
	s, _ := openWatch(t, e.srv.URL, WatchPrefix+e.tenant, ids[len(ids)-1], "")
	for i := got; i < buffer+2; i++ {
		if got := s.next(t, 5*time.Second).decode(t).Version; got != fmt.Sprintf("v%d", i) {
			t.Fatalf("resumed change %d is %s", i, got)
		}
	}
}

func idsIn(body string) []string {
	var ids []string
	for _, l := range strings.Split(body, "\n") {
		if id, ok := strings.CutPrefix(l, "id: "); ok {
			ids = append(ids, id)
		}
	}
	return ids
}

func TestWatchTakesATokenOfTheTenant(t *testing.T) {
	e := newWatchEnv(t, WatchOptions{}, nil)
	ts := auth.NewStore(e.pool)
	h := RequireToken(e.res.Handler(prometheus.NewRegistry()), auth.NewAuthenticator(ts, zap.NewNop()))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ctx := context.Background()
	_, mine, err := ts.Create(ctx, "edge", auth.RoleResolver, []string{e.tenant})
	if err != nil {
		t.Fatal(err)
	}
	_, other, err := ts.Create(ctx, "other", auth.RoleReader, []string{"someone-else"})
	if err != nil {
		t.Fatal(err)
	}
	if _, code := openWatch(t, srv.URL, WatchPrefix+e.tenant, "", ""); code != 401 {
		t.Fatalf("without a token = %d, want 401", code)
	}
	if _, code := openWatch(t, srv.URL, WatchPrefix+e.tenant, "", other); code != 403 {
		t.Fatalf("a token of another tenant = %d, want 403", code)
	}
	s, code := openWatch(t, srv.URL, WatchPrefix+e.tenant, "", mine)
	if code != 200 {
		t.Fatalf("a token of the tenant = %d, want 200", code)
	}
	e.change(t, routes.ActionCreated, e.key("checkout", "v1"), "https://one.example", true)
	e.change(t, routes.ActionCreated, routes.Key{Tenant: "someone-else", Service: "checkout", Env: "prod", Version: "v1"}, "https://else.example", true)
	if got := s.next(t, 5*time.Second).decode(t); got.Tenant != e.tenant {
		t.Fatalf("event of %s on %s's stream", got.Tenant, e.tenant)
	}
	s.quiet(t, 300*time.Millisecond)
}

// A taken-over stream whose client stops reading is closed once its socket
// is full and its queue overflows, instead of holding memory or a writer.
func TestWatchClosesATakenOverStreamWhoseClientStopsReading(t *testing.T) {
	e := newWatchEnv(t, WatchOptions{Buffer: 4, WriteTimeout: 500 * time.Millisecond}, nil)
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048) })
	}}
	host := strings.TrimPrefix(e.srv.URL, "http://")
	c, err := d.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s%s HTTP/1.1\r\nHost: %s\r\n\r\n", WatchPrefix, e.tenant, host)
	waitFor(t, func() bool { return e.res.WatchStats().Watchers == 1 })
	time.Sleep(200 * time.Millisecond) // joined its tail
	for i := 0; i < 2000 && e.res.WatchStats().Watchers > 0; i++ {
		e.change(t, routes.ActionCreated, e.key("checkout", fmt.Sprintf("v%d", i)), "https://"+strings.Repeat("x", 1500)+".example", true)
	}
	waitFor(t, func() bool { return e.res.WatchStats().Watchers == 0 })
	if n := counter(e.res.watch.Load().slow); n != 1 {
		t.Errorf("watch_slow_consumers_total = %v, want 1", n)
	}
}
