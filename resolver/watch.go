package resolver

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/httperr"
)

// The watch stream (GET /api/v1/watch/{tenant}) follows a tenant's route
// changes. History comes from the ledger (ChangeFeed) in commit order; live
// delivery is one shared tail query per watched tenant, woken by the route
// events this resolver already consumes (Invalidate), retried soon when a
// wake-up finds its change not settled yet, and woken every
// WatchOptions.Tail by one instance-wide sweep of the ledger for tenants
// with new changes (a lost or missed event): one query a second per
// instance, not one per watched tenant. The tail's rows fan out to the
// tenant's watchers through bounded buffers: a watcher that falls behind is
// dropped with a close event rather than buffered without bound, and
// resumes from its last id. Live HTTP/1.1 streams are written by a few
// writers per instance on connections taken over from net/http
// (watch_conn.go).

// Defaults for zero WatchOptions fields.
const (
	DefaultWatchMax          = 10_000
	DefaultWatchMaxPerTenant = 1_000
	DefaultWatchHeartbeat    = 15 * time.Second
	DefaultWatchTail         = time.Second
	DefaultWatchBuffer       = 256
	DefaultWatchPage         = 500
	DefaultWatchHistory      = 4
	DefaultWatchWriteTimeout = 10 * time.Second
)

// Close reasons of the final `event: close`.
const (
	CloseSlowConsumer = "slow_consumer"
	CloseShutdown     = "shutdown"
)

// WatchOptions configure the watch stream. Only Feed is required.
type WatchOptions struct {
	Feed ChangeFeed
	// MaxWatchers and MaxPerTenant bound open streams per instance (503
	// beyond) and per tenant (429 beyond).
	MaxWatchers, MaxPerTenant int
	// Heartbeat is the interval of `: ping` comments.
	Heartbeat time.Duration
	// Tail is the interval of the sweep that wakes tenants whose changes
	// no event announced.
	Tail time.Duration
	// Buffer is how many changes a watcher may lag behind before it is
	// closed as a slow consumer.
	Buffer int
	// Page is the number of ledger rows one query reads.
	Page int
	// History bounds concurrent history reads, so reconnecting watchers do
	// not take every Postgres connection from route lookups.
	History int
	// WriteTimeout bounds one write to a watcher's connection (for a
	// taken-over stream, how long its socket may accept nothing).
	WriteTimeout time.Duration
	// Registerer, when set, gets the watch metrics: watch_streams and
	// watch_tenants (gauges), watch_changes_sent_total and
	// watch_slow_consumers_total.
	Registerer prometheus.Registerer
}

// EnableWatch serves GET /api/v1/watch/{tenant} from o.Feed. Without it the
// endpoint answers 503.
func (r *Resolver) EnableWatch(o WatchOptions) error {
	if o.Feed == nil {
		return errors.New("resolver: WatchOptions.Feed is required")
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxWatchers, DefaultWatchMax)
	def(&o.MaxPerTenant, DefaultWatchMaxPerTenant)
	def(&o.Buffer, DefaultWatchBuffer)
	def(&o.Page, DefaultWatchPage)
	def(&o.History, DefaultWatchHistory)
	o.Heartbeat = orDefault(o.Heartbeat, DefaultWatchHeartbeat)
	o.Tail = orDefault(o.Tail, DefaultWatchTail)
	o.WriteTimeout = orDefault(o.WriteTimeout, DefaultWatchWriteTimeout)
	ctx, cancel := context.WithCancel(context.Background())
	h := &watchHub{
		o: o, log: r.log.Named("watch"), tenants: map[string]*tenantTail{},
		history: make(chan struct{}, o.History), done: make(chan struct{}), ctx: ctx, cancel: cancel,
		ready: make(chan *watcher, o.MaxWatchers+1),
	}
	h.sent = prometheus.NewCounter(prometheus.CounterOpts{Name: "watch_changes_sent_total", Help: "Changes handed to watch streams (one per stream)."})
	h.slow = prometheus.NewCounter(prometheus.CounterOpts{Name: "watch_slow_consumers_total", Help: "Watch streams closed because they fell behind."})
	if o.Registerer != nil {
		stat := func(f func(WatchStats) int) func() float64 {
			return func() float64 { return float64(f(r.WatchStats())) }
		}
		err := errors.Join(
			o.Registerer.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "watch_streams", Help: "Open watch streams."},
				stat(func(s WatchStats) int { return s.Watchers }))),
			o.Registerer.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "watch_tenants", Help: "Tenants with open watch streams."},
				stat(func(s WatchStats) int { return s.Tenants }))),
			o.Registerer.Register(h.sent), o.Registerer.Register(h.slow))
		if err != nil {
			return fmt.Errorf("resolver: watch metrics: %w", err)
		}
	}
	r.watch.Store(h)
	go h.sweep()
	go h.beat()
	for range runtime.GOMAXPROCS(0) {
		go h.writer()
	}
	return nil
}

