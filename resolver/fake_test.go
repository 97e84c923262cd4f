package resolver

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trafficmanager/trafficmanager/routes"
)

// memStore is an in-memory Lookup for tests that need no Postgres. Err, when
// set, is returned by every call, as a Postgres outage would be.
type memStore struct {
	mu     sync.Mutex
	routes map[routes.Key]routes.Route
	err    error
	delay  time.Duration
	gate   chan struct{} // when set, Get reads the route, then waits for it to close
	calls  atomic.Int64
	held   atomic.Int64 // Get calls that read their route and wait for gate
	active atomic.Int64 // Get calls in progress
	peak   atomic.Int64 // most Get calls ever in progress at once
}

func newMemStore() *memStore { return &memStore{routes: map[routes.Key]routes.Route{}} }

func (s *memStore) put(k routes.Key, url string, active bool) routes.Route {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.routes[k]
	r.Tenant, r.Service, r.Env, r.Version = k.Tenant, k.Service, k.Env, k.Version
	r.URL, r.IsActive = url, active
	r.Revision++
	r.UpdatedAt = time.Now()
	s.routes[k] = r
	return r
}

func (s *memStore) setErr(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

func (s *memStore) Get(ctx context.Context, k routes.Key) (routes.Route, error) {
	s.calls.Add(1)
	n := s.active.Add(1)
	defer s.active.Add(-1)
	for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
	}
	s.mu.Lock()
	r, ok := s.routes[k]
	err, delay, gate := s.err, s.delay, s.gate
	s.mu.Unlock()
	if gate != nil {
		s.held.Add(1)
		<-gate
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return routes.Route{}, ctx.Err()
		}
	}
	if err != nil {
		return routes.Route{}, err
	}
	if !ok {
		return routes.Route{}, routes.ErrNotFound
	}
	return r, nil
}

func (s *memStore) Recent(ctx context.Context, n int) ([]routes.Route, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []routes.Route
	for _, r := range s.routes {
		if r.IsActive {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UpdatedAt.After(out[j].UpdatedAt) })
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}

var errDown = errors.New("connection refused")

// countingLookup counts the Get calls that reach the wrapped Lookup.
type countingLookup struct {
	Lookup
	n atomic.Int64
}

func (c *countingLookup) Get(ctx context.Context, k routes.Key) (routes.Route, error) {
	c.n.Add(1)
	return c.Lookup.Get(ctx, k)
}
