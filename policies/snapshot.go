package policies

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"
)

// RefreshEvery is how often a Snapshot reloads every policy: a policy set
// through another api process applies here within it.
const RefreshEvery = 2 * time.Second

// ErrNotLoaded says the snapshot has never been loaded (Postgres has not
// answered since the process started): the write path cannot know whether
// a write needs approval.
var ErrNotLoaded = errors.New("tenant policies are not loaded yet")

// Storer is what a Snapshot needs from the store (Store).
type Storer interface {
	Get(ctx context.Context, tenant string) (Policy, error)
	Put(ctx context.Context, p Policy) (Policy, error)
	All(ctx context.Context) ([]Policy, error)
}

var _ Storer = (*Store)(nil)

// Snapshot is every tenant's policy in memory, refreshed from the store in
// the background (Run) and at once after a Put through it. The write path
// reads it (Current) without a query, so writes are accepted while
// Postgres is down, with the policies last seen.
type Snapshot struct {
	store Storer
	log   *zap.Logger

	mu       sync.RWMutex
	loaded   bool
	policies map[string]Policy
	// gen counts Puts; puts holds the Puts a refresh running meanwhile
	// may not have seen, so a slow refresh never brings back an older
	// policy than the one just stored here.
	gen  uint64
	puts map[string]put
}

type put struct {
	p   Policy
	gen uint64
}

// NewSnapshot returns an empty, not yet loaded snapshot over store.
func NewSnapshot(store Storer, log *zap.Logger) *Snapshot {
	if log == nil {
		log = zap.NewNop()
	}
	return &Snapshot{store: store, log: log, policies: map[string]Policy{}, puts: map[string]put{}}
}

// Run loads the policies now and then every RefreshEvery until ctx is
// done. A failed refresh keeps the policies last loaded.
func (s *Snapshot) Run(ctx context.Context) {
	t := time.NewTicker(RefreshEvery)
	defer t.Stop()
	failing := false
	for {
		err := s.Refresh(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			s.log.Warn("tenant policies not refreshed; keeping the last ones", zap.Error(err))
			failing = true
		case err == nil && failing:
			s.log.Info("tenant policies refreshed again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Refresh reloads every policy from the store.
func (s *Snapshot) Refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, RefreshEvery)
	defer cancel()
	s.mu.RLock()
	since := s.gen
	s.mu.RUnlock()
	all, err := s.store.All(ctx)
	if err != nil {
		return err
	}
	m := make(map[string]Policy, len(all))
	for _, p := range all {
		m[p.Tenant] = p
	}
	s.mu.Lock()
	for t, pu := range s.puts {
		if pu.gen > since {
			m[t] = pu.p
		} else {
			delete(s.puts, t)
		}
	}
	s.policies, s.loaded = m, true
	s.mu.Unlock()
	return nil
}

// Current returns tenant's policy as last loaded (Default when it has
// none), or ErrNotLoaded.
func (s *Snapshot) Current(tenant string) (Policy, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.loaded {
		return Policy{}, ErrNotLoaded
	}
	if p, ok := s.policies[tenant]; ok {
		return p, nil
	}
	return Default(tenant), nil
}

// Get reads tenant's policy from the store (the GET endpoint: the stored
// truth, not the snapshot).
func (s *Snapshot) Get(ctx context.Context, tenant string) (Policy, error) {
	return s.store.Get(ctx, tenant)
}

// Put stores p and makes it current in this process at once; other
// processes see it within RefreshEvery.
func (s *Snapshot) Put(ctx context.Context, p Policy) (Policy, error) {
	out, err := s.store.Put(ctx, p)
	if err != nil {
		return Policy{}, err
	}
	s.mu.Lock()
	// A snapshot that was never loaded stays so: one policy is not all of
	// them.
	s.gen++
	s.policies[out.Tenant] = out
	s.puts[out.Tenant] = put{p: out, gen: s.gen}
	s.mu.Unlock()
	return out, nil
}