// WatchStats are the watch stream's open streams.
type WatchStats struct {
	Watchers int `json:"watchers"`
	Tenants  int `json:"tenants"`
}

// WatchStats reports the open streams (zero without EnableWatch).
func (r *Resolver) WatchStats() WatchStats {
	h := r.watch.Load()
	if h == nil {
		return WatchStats{}
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	return WatchStats{Watchers: h.total, Tenants: len(h.tenants)}
}

// wakeWatch is called for every applied route event of tenant: its tail
// query runs now instead of at the next tick.
func (r *Resolver) wakeWatch(tenant string) {
	if h := r.watch.Load(); h != nil {
		h.wake(tenant)
	}
}

// closeWatch ends every stream with `event: close` (reason shutdown) and
// refuses new ones: a draining instance must not hold clients that would
// keep the server's shutdown waiting; they resume elsewhere. It waits up
// to a second for the close events to be written: the server's shutdown
// does not wait for streams whose connections were taken over
// (watch_conn.go).
func (r *Resolver) closeWatch() {
	if h := r.watch.Load(); h != nil {
		h.close()
		for deadline := time.Now().Add(time.Second); r.WatchStats().Watchers > 0 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

type watchHub struct {
	o       WatchOptions
	log     *zap.Logger
	history chan struct{} // semaphore of history reads
	ready   chan *watcher // taken-over streams with frames to write
	done    chan struct{} // closed by close
	ctx     context.Context
	cancel  context.CancelFunc

	sent, slow prometheus.Counter

	mu      sync.RWMutex
	tenants map[string]*tenantTail
	total   int
	closed  bool
}

func (h *watchHub) wake(tenant string) {
	h.mu.RLock()
	t := h.tenants[tenant]
	h.mu.RUnlock()
	if t != nil {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

// admit counts a new stream of tenant against the limits.
func (h *watchHub) admit(tenant string) (*tenantTail, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return nil, httperr.Unavailable("the resolver is shutting down; reconnect")
	case h.total >= h.o.MaxWatchers:
		return nil, httperr.Unavailable("too many watch streams on this resolver; retry later or elsewhere")
	}
	t := h.tenants[tenant]
	if t == nil {
		t = &tenantTail{hub: h, tenant: tenant, wake: make(chan struct{}, 1), stop: make(chan struct{}),
			watchers: map[*watcher]struct{}{}}
		h.tenants[tenant] = t
	} else if t.admits >= h.o.MaxPerTenant {
		return nil, httperr.RateLimited("too many watch streams for this tenant")
	}
	t.admits++
	h.total++
	return t, nil
}

// leave undoes admit (and join, if w joined); the last stream of a tenant
// stops its tail.
func (h *watchHub) leave(t *tenantTail, w *watcher) {
	t.mu.Lock()
	delete(t.watchers, w)
	t.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.total--
	t.admits--
	if t.admits == 0 {
		delete(h.tenants, t.tenant)
		close(t.stop)
	}
}

func (h *watchHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	close(h.done)
	h.cancel()
	for _, t := range h.tenants {
		t.mu.Lock()
		for w := range t.watchers {
			t.drop(w, CloseShutdown)
		}
		t.mu.Unlock()
	}
}

// sweep wakes, every Tail, the watched tenants that have changes after the
// sweep's cursor. After a time without watchers the cursor restarts at the
// oldest tail's: nothing a tail has yet to read is behind it. A tenant's
// tail reads from its own cursor, so waking it for changes it has already
// read costs one query that finds nothing.
func (h *watchHub) sweep() {
	tick := time.NewTicker(h.o.Tail)
	defer tick.Stop()
	var cursor Cursor
	idle := true
	for {
		select {
		case <-h.done:
			return
		case <-tick.C:
		}
		h.mu.RLock()
		tails := make([]*tenantTail, 0, len(h.tenants))
		for _, t := range h.tenants {
			tails = append(tails, t)
		}
		h.mu.RUnlock()
		if idle {
			var oldest *Cursor
			for _, t := range tails {
				t.mu.Lock()
				if t.started && (oldest == nil || t.cursor.Less(*oldest)) {
					c := t.cursor
					oldest = &c
				}
				t.mu.Unlock()
			}
			if oldest == nil {
				continue // no tail running: nothing to wake
			}
			cursor, idle = *oldest, false
		}
		if len(tails) == 0 {
			idle = true
			continue
		}
		for more := true; more; {
			ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
			var tenants []string
			var err error
			tenants, cursor, more, err = h.o.Feed.Touched(ctx, cursor, 10*h.o.Page)
			cancel()
			if err != nil {
				if h.ctx.Err() == nil {
					h.log.Warn("watch sweep failed; retrying", zap.Error(err))
				}
				break
			}
			for _, tenant := range tenants {
				h.wake(tenant)
			}
		}
	}
}
