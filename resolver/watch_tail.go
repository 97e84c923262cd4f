package resolver

import (
	"context"
	"sync"
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
	after        Cursor          // changes up to here came from history
	skip         map[Cursor]bool // committed before a stream from the head began
	owesID       bool            // the last change sent had no id
	ch           chan *[]byte
	reason       string // why ch was closed; written before the close
}

// rowFrames are a change's two renderings, built on first use and shared
// by every watcher.
type rowFrames struct{ full, idOnly *[]byte }

// message is what w is sent for c: the change; or only its id, when w does
// not want c (or has it from history) but was sent changes without an id
// that this id covers, so its resume point moves past them; or nothing.
func (w *watcher) message(c *Change, f *rowFrames) *[]byte {
	if w.after.Less(c.Cursor) && w.wants(c) {
		w.owesID = !c.ID
		if f.full == nil {
			b := frame(*c)
			f.full = &b
		}
		return f.full
	}
	if c.ID && w.owesID {
		w.owesID = false
		if f.idOnly == nil {
			b := []byte("id: " + c.IDCursor.String() + "\n\n")
			f.idOnly = &b
		}
		return f.idOnly
	}
	return nil
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

// drop closes w's channel; the caller holds t.mu.
func (t *tenantTail) drop(w *watcher, reason string) {
	delete(t.watchers, w)
	w.reason = reason
	close(w.ch)
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
				m := w.message(c, &f)
				if m == nil {
					continue
				}
				select {
				case w.ch <- m:
					sent++
				default:
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
