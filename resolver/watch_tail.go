package resolver

import (
	"context"
	"net"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// tenantTail is the shared live query of one tenant and its watchers.
type tenantTail struct {
	hub    *watchHub
	tenant string
	wake   chan struct{} // capacity 1: wake-ups coalesce
	stop   chan struct{}
	admits int // guarded by hub.mu: streams admitted for this tenant

	mu       sync.Mutex
	started  bool
	cursor   Cursor // every change up to here has been fanned out
	watchers map[*watcher]struct{}
}

// watcher is one stream as its tenant's tail sees it.
type watcher struct {
	service, env string
	tail         *tenantTail
	after        Cursor          // changes up to here came from history
	skip         map[Cursor]bool // committed before a stream from the head began
	owesID       bool            // the last change sent had no id

	// conn is the taken-over connection (watch_conn.go), written by the
	// instance's writers; without it the handler writes the queue itself
	// when signalled.
	conn   net.Conn
	raw    syscall.RawConn
	signal chan struct{}

	mu        sync.Mutex
	q, next   [][]byte  // being written, queued: at most Buffer in all
	scheduled bool      // handed to a writer (conn only)
	stalled   time.Time // since when a write has made no progress
	closing   bool      // nothing more is queued but the close
	done      bool      // the connection is closed (conn only)
	reason    string    // of the close
}

// rowFrames are a change's renderings, built on first use and shared by
// every watcher: plain for handlers, chunked for taken-over connections.
type rowFrames struct{ full, fullC, idOnly, idOnlyC *[]byte }

// message is what w is sent for c (plain and chunked): the change; or only
// its id, when w does not want c (or has it from history) but was sent
// changes without an id that this id covers, so its resume point moves
// past them; or nothing.
func (w *watcher) message(c *Change, f *rowFrames) (*[]byte, *[]byte) {
	if w.after.Less(c.Cursor) && w.wants(c) {
		w.owesID = !c.ID
		if f.full == nil {
			b := frame(*c)
			bc := chunked(b)
			f.full, f.fullC = &b, &bc
		}
		return f.full, f.fullC
	}
	if c.ID && w.owesID {
		w.owesID = false
		if f.idOnly == nil {
			b := []byte("id: " + c.IDCursor.String() + "\n\n")
			bc := chunked(b)
			f.idOnly, f.idOnlyC = &b, &bc
		}
		return f.idOnly, f.idOnlyC
	}
	return nil, nil
}

func (w *watcher) wants(c *Change) bool {
	return (w.service == "" || w.service == c.Event.Service) && (w.env == "" || w.env == c.Event.Env) && !w.skip[c.Cursor]
}

// join makes w live at cursor c when the tail is not past c: every change
// after c then reaches w through the tail. Otherwise it returns false and
// the tail's cursor, which w must first read up to from history. The first
// watcher of a tenant starts the tail at its own cursor.
func (t *tenantTail) join(w *watcher, c Cursor) (bool, Cursor) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.started {
		t.started = true
		t.cursor = c
		go t.run()
	}
	if c.Less(t.cursor) {
		return false, t.cursor
	}
	w.after = c
	t.watchers[w] = struct{}{}
	return true, c
}

// drop ends w after what is queued, with `event: close` of reason; the
// caller holds t.mu.
func (t *tenantTail) drop(w *watcher, reason string) {
	delete(t.watchers, w)
	w.mu.Lock()
	w.closeLocked(t.hub, reason)
	w.mu.Unlock()
}

// run polls the tenant's changes on wake-ups (events, the sweep) until its
// last watcher leaves. A wake-up that finds nothing new (the change's
// transaction is settled only once older ones end) is retried soon with a
// growing delay, not left to the sweep.
func (t *tenantTail) run() {
	h := t.hub
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	var delay time.Duration
	for {
		woke := false
		select {
		case <-t.stop:
			return
		case <-h.done:
			return
		case <-t.wake:
			woke, delay = true, 0
		case <-retry.C:
			woke = true
		}
		n, err := t.poll()
		if err != nil {
			if h.ctx.Err() == nil {
				h.log.Warn("watch tail query failed; retrying", zap.String("tenant", t.tenant), zap.Error(err))
			}
			continue
		}
		if woke && n == 0 {
			delay = min(max(2*delay, 5*time.Millisecond), h.o.Tail)
			if delay < h.o.Tail {
				retry.Reset(delay)
			}
		}
	}
}

// poll fans out every settled change after the tail's cursor and returns
// how many it read.
func (t *tenantTail) poll() (int, error) {
	h := t.hub
	total := 0
	for {
		t.mu.Lock()
		after := t.cursor
		t.mu.Unlock()
		ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
		cs, settled, err := h.o.Feed.Changes(ctx, t.tenant, after, h.o.Page)
		cancel()
		if err != nil {
			return total, err
		}
		total += len(cs)
		sent := 0
		t.mu.Lock()
		for i := range cs {
			c := &cs[i]
			var f rowFrames
			for w := range t.watchers {
				m, mc := w.message(c, &f)
				if m == nil {
					continue
				}
				if w.enqueue(h, m, mc) {
					sent++
				} else {
					t.drop(w, CloseSlowConsumer)
					h.slow.Inc()
				}
			}
			if t.cursor.Less(c.Cursor) {
				t.cursor = c.Cursor
			}
		}
		if len(cs) < h.o.Page && t.cursor.Less(settled) {
			t.cursor = settled
		}
		t.mu.Unlock()
		h.sent.Add(float64(sent))
		if len(cs) < h.o.Page {
			return total, nil
		}
	}
}
