// Package resolver is the read path of Traffic Manager: the tiered,
// cache-aside lookup of a route's URL (in-process L1, shared Redis, then
// Postgres) and the Gin service that answers
// GET /api/v1/resolve/{tenant}/{service}/{env}/{version} with it.
//
// Every instance consumes the route-events topic and drops a changed route
// from L1 and Redis within milliseconds of the event; cached answers carry the
// route revision so an older read never replaces a newer one. Postgres lookups
// are deduplicated per key (singleflight), bounded (bulkhead) and guarded by a
// circuit breaker; when Postgres cannot answer, an answer still held in L1 is
// served past its TTL (stale-if-error).
package resolver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/routes"
)

// Lookup is what the resolver needs from the source of truth.
// *routes.Store satisfies it; Get returns routes.ErrNotFound for a missing route.
type Lookup interface {
	Get(ctx context.Context, k routes.Key) (routes.Route, error)
}

// Recent is what Warm needs in addition; *routes.Store has it.
type Recent interface {
	Recent(ctx context.Context, n int) ([]routes.Route, error)
}

var _ interface {
	Lookup
	Recent
} = (*routes.Store)(nil)

// ErrUnavailable is returned by Resolve when the answer is in no cache and
// Postgres cannot give it (down, circuit open, or too many lookups in flight).
var ErrUnavailable = errors.New("route source unavailable")

// errRejected is the ErrUnavailable of a lookup refused by the bulkhead.
var errRejected = fmt.Errorf("%w: too many route lookups in flight", ErrUnavailable)

// Defaults for zero Options fields.
const (
	DefaultL1Entries    = 100_000
	DefaultPositiveTTL  = 60 * time.Second
	DefaultNegativeTTL  = 10 * time.Second
	DefaultStaleFor     = 5 * time.Minute
	DefaultMaxInflight  = 32
	DefaultInflightWait = 25 * time.Millisecond
	DefaultDBTimeout    = 2 * time.Second
	DefaultRedisTimeout = 75 * time.Millisecond
)

// Options configure a Resolver. Only Store is required.
type Options struct {
	Store Lookup
	// Redis is the shared tier; nil runs with L1 and Postgres only. Build its
	// client with RedisOptions so Redis calls honour RedisTimeout.
	Redis *cache.Redis
	// L1Entries bounds the in-process cache by entry count (0: DefaultL1Entries;
	// negative: answers are not kept in-process, only event revision floors).
	L1Entries int
	// PositiveTTL and NegativeTTL are the cache TTLs of found and not-found answers.
	PositiveTTL, NegativeTTL time.Duration
	// StaleFor is how long L1 keeps an answer past its TTL to serve it when
	// Postgres cannot be reached (0: DefaultStaleFor; negative: never).
	StaleFor time.Duration
	// MaxInflight bounds concurrent Postgres lookups; a lookup that waits more
	// than InflightWait for a slot fails with ErrUnavailable.
	MaxInflight  int
	InflightWait time.Duration
	// ClientOf names the client of an HTTP request for the fair queuing of
	// Postgres lookups (fair.go); default: its remote IP and bearer token.
	// Behind a proxy, name the client from a header the proxy sets.
	ClientOf func(*http.Request) string
	// DBTimeout and RedisTimeout bound one Postgres or Redis call.
	DBTimeout, RedisTimeout time.Duration
	// Metrics default to a set registered on a private registry.
	Metrics *observability.ResolveMetrics
	Logger  *zap.Logger
}

// Source says where an answer came from; String is the X-Cache header value.
type Source uint8

// The answer sources of API.md's X-Cache header.
const (
	SourceMiss        Source = iota // read from Postgres
	SourceHit                       // a fresh positive answer from L1 or Redis
	SourceNegativeHit               // a fresh negative answer from L1 or Redis
	SourceStale                     // past its TTL, served because Postgres could not answer
)

var sourceNames = [...]string{"miss", "hit", "negative-hit", "stale"}

func (s Source) String() string { return sourceNames[s] }

// Answer is a resolved route: found (with its URL) or not found (missing or
// inactive), and the tier it came from. It is two words, so the hot path
// copies little; the entry it points to is immutable.
type Answer struct {
	e   *entry
	src Source
}

// Found reports whether the route exists and is active (200).
func (a Answer) Found() bool { return a.e != nil && a.e.kind == kindPositive }

// URL is the route's URL when Found.
func (a Answer) URL() string {
	if a.e == nil {
		return ""
	}
	return a.e.url
}

