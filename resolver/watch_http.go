package resolver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/httperr"
	"github.com/trafficmanager/trafficmanager/routes"
)

// WatchPrefix is the path prefix of the watch stream.
const WatchPrefix = "/api/v1/watch/"

var (
	ping         = []byte(": ping\n\n")
	sseHeaders   = []string{"text/event-stream"}
	closePrefix  = []byte("event: close\ndata: {\"reason\":\"")
	closeSuffix  = []byte("\"}\n\n")
	errNoHistory = errors.New("the watch stream is shutting down")
)

// serveWatch answers GET /api/v1/watch/{tenant}?service=&env= with a
// Server-Sent Events stream of the tenant's route changes. With a
// Last-Event-ID header (or ?last_event_id=) it starts after that cursor,
// otherwise at the head: the changes that commit from about now on (one
// committing while the stream opens may be included). Errors before the
// stream starts use the JSON error shape; once it has started, the stream
// ends with `event: close` (slow_consumer, shutdown) or just ends (the
// client resumes with its last id).
func (r *Resolver) serveWatch(c *gin.Context) {
	h := r.watch.Load()
	if h == nil {
		httperr.Write(c, nil, httperr.Unavailable("the watch stream is not enabled on this resolver"))
		return
	}
	tenant := c.Param("tenant")
	service, env := c.Query("service"), c.Query("env")
	if err := validateWatch(tenant, service, env); err != nil {
		httperr.Write(c, nil, err)
		return
	}
	from, resume, err := watchCursor(c)
	if err != nil {
		httperr.Write(c, nil, err)
		return
	}
	t, err := h.admit(tenant)
	if err != nil {
		if e := (*httperr.Error)(nil); errors.As(err, &e) && e.Status == http.StatusTooManyRequests {
			c.Header("Retry-After", "1")
		}
		httperr.Write(c, nil, err)
		return
	}
	w := &watcher{service: service, env: env, tail: t}
	handedOver := false
	defer func() {
		if !handedOver {
			if w.conn != nil {
				_ = w.conn.Close()
			}
			h.leave(t, w)
		}
	}()
	ctx := c.Request.Context()

	if !resume {
		var skip []Cursor
		if from, skip, err = h.head(ctx, tenant); err != nil {
			h.log.Warn("watch: cannot read the head", zap.Error(err))
			httperr.Write(c, nil, httperr.Unavailable("the change history is unavailable; try again"))
			return
		}
		if len(skip) > 0 {
			w.skip = make(map[Cursor]bool, len(skip))
			for _, c := range skip {
				w.skip[c] = true
			}
		}
	}
	// The first page is read before the answer starts, so a bad cursor or
	// an unreachable Postgres is a status code, not a broken stream.
	cs, settled, err := h.changes(ctx, tenant, from)
	if err != nil {
		h.log.Warn("watch: cannot read the change history", zap.String("tenant", tenant), zap.Error(err))
		httperr.Write(c, nil, httperr.Unavailable("the change history is unavailable; try again"))
		return
	}
	if settled.Less(from) {
		httperr.Write(c, nil, httperr.InvalidArgument("last_event_id: not a cursor of this stream"))
		return
	}

	s := &sseWriter{w: c.Writer, rc: http.NewResponseController(c.Writer), timeout: h.o.WriteTimeout}
	hd := c.Writer.Header()
	hd["Content-Type"] = sseHeaders
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no") // no proxy buffering of the stream
	c.Writer.WriteHeader(http.StatusOK)
	// An HTTP/1.1 stream takes its connection over once the headers are
	// out (watch_conn.go); the rest of the stream is written in chunks.
	if c.Request.ProtoMajor == 1 && c.Request.ProtoMinor >= 1 && hijackable(c.Writer) {
		if s.flush() != nil {
			return
		}
		if conn, _, err := s.rc.Hijack(); err == nil {
			s.conn = conn
			if sc, ok := conn.(syscall.Conn); ok {
				if raw, err := sc.SyscallConn(); err == nil {
					w.conn, w.raw = conn, raw
				}
			}
			if w.conn == nil { // not a socket: cannot be written without waiting
				return
			}
		}
	}
	if w.conn == nil {
		w.signal = make(chan struct{}, 1)
	}
	if !resume {
		// An id-only message: the client's resume point is the head even
		// before the first change (EventSource keeps it as lastEventId).
		if s.write([]byte("id: "+from.String()+"\n\n")) != nil {
			return
		}
	}
	if s.flush() != nil {
		return
	}

	// History up to the tail's cursor, then live through the tail.
	for {
		for i := range cs {
			ch := &cs[i]
			var f rowFrames
			if m, _ := w.message(ch, &f); m != nil && s.write(*m) != nil {
				return
			}
			if from.Less(ch.Cursor) {
				from = ch.Cursor
			}
		}
		if len(cs) == h.o.Page {
			if cs, settled, err = h.changes(ctx, tenant, from); err != nil {
				if errors.Is(err, errNoHistory) {
					s.closeWith(CloseShutdown)
				}
				return // the client resumes from its last id
			}
			continue
		}
		if from.Less(settled) {
			from = settled
		}
		if s.flush() != nil {
			return
		}
		joined, _ := t.join(w, from)
		if joined {
			break
		}
		if cs, settled, err = h.changes(ctx, tenant, from); err != nil {
			if errors.Is(err, errNoHistory) {
				s.closeWith(CloseShutdown)
			}
			return
		}
	}

	if w.conn != nil {
		// Live: the instance's writers own the connection from here, and
		// this goroutine (and net/http's) ends.
		handedOver = true
		select {
		case <-h.done: // draining; w may have joined after the hub closed
			t.mu.Lock()
			t.drop(w, CloseShutdown)
			t.mu.Unlock()
		default:
		}
		return
	}
	var q [][]byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.done: // draining; w may have joined after the hub closed
			s.closeWith(CloseShutdown)
			return
		case <-w.signal:
		}
		w.mu.Lock()
		q, w.next = w.next, q[:0]
		w.q = q
		closing, reason := w.closing, w.reason
		w.mu.Unlock()
		for _, b := range q {
			if s.write(b) != nil {
				return
			}
		}
		w.mu.Lock()
		clear(q)
		w.q = nil
		w.mu.Unlock()
		if closing {
			s.closeWith(reason)
			return
		}
		// What was queued is written before one flush.
		if s.flush() != nil {
			return
		}
	}
}

