package resolver

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"

	"github.com/maypok86/otter/v2"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/routes"
)

// The unversioned resolve (GET /api/v1/resolve/{t}/{s}/{e}) picks a version
// of the env by its split's weights. Its answer is composed of two kinds
// of cached state:
//
//   - the split's definition (weights, revision): L1, then Redis
//     (split:{t}:{s}:{e}, with a revision floor like a route's), then
//     Postgres; changed only by split mutations, whose workflow
//     invalidates Redis and whose split_changed event drops L1;
//   - each version's URL, resolved through the versioned route tiers, with
//     their own revision rules: a version's URL change needs no split
//     invalidation in Redis.
//
// The composed answer (the versions' pre-encoded bodies and the slot
// table) is kept in a split L1 keyed by the path suffix "t/s/e". It is
// dropped by the split's events and by every route event of the env (a
// URL change, or a change of which versions are active when the env has
// no split), and a read that began before such a drop never stores its
// answer (generations, as revisions do for routes).

// SplitLookup is what the unversioned resolve needs from the source of
// truth; *routes.Store has it. Without it (Options.Store lacks it), the
// unversioned resolve answers 503.
type SplitLookup interface {
	SplitState(ctx context.Context, k routes.SplitKey) (routes.Split, bool, error)
	ActiveVersions(ctx context.Context, k routes.SplitKey) ([]string, error)
}

var _ SplitLookup = (*routes.Store)(nil)

// splitTier is the split state of a Resolver.
type splitTier struct {
	store SplitLookup
	l1    *otter.Cache[string, *splitEntry]
	// gen grows with every drop; an entry read before a drop carries an
	// older generation than the drop's tombstone and is not stored.
	gen   atomic.Int64
	group singleflight.Group
}

// splitChoice is one version of a composed answer.
type splitChoice struct {
	version string
	header  []string // X-Route-Version
	body    []byte   // {"url": ..., "version": ...}
}

// splitEntry is one composed answer, immutable once stored.
type splitEntry struct {
	choices    []splitChoice
	table      *slotTable // nil with a single choice
	revision   int64      // the split's revision (0: none)
	gen        int64
	freshUntil int64
	staleUntil int64
	kind       kind
}

// SplitAnswer is an unversioned resolve's answer.
type SplitAnswer struct {
	e      *splitEntry
	choice *splitChoice
	src    Source
}

// Found reports whether a version was picked (200).
func (a SplitAnswer) Found() bool { return a.choice != nil }

// Version is the picked version.
func (a SplitAnswer) Version() string {
	if a.choice == nil {
		return ""
	}
	return a.choice.version
}

// Body is the 200 body; shared with the cache, callers must not modify it.
func (a SplitAnswer) Body() []byte {
	if a.choice == nil {
		return nil
	}
	return a.choice.body
}

// Source is the tier the answer came from.
func (a SplitAnswer) Source() Source { return a.src }

// Revision is the split's revision the answer was composed at (0: the env
// has no split).
func (a SplitAnswer) Revision() int64 {
	if a.e == nil {
		return 0
	}
	return a.e.revision
}

func newSplitTier(store Lookup, entries int, clock otter.Clock) (*splitTier, error) {
	sl, _ := store.(SplitLookup)
	// An answer holds a 10 KB slot table: a hundredth of the route L1's
	// entries (at least 1,000 splits, about 10 MB) bounds its memory.
	l1, err := otter.New(&otter.Options[string, *splitEntry]{MaximumSize: max(entries/100, 1000), Clock: clock})
	if err != nil {
		return nil, err
	}
	return &splitTier{store: sl, l1: l1}, nil
}

// pick chooses a version of e: by the key's slot when key is set (sticky),
// else by a random slot (weighted random).
func (e *splitEntry) pick(key string, src Source) SplitAnswer {
	if e.kind != kindPositive {
		return SplitAnswer{e: e, src: src}
	}
	i := 0
	if e.table != nil {
		var slot int
		if key != "" {
			slot = keySlot(key)
		} else {
			slot = int(rand.Uint64N(splitSlots))
		}
		i = int(e.table[slot])
	}
	return SplitAnswer{e: e, choice: &e.choices[i], src: src}
}

// ResolveSplit picks a version of the env k by its split (sticky by
// routeKey when it is not empty). Without a split the env's only active
// version is served; otherwise the answer is not found (split_not_found).
func (r *Resolver) ResolveSplit(ctx context.Context, k routes.SplitKey, routeKey string) (SplitAnswer, error) {
	return r.resolveSplit(ctx, k.Tenant+"/"+k.Service+"/"+k.Env, k, routeKey)
}