// Revision is the route revision the answer was read at (0: no such route).
func (a Answer) Revision() int64 {
	if a.e == nil {
		return 0
	}
	return a.e.revision
}

// Source is the tier the answer came from.
func (a Answer) Source() Source { return a.src }

// Body returns the 200 response body {"url": ...} of a found answer. It is
// shared with the cache: callers must not modify it.
func (a Answer) Body() []byte {
	if a.e == nil {
		return nil
	}
	return a.e.body
}

// Resolver is the tiered lookup. It is safe for concurrent use.
type Resolver struct {
	store        Lookup
	redis        *cache.Redis
	l1           *otter.Cache[string, *entry]
	l1Answers    bool
	clock        *otter.CoarseClock
	positiveTTL  time.Duration
	negativeTTL  time.Duration
	staleFor     time.Duration
	dbTimeout    time.Duration
	redisTimeout time.Duration
	inflightWait time.Duration
	maxInflight  int
	clientOf     func(*http.Request) string
	gate         fairGate // the bulkhead's permits, queued fairly per client (fair.go)

	group    singleflight.Group
	bulkhead bulkhead.Bulkhead[any]
	inflight atomic.Int64
	pgCB     circuitbreaker.CircuitBreaker[any]
	redisCB  circuitbreaker.CircuitBreaker[any]

	m       *observability.ResolveMetrics
	l1Hits  prometheus.Counter
	rdsHits prometheus.Counter
	log     *zap.Logger

	ready    atomic.Bool
	draining atomic.Bool

	watch atomic.Pointer[watchHub] // the watch stream, once EnableWatch (watch.go)

	splits *splitTier // the unversioned resolve (split.go)
}

// New builds a resolver from o.
func New(o Options) (*Resolver, error) {
	if o.Store == nil {
		return nil, errors.New("resolver: Options.Store is required")
	}
	r := &Resolver{
		store:        o.Store,
		redis:        o.Redis,
		l1Answers:    o.L1Entries >= 0,
		positiveTTL:  orDefault(o.PositiveTTL, DefaultPositiveTTL),
		negativeTTL:  orDefault(o.NegativeTTL, DefaultNegativeTTL),
		staleFor:     orDefault(o.StaleFor, DefaultStaleFor),
		dbTimeout:    orDefault(o.DBTimeout, DefaultDBTimeout),
		redisTimeout: orDefault(o.RedisTimeout, DefaultRedisTimeout),
		inflightWait: orDefault(o.InflightWait, DefaultInflightWait),
		maxInflight:  o.MaxInflight,
		clientOf:     o.ClientOf,
		m:            o.Metrics,
		log:          o.Logger,
	}
	if r.staleFor < 0 {
		r.staleFor = 0
	}
	if r.maxInflight <= 0 {
		r.maxInflight = DefaultMaxInflight
	}
	if r.log == nil {
		r.log = zap.NewNop()
	}
	if r.m == nil {
		r.m = observability.NewResolveMetrics(prometheus.NewRegistry())
	}
	r.l1Hits = r.m.TierHits.WithLabelValues("l1")
	r.rdsHits = r.m.TierHits.WithLabelValues("redis")

	entries := o.L1Entries
	switch {
	case entries == 0:
		entries = DefaultL1Entries
	case entries < 0:
		entries = 10_000 // tombstones only
	}
	// One coarse clock for otter's expiry and the freshness check: reading
	// it costs an atomic load instead of a call to time.Now on every hit.
	r.clock = otter.NewCoarseClock(5 * time.Millisecond)
	l1, err := newL1(entries, r.clock)
	if err != nil {
		return nil, fmt.Errorf("resolver: l1 cache: %w", err)
	}
	r.l1 = l1
	if r.splits, err = newSplitTier(o.Store, entries, r.clock); err != nil {
		return nil, fmt.Errorf("resolver: split cache: %w", err)
	}

	r.bulkhead = bulkhead.New[any](uint(r.maxInflight))
	r.gate.bh = r.bulkhead
	r.pgCB = newBreaker("postgres", 5, 2*time.Second, r.log)
	r.redisCB = newBreaker("redis", 3, 5*time.Second, r.log)
	return r, nil
}

