// Package cache holds the shared Redis cache of resolved routes: its key
// format, its entry encoding and the revision-aware fill and invalidation that
// keep an old read from replacing a newer change.
package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/trafficmanager/trafficmanager/routes"
)

// Key is the Redis key of a route's cached answer: route:{t}:{s}:{e}:{v}.
func Key(k routes.Key) string { return "route:" + k.String() }

// floorKey holds the newest revision known to be committed for a route. A
// fill with an older revision is refused, so a resolver that read the row just
// before a commit cannot put the old answer back after the invalidation.
func floorKey(k routes.Key) string { return "route-floor:" + k.String() }

// Entry is a cached answer: a positive one (Found, URL) or a negative one.
// Revision is the route's revision when it was read (0 when no row existed).
type Entry struct {
	Found    bool   `json:"found"`
	URL      string `json:"url,omitempty"`
	Revision int64  `json:"revision"`
}

// Redis is the shared cache tier.
type Redis struct {
	c        redis.UniversalClient
	floorTTL time.Duration
}

// NewRedis returns the cache over c. floorTTL bounds how long a revision
// floor is kept; it must exceed the longest time between a resolver's
// Postgres read and its cache fill (the positive TTL is a safe choice).
func NewRedis(c redis.UniversalClient, floorTTL time.Duration) *Redis {
	if floorTTL < time.Second {
		floorTTL = time.Minute
	}
	return &Redis{c: c, floorTTL: floorTTL}
}

// Client returns the underlying client.
func (r *Redis) Client() redis.UniversalClient { return r.c }

// invalidateScript raises the floor to ARGV[1] (never lowers it) and deletes
// the cached answer, positive or negative.
var invalidateScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[2])
if (not cur) or tonumber(cur) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
end
return redis.call('DEL', KEYS[1])
`)

// fillScript stores ARGV[2] (an Entry as JSON with revision ARGV[1]) for
// ARGV[3] ms unless the floor or the entry already cached is newer.
var fillScript = redis.NewScript(`
local floor = redis.call('GET', KEYS[2])
if floor and tonumber(floor) > tonumber(ARGV[1]) then return 0 end
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, e = pcall(cjson.decode, cur)
  if ok and type(e) == 'table' and e.revision and tonumber(e.revision) > tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`)

// Invalidate drops the cached answer of k after a change to revision.
// It is idempotent: running it twice leaves the same state.
func (r *Redis) Invalidate(ctx context.Context, k routes.Key, revision int64) error {
	return r.invalidate(ctx, Key(k), floorKey(k), revision)
}

// Get returns the cached answer of k; ok is false on a miss.
func (r *Redis) Get(ctx context.Context, k routes.Key) (e Entry, ok bool, err error) {
	return getEntry[Entry](ctx, r, Key(k))
}

// Fill caches e for ttl unless a newer revision is known. It reports whether
// the entry was stored.
func (r *Redis) Fill(ctx context.Context, k routes.Key, e Entry, ttl time.Duration) (bool, error) {
	return r.fill(ctx, Key(k), floorKey(k), e.Revision, e, ttl)
}

// invalidate drops key and raises its floor to revision (routes and
// splits alike).
func (r *Redis) invalidate(ctx context.Context, key, floor string, revision int64) error {
	err := invalidateScript.Run(ctx, r.c, []string{key, floor}, revision, r.floorTTL.Milliseconds()).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("invalidate %s: %w", key, err)
	}
	return nil
}

// getEntry reads the JSON entry at key; ok is false on a miss.
func getEntry[T any](ctx context.Context, r *Redis, key string) (e T, ok bool, err error) {
	var zero T
	b, err := r.c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return zero, false, nil
	}
	if err != nil {
		return zero, false, fmt.Errorf("get %s: %w", key, err)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return zero, false, nil // an unreadable entry is a miss; the fill replaces it
	}
	return e, true, nil
}

// fill stores v at key for ttl unless the floor says a newer revision than
// revision is known; it reports whether it was stored.
func (r *Redis) fill(ctx context.Context, key, floor string, revision int64, v any, ttl time.Duration) (bool, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return false, err
	}
	n, err := fillScript.Run(ctx, r.c, []string{key, floor}, revision, string(b), ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("fill %s: %w", key, err)
	}
	return n == 1, nil
}

// Invalidation names one route change to drop from the cache.
type Invalidation struct {
	Key      routes.Key `json:"key"`
	Revision int64      `json:"revision"`
}

// InvalidateMany is Invalidate for many routes in one pipelined round trip.
func (r *Redis) InvalidateMany(ctx context.Context, changes []Invalidation) error {
	if len(changes) == 0 {
		return nil
	}
	// The script is loaded first so the pipeline can use EVALSHA: a
	// pipelined EVALSHA cannot fall back to EVAL on NOSCRIPT by itself.
	if err := invalidateScript.Load(ctx, r.c).Err(); err != nil {
		return fmt.Errorf("invalidate %d routes: %w", len(changes), err)
	}
	pipe := r.c.Pipeline()
	for _, ch := range changes {
		invalidateScript.EvalSha(ctx, pipe, []string{Key(ch.Key), floorKey(ch.Key)}, ch.Revision, r.floorTTL.Milliseconds())
	}
	cmds, err := pipe.Exec(ctx)
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("invalidate %d routes: %w", len(changes), err)
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("invalidate %d routes: %w", len(changes), err)
		}
	}
	return nil
}