// hijackable reports whether the writer under gin's can be taken over (gin's
// Hijack panics when it cannot: a test's recorder, HTTP/2).
func hijackable(w gin.ResponseWriter) bool {
	u, ok := w.(interface{ Unwrap() http.ResponseWriter })
	if !ok {
		return false
	}
	_, ok = u.Unwrap().(http.Hijacker)
	return ok
}

func validateWatch(tenant, service, env string) error {
	if err := routes.ValidateName("tenant", tenant); err != nil {
		return err
	}
	if service != "" {
		if err := routes.ValidateName("service", service); err != nil {
			return err
		}
	}
	if env != "" {
		return routes.ValidateName("env", env)
	}
	return nil
}

// watchCursor reads the resume cursor: the Last-Event-ID header (what an
// EventSource sends on reconnect), else ?last_event_id=.
func watchCursor(c *gin.Context) (Cursor, bool, error) {
	v := c.GetHeader("Last-Event-ID")
	if v == "" {
		v = c.Query("last_event_id")
	}
	if v == "" {
		return Cursor{}, false, nil
	}
	cur, err := ParseCursor(v)
	if err != nil {
		return Cursor{}, false, httperr.InvalidArgument("last_event_id: not a cursor of this stream")
	}
	return cur, true, nil
}

func (h *watchHub) head(ctx context.Context, tenant string) (Cursor, []Cursor, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return h.o.Feed.Head(ctx, tenant)
}

// changes is a history read, bounded by the history semaphore.
func (h *watchHub) changes(ctx context.Context, tenant string, after Cursor) ([]Change, Cursor, error) {
	select {
	case h.history <- struct{}{}:
	case <-ctx.Done():
		return nil, Cursor{}, ctx.Err()
	case <-h.done:
		return nil, Cursor{}, errNoHistory
	}
	defer func() { <-h.history }()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return h.o.Feed.Changes(ctx, tenant, after, h.o.Page)
}

// sseWriter writes to one stream, each write bounded by timeout so a client
// that stopped reading cannot hold the handler (the server's WriteTimeout
// is lifted for the stream: it would end every stream after a few seconds).
// Once the connection is taken over (conn), writes are chunks collected in
// buf until flush.
type sseWriter struct {
	w       gin.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	conn    net.Conn
	buf     []byte
}

func (s *sseWriter) write(b []byte) error {
	if s.conn != nil {
		s.buf = strconv.AppendInt(s.buf, int64(len(b)), 16)
		s.buf = append(append(append(s.buf, "\r\n"...), b...), "\r\n"...)
		if len(s.buf) >= 32<<10 {
			return s.flush()
		}
		return nil
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	_, err := s.w.Write(b)
	return err
}

func (s *sseWriter) flush() error {
	if s.conn != nil {
		if len(s.buf) == 0 {
			return nil
		}
		_ = s.conn.SetWriteDeadline(time.Now().Add(s.timeout))
		_, err := s.conn.Write(s.buf)
		// The live writers' writes do not wait; a deadline left behind
		// would fail them all once it passed.
		_ = s.conn.SetWriteDeadline(time.Time{})
		s.buf = s.buf[:0]
		return err
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	return s.rc.Flush()
}

func (s *sseWriter) closeWith(reason string) {
	if s.write(closeFrame(reason)) != nil {
		return
	}
	if s.conn != nil {
		s.buf = append(s.buf, chunkEnd...)
	}
	_ = s.flush()
}