func newBreaker(name string, failures uint, delay time.Duration, log *zap.Logger) circuitbreaker.CircuitBreaker[any] {
	return circuitbreaker.NewBuilder[any]().
		WithFailureThreshold(failures).
		WithSuccessThreshold(1).
		WithDelay(delay).
		WithJitterFactor(0.2).
		OnStateChanged(func(e circuitbreaker.StateChangedEvent) {
			log.Warn("circuit breaker state changed", zap.String("breaker", name),
				zap.Stringer("from", e.OldState), zap.Stringer("to", e.NewState))
		}).
		Build()
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Close stops the resolver's clock goroutine. The resolver stays usable.
func (r *Resolver) Close() { r.clock.Stop() }

// MarkReady makes /readyz answer 200 (unless draining). Call it once the
// event consumer is subscribed (ConsumeEvents' ready callback) and warming is
// done, or at start when no event topic is configured.
func (r *Resolver) MarkReady() { r.ready.Store(true) }

// SetDraining makes /readyz answer 503 so load balancers stop sending traffic.
// Open watch streams end (watch.go's closeWatch) so they resume elsewhere.
func (r *Resolver) SetDraining() { r.draining.Store(true); r.closeWatch() }

// Ready reports whether /readyz answers 200.
func (r *Resolver) Ready() bool { return r.ready.Load() && !r.draining.Load() }

// Resolve returns the answer for k: found (200) or not found (404) with the
// tier it came from. It fails with a routes.InvalidError for a bad name and
// with ErrUnavailable when no cache holds the answer and Postgres cannot give
// it. Request counts and latency are recorded by the HTTP handler, not here.
func (r *Resolver) Resolve(ctx context.Context, k routes.Key) (Answer, error) {
	var buf [maxKeyLen]byte
	return r.resolve(ctx, keyBuf(&buf, k), k, nil)
}

// resolve looks key (l1Key(k), possibly aliasing a caller's buffer) up for
// the client of req (nil: none; see fair.go). The fast path, a fresh L1
// entry, does not allocate.
func (r *Resolver) resolve(ctx context.Context, key string, k routes.Key, req *http.Request) (Answer, error) {
	e, ok := r.l1.GetIfPresent(key)
	if ok && e.kind != kindTombstone && r.clock.NowNano() < e.freshUntil {
		r.l1Hits.Inc()
		return r.hit(e), nil
	}
	return r.slow(ctx, key, k, req)
}

func (r *Resolver) hit(e *entry) Answer {
	if e.kind == kindPositive {
		r.m.CacheHit.Inc()
		return e.answer(SourceHit)
	}
	r.m.NegativeCacheHit.Inc()
	return e.answer(SourceNegativeHit)
}

// slow tries Redis, then runs the Postgres lookup once per key for all
// concurrent requests of that key, and falls back to a stale L1 answer on
// failure.
func (r *Resolver) slow(ctx context.Context, key string, k routes.Key, req *http.Request) (Answer, error) {
	// Validating here rather than in Resolve keeps it off the hit path and is
	// as safe: L1 answers are only stored for valid keys, and no invalid key
	// renders to the L1 key of a valid one (a '/' inside a name makes more
	// than three separators).
	if err := validate(k); err != nil {
		return Answer{}, err
	}
	// key may alias a caller's buffer; singleflight and otter keep theirs.
	owned := strings.Clone(key)
	// Redis first, in the caller's goroutine: a Redis hit costs one round
	// trip, without the singleflight hand-off that only a Postgres query
	// is worth (measured: 1.45x a bare GET through singleflight).
	if e, ok := r.fromRedis(ctx, owned, k); ok {
		r.rdsHits.Inc()
		return r.hit(e), nil
	}
	ch := r.group.DoChan(owned, func() (any, error) {
		// Detached from the first caller so its cancellation does not fail
		// the requests sharing this call; bounded by the tier timeouts.
		return r.fetch(context.WithoutCancel(ctx), owned, k, req)
	})
	var res singleflight.Result
	select {
	case res = <-ch:
	case <-ctx.Done():
		return Answer{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
	if res.Err == nil {
		r.m.CacheMiss.Inc()
		return res.Val.(*entry).answer(SourceMiss), nil
	}
	if old, ok := r.l1.GetIfPresent(owned); ok && old.kind != kindTombstone && r.clock.NowNano() < old.staleUntil {
		r.m.Stale.Inc()
		return old.answer(SourceStale), nil
	}
	if errors.Is(res.Err, errRejected) {
		r.m.Rejected.Inc()
	}
	return Answer{}, res.Err
}

// fromRedis returns the Redis answer for key and copies it into L1, unless
// it is older than what an event told us about (a Redis invalidation that
// failed): that is a miss.
func (r *Resolver) fromRedis(ctx context.Context, key string, k routes.Key) (*entry, bool) {
	ce, ok := r.redisGet(ctx, k)
	if !ok {
		return nil, false
	}
	if old, found := r.l1.GetIfPresent(key); found && old.revision > ce.Revision {
		return nil, false
	}
	e := r.fromCacheEntry(ce)
	r.l1Fill(key, e)
	return e, true
}

// fetch reads key from Postgres (the caller has just missed Redis) and
// fills the caches. A request that missed L1 and Redis just before another
// flight for the same key finished finds that flight's answer in L1 here,
// so concurrent misses still cost one query.
//
// An answer overtaken by an event of a newer revision while it was read is
// still returned to the requests that shared the read (they began before
// the change) but cached nowhere: in Redis every other resolver would serve
// it until its TTL, since only this one has seen the event. The Redis floor
// refuses it too once the write path has invalidated Redis, but that may not
// have happened yet, or have failed.
func (r *Resolver) fetch(ctx context.Context, key string, k routes.Key, req *http.Request) (*entry, error) {
	if e, ok := r.l1.GetIfPresent(key); ok && e.kind != kindTombstone && r.clock.NowNano() < e.freshUntil {
		return e, nil
	}
	e, err := r.query(ctx, k, req)
	if err != nil {
		return nil, err
	}
	if !r.l1Fill(key, e) {
		return e, nil
	}
	if r.redisFill(ctx, k, e) {
		// The event may have arrived between the check above and the Redis
		// write: undo the write as the write path's invalidation would.
		if newer := r.l1Revision(key); newer > e.revision {
			r.redisInvalidate(ctx, k, newer)
		}
	}
	return e, nil
}

// query reads k from Postgres inside the bulkhead (waiting in the queue of
// req's client for a permit, fair.go) and the circuit breaker.
func (r *Resolver) query(ctx context.Context, k routes.Key, req *http.Request) (*entry, error) {
	if !r.gate.acquire(ctx, r.bucketOf(req), r.inflightWait) {
		return nil, errRejected
	}
	defer r.gate.release()
	r.inflight.Add(1)
	defer r.inflight.Add(-1)
	if !r.pgCB.TryAcquirePermit() {
		return nil, fmt.Errorf("%w: postgres circuit open", ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, r.dbTimeout)
	defer cancel()
	r.m.DBQueries.Inc()
	route, err := r.store.Get(ctx, k)
	switch {
	case err == nil:
		r.pgCB.RecordSuccess()
	case errors.Is(err, routes.ErrNotFound):
		r.pgCB.RecordSuccess()
		return r.newEntry(false, "", 0, r.negativeTTL), nil
	default:
		r.pgCB.RecordFailure()
		r.log.Warn("route lookup failed", zap.Stringer("route", k), zap.Error(err))
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if !route.IsActive {
		return r.newEntry(false, "", route.Revision, r.negativeTTL), nil
	}
	return r.newEntry(true, route.URL, route.Revision, r.positiveTTL), nil
}

// Invalidate applies a route event: it drops k's cached answers older than
// revision from L1, and makes later lookups of k start a new Postgres read
// instead of joining one that began before the change.
//
// Redis is left to the write path's workflow, which invalidates it durably
// before or while the event is published: a Redis answer older than the L1
// tombstone is treated as a miss (fromRedis), so this instance never serves
// it, nor writes one there (fetch), and every resolver instance deleting the
// key again for every event would multiply Redis writes by the number of
// instances (in the bulk benchmark it was 14 % of the dev process's CPU).
func (r *Resolver) Invalidate(_ context.Context, k routes.Key, revision int64) {
	key := l1Key(k)
	r.l1Drop(key, revision)
	r.group.Forget(key)
	r.dropSplit(k.Tenant, k.Service, k.Env) // the env's unversioned answer uses its routes
	r.m.Invalidations.Inc()
	r.wakeWatch(k.Tenant) // the tenant's watch streams (watch.go)
}

// Warm loads the n most recently changed active routes into L1. The store
// must also implement Recent.
func (r *Resolver) Warm(ctx context.Context, n int) error {
	if n <= 0 {
		return nil
	}
	rs, ok := r.store.(Recent)
	if !ok {
		return errors.New("resolver: warm: the store cannot list recent routes")
	}
	list, err := rs.Recent(ctx, n)
	if err != nil {
		return fmt.Errorf("warm %d routes: %w", n, err)
	}
	for _, rt := range list {
		if rt.IsActive {
			r.l1Fill(l1Key(rt.Key()), r.newEntry(true, rt.URL, rt.Revision, r.positiveTTL))
		}
	}
	r.log.Info("resolver cache warmed", zap.Int("routes", len(list)))
	return nil
}