func (r *Resolver) resolveSplit(ctx context.Context, key string, k routes.SplitKey, routeKey string) (SplitAnswer, error) {
	e, ok := r.splits.l1.GetIfPresent(key)
	if ok && e.kind != kindTombstone && r.clock.NowNano() < e.freshUntil {
		r.l1Hits.Inc()
		if e.kind == kindPositive {
			r.m.CacheHit.Inc()
			return e.pick(routeKey, SourceHit), nil
		}
		r.m.NegativeCacheHit.Inc()
		return e.pick(routeKey, SourceNegativeHit), nil
	}
	return r.slowSplit(ctx, key, k, routeKey)
}

type splitFetched struct {
	e      *splitEntry
	cached bool // composed from cached tiers only (no Postgres read)
}

func (r *Resolver) slowSplit(ctx context.Context, key string, k routes.SplitKey, routeKey string) (SplitAnswer, error) {
	if err := k.Validate(); err != nil {
		return SplitAnswer{}, err
	}
	if r.splits.store == nil {
		return SplitAnswer{}, fmt.Errorf("%w: the route store cannot read splits", ErrUnavailable)
	}
	owned := strings.Clone(key)
	ch := r.splits.group.DoChan(owned, func() (any, error) {
		return r.fetchSplit(context.WithoutCancel(ctx), owned, k)
	})
	var res singleflight.Result
	select {
	case res = <-ch:
	case <-ctx.Done():
		return SplitAnswer{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
	if res.Err == nil {
		f := res.Val.(splitFetched)
		src := SourceMiss
		switch {
		case f.cached && f.e.kind == kindPositive:
			src = SourceHit
			r.m.CacheHit.Inc()
		case f.cached:
			src = SourceNegativeHit
			r.m.NegativeCacheHit.Inc()
		default:
			r.m.CacheMiss.Inc()
		}
		return f.e.pick(routeKey, src), nil
	}
	if old, ok := r.splits.l1.GetIfPresent(owned); ok && old.kind != kindTombstone && r.clock.NowNano() < old.staleUntil {
		r.m.Stale.Inc()
		return old.pick(routeKey, SourceStale), nil
	}
	return SplitAnswer{}, res.Err
}

// fetchSplit composes the answer of k from the split's definition and its
// versions' routes, and stores it in the split L1 unless a drop happened
// since it began.
func (r *Resolver) fetchSplit(ctx context.Context, key string, k routes.SplitKey) (splitFetched, error) {
	start := r.splits.gen.Load()
	def, cached, err := r.splitDefinition(ctx, k)
	if err != nil {
		return splitFetched{}, err
	}
	var versions []string
	if def.Found {
		versions = def.Weights.Versions()
	} else {
		if err := r.splitQueryPermit(ctx); err != nil {
			return splitFetched{}, err
		}
		qctx, cancel := context.WithTimeout(ctx, r.dbTimeout)
		active, err := r.splits.store.ActiveVersions(qctx, k)
		cancel()
		r.bulkhead.ReleasePermit()
		if err != nil {
			r.pgCB.RecordFailure()
			return splitFetched{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		r.pgCB.RecordSuccess()
		cached = false
		if len(active) == 1 {
			versions = active
		}
	}
	e := &splitEntry{revision: def.Revision, gen: start, kind: kindNegative}
	choices := make([]splitChoice, len(versions))
	found := make([]bool, len(versions))
	nFound, missing := 0, false
	for i, v := range versions {
		if def.Found && def.Weights[v] == 0 {
			continue // no traffic: not resolved, owns no slot
		}
		a, err := r.Resolve(ctx, k.Route(v))
		if err != nil {
			return splitFetched{}, err
		}
		if a.Source() == SourceMiss {
			cached = false
		}
		if !a.Found() {
			// Not served while inactive (the store refuses to deactivate
			// a version of a split; this is a race with such a change):
			// the other versions share its weight.
			r.log.Warn("split version is not an active route", zap.String("split", k.String()), zap.String("version", v))
			missing = true
			continue
		}
		body, _ := json.Marshal(struct {
			URL     string `json:"url"`
			Version string `json:"version"`
		}{a.URL(), v})
		choices[i], found[i] = splitChoice{version: v, header: []string{v}, body: body}, true
		nFound++
	}
	ttl := r.negativeTTL
	switch {
	case nFound == 0:
	case def.Found && !missing && len(def.Slots) == splitSlots:
		// The stored table: its indexes are the versions in name order.
		e.kind, ttl, e.choices = kindPositive, r.positiveTTL, choices
		e.table = new(slotTable)
		copy(e.table[:], def.Slots)
	default:
		e.kind, ttl = kindPositive, r.positiveTTL
		weights := routes.Weights{}
		var names []string
		for i, c := range choices {
			if found[i] {
				e.choices = append(e.choices, c)
				names = append(names, c.version)
				weights[c.version] = max(def.Weights[c.version], 1)
			}
		}
		if len(e.choices) > 1 {
			e.table = buildSlotTable(names, weights)
		}
	}
	e.freshUntil = r.clock.NowNano() + int64(ttl)
	e.staleUntil = e.freshUntil + int64(r.staleFor)
	r.splits.l1.Compute(key, func(old *splitEntry, found bool) (*splitEntry, otter.ComputeOp) {
		if found && old.gen > start {
			return old, otter.CancelOp // dropped while we read: do not store
		}
		return e, otter.WriteOp
	})
	return splitFetched{e: e, cached: cached}, nil
}

func (r *Resolver) splitQueryPermit(ctx context.Context) error {
	if err := r.bulkhead.AcquirePermitWithMaxWait(ctx, r.inflightWait); err != nil {
		return errRejected
	}
	if !r.pgCB.TryAcquirePermit() {
		r.bulkhead.ReleasePermit()
		return fmt.Errorf("%w: postgres circuit open", ErrUnavailable)
	}
	return nil
}

// splitDefinition reads the split of k from Redis, else from Postgres
// (then fills Redis unless it knows a newer revision).
func (r *Resolver) splitDefinition(ctx context.Context, k routes.SplitKey) (cache.SplitEntry, bool, error) {
	if ce, ok := r.redisGetSplit(ctx, k); ok {
		return ce, true, nil
	}
	if err := r.splitQueryPermit(ctx); err != nil {
		return cache.SplitEntry{}, false, err
	}
	qctx, cancel := context.WithTimeout(ctx, r.dbTimeout)
	sp, found, err := r.splits.store.SplitState(qctx, k)
	cancel()
	r.bulkhead.ReleasePermit()
	r.m.DBQueries.Inc()
	if err != nil {
		r.pgCB.RecordFailure()
		r.log.Warn("split lookup failed", zap.String("split", k.String()), zap.Error(err))
		return cache.SplitEntry{}, false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	r.pgCB.RecordSuccess()
	ce := cache.SplitEntry{Found: found, Weights: sp.Weights, Revision: sp.Revision, Slots: sp.Slots}
	if !found {
		ce.Weights, ce.Slots = nil, nil
	}
	r.redisFillSplit(ctx, k, ce)
	return ce, false, nil
}

func (r *Resolver) redisGetSplit(ctx context.Context, k routes.SplitKey) (cache.SplitEntry, bool) {
	if r.redis == nil || !r.redisCB.TryAcquirePermit() {
		return cache.SplitEntry{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, r.redisTimeout)
	defer cancel()
	e, ok, err := r.redis.GetSplit(ctx, k)
	if err != nil {
		r.redisCB.RecordFailure()
		return cache.SplitEntry{}, false
	}
	r.redisCB.RecordSuccess()
	return e, ok
}

func (r *Resolver) redisFillSplit(ctx context.Context, k routes.SplitKey, e cache.SplitEntry) {
	if r.redis == nil || !r.redisCB.TryAcquirePermit() {
		return
	}
	ttl := r.negativeTTL
	if e.Found {
		ttl = r.positiveTTL
	}
	ctx, cancel := context.WithTimeout(ctx, r.redisTimeout)
	defer cancel()
	if _, err := r.redis.FillSplit(ctx, k, e, ttl); err != nil {
		r.redisCB.RecordFailure()
		return
	}
	r.redisCB.RecordSuccess()
}

// dropSplit drops the composed answer of the env (t, s, e) from L1: after
// its split changed, or any route of the env did.
func (r *Resolver) dropSplit(tenant, service, env string) {
	key := tenant + "/" + service + "/" + env
	tomb := &splitEntry{kind: kindTombstone, gen: r.splits.gen.Add(1)}
	r.splits.l1.Set(key, tomb)
	r.splits.group.Forget(key)
}

// InvalidateSplit applies a split_changed event: the env's composed answer
// is dropped from L1 (Redis is the write path's job, as for routes).
func (r *Resolver) InvalidateSplit(_ context.Context, k routes.SplitKey) {
	r.dropSplit(k.Tenant, k.Service, k.Env)
	r.m.Invalidations.Inc()
}
