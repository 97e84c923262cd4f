package resolver

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/failsafe-go/failsafe-go/bulkhead"
)

// Fair queuing for the Postgres lookup bulkhead (issue 16's miss flood).
//
// A flood of distinct missing routes defeats every cache: each request is a
// Postgres lookup. With one first-come queue, 200 such requests at a time
// from one client filled the bulkhead and its wait queue, and real,
// not-yet-cached routes of other clients waited behind them until they got
// 503 while Postgres was up.
//
// Lookups that find no free permit wait in a queue per client (by default
// its remote IP and bearer token: a service with a token is another client
// than a tokenless flood from the same host; hashed into one of
// clientBuckets queues, so memory stays fixed whatever the number of
// clients), and a released permit goes to the
// next client in round-robin order. A client with one lookup waiting is
// served after at most one lookup of each other waiting client, however
// many the flood has queued; the flood's own lookups wait their turn and
// fail after InflightWait (503) as before. With the bulkhead idle any
// client may use all of it.
const clientBuckets = 256

// fairGate hands the permits of bulkhead bh to waiting lookups round robin
// over their clients. Permits released outside it (the split lookups of
// split.go use bh directly) reach its queue on the next arrival.
type fairGate struct {
	bh     bulkhead.Bulkhead[any]
	mu     sync.Mutex
	queues [clientBuckets][]*waiter
	turn   []int // buckets with waiters, next first
}

type waiter struct {
	ch      chan struct{}
	granted bool // under mu
}

const fnvOffset, fnvPrime = uint32(2166136261), uint32(16777619)

// fnv extends the FNV-1a hash h with s.
func fnv(h uint32, s string) uint32 {
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= fnvPrime
	}
	return h
}

// bucketOf is the queue of the client of req (nil: a caller outside HTTP).
// It is called for lookups only, never on a cache hit.
func (r *Resolver) bucketOf(req *http.Request) int {
	if req == nil {
		return 0
	}
	if r.clientOf != nil {
		return int(fnv(fnvOffset, r.clientOf(req)) % clientBuckets)
	}
	h := fnv(fnvOffset, remoteIP(req))
	if a := req.Header.Get("Authorization"); a != "" {
		h = fnv(fnv(h, "\x00"), a)
	}
	return int(h % clientBuckets)
}

// acquire takes a permit for a lookup of the client of bucket b, waiting up
// to wait (or until ctx ends) for its turn. It reports whether it got one;
// release it with release.
func (g *fairGate) acquire(ctx context.Context, b int, wait time.Duration) bool {
	g.mu.Lock()
	if len(g.turn) == 0 && g.bh.TryAcquirePermit() {
		g.mu.Unlock()
		return true
	}
	if g.bh.TryAcquirePermit() && !g.grantLocked() {
		g.mu.Unlock() // a free permit and nobody waits after all: take it
		return true
	}
	if wait <= 0 {
		g.mu.Unlock()
		return false
	}
	w := &waiter{ch: make(chan struct{})}
	if len(g.queues[b]) == 0 {
		g.turn = append(g.turn, b)
	}
	g.queues[b] = append(g.queues[b], w)
	g.mu.Unlock()

	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-w.ch:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if w.granted { // granted while giving up: keep it
		return true
	}
	q := g.queues[b]
	for i, x := range q {
		if x == w {
			g.queues[b] = append(q[:i], q[i+1:]...)
			break
		}
	}
	if len(g.queues[b]) == 0 {
		for i, x := range g.turn {
			if x == b {
				g.turn = append(g.turn[:i], g.turn[i+1:]...)
				break
			}
		}
	}
	return false
}

// release hands the permit to the next waiting client, or back to the
// bulkhead when nobody waits.
func (g *fairGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.grantLocked() {
		g.bh.ReleasePermit()
	}
}

// grantLocked gives a held permit to the first waiter of the next client
// in turn, which then goes to the back of the turn. It reports false when
// nobody waits.
func (g *fairGate) grantLocked() bool {
	if len(g.turn) == 0 {
		return false
	}
	b := g.turn[0]
	g.turn = g.turn[1:]
	q := g.queues[b]
	w := q[0]
	q[0] = nil
	g.queues[b] = q[1:]
	if len(g.queues[b]) > 0 {
		g.turn = append(g.turn, b)
	} else {
		g.queues[b] = nil
	}
	w.granted = true
	close(w.ch)
	return true
}

// remoteIP is a request's remote address without the port. Behind a proxy
// every request has the proxy's address; set Options.ClientOf there.
func remoteIP(req *http.Request) string {
	a := req.RemoteAddr
	if i := strings.LastIndexByte(a, ':'); i >= 0 {
		return a[:i]
	}
	return a
}
