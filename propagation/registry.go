package propagation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RegistryOptions configure a Registry. Only Redis is required.
type RegistryOptions struct {
	Redis  redis.Cmdable
	Prefix string
	// Liveness is how old a last heartbeat may be for its resolver to
	// count as live (DefaultLiveness: 5 heartbeats of 1 s). A killed
	// resolver leaves the live set within it.
	Liveness time.Duration
	// Poll is the interval at which Wait asks again (DefaultPoll).
	Poll time.Duration
	// Now is the clock (time.Now by default). Heartbeats carry the
	// reporters' clocks, so hosts must keep their clocks in sync (NTP) to
	// well under Liveness.
	Now func() time.Time
}

// Registry reads what the resolvers report: the api's side.
type Registry struct {
	rdb      redis.Cmdable
	k        keys
	liveness time.Duration
	poll     time.Duration
	now      func() time.Time
}

// NewRegistry returns a registry over o.Redis.
func NewRegistry(o RegistryOptions) (*Registry, error) {
	if o.Redis == nil {
		return nil, errors.New("propagation: RegistryOptions.Redis is required")
	}
	g := &Registry{
		rdb:      o.Redis,
		k:        newKeys(o.Prefix),
		liveness: orDefault(o.Liveness, DefaultLiveness),
		poll:     orDefault(o.Poll, DefaultPoll),
		now:      o.Now,
	}
	if g.now == nil {
		g.now = time.Now
	}
	return g, nil
}

func (g *Registry) minScore() string {
	return strconv.FormatInt(unixMS(g.now())-g.liveness.Milliseconds(), 10)
}

// Live returns the live resolvers, sorted by id (two round trips).
func (g *Registry) Live(ctx context.Context) ([]Resolver, error) {
	zs, err := g.rdb.ZRangeByScoreWithScores(ctx, g.k.set(), &redis.ZRangeBy{Min: g.minScore(), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("live resolvers: %w", err)
	}
	if len(zs) == 0 {
		return []Resolver{}, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(zs))
	_, err = g.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, z := range zs {
			cmds[i] = p.HGetAll(ctx, g.k.resolver(z.Member.(string)))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("live resolvers' status: %w", err)
	}
	out := make([]Resolver, 0, len(zs))
	for i, z := range zs {
		h := cmds[i].Val()
		num := func(f string) int64 { n, _ := strconv.ParseInt(h[f], 10, 64); return n }
		out = append(out, Resolver{
			ID:            z.Member.(string),
			Address:       h["address"],
			StartedAt:     fromMS(num("started_at")),
			LastHeartbeat: fromMS(int64(z.Score)),
			LagMS:         num("lag_ms"),
			AppliedEvents: num("applied_events"),
		})
	}
	slices.SortFunc(out, func(a, b Resolver) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out, nil
}

// Of says how far c has propagated: how many live resolvers have applied
// c.Revision (or a newer revision) of c.Key. One script call, one round
// trip, whatever the number of resolvers. With no live resolver the change
// is complete: nothing can serve the old revision from a cache.
func (g *Registry) Of(ctx context.Context, c Change) (Propagation, error) {
	var at int64
	if !c.CommittedAt.IsZero() {
		at = unixMS(c.CommittedAt)
	}
	res, err := propagationOf.Run(ctx, g.rdb, []string{g.k.set()},
		g.minScore(), g.k.resolverBase(), appliedSuffix, c.Key, c.Revision, at).Slice()
	if err != nil {
		return Propagation{}, fmt.Errorf("propagation of %s@%d: %w", c.Key, c.Revision, err)
	}
	if len(res) != 2 {
		return Propagation{}, fmt.Errorf("propagation of %s@%d: unexpected script answer %v", c.Key, c.Revision, res)
	}
	n, _ := res[0].(int64)
	raw, _ := res[1].([]any)
	p := Propagation{Resolvers: int(n), Pending: make([]string, 0, len(raw))}
	for _, v := range raw {
		if id, ok := v.(string); ok {
			p.Pending = append(p.Pending, id)
		}
	}
	slices.Sort(p.Pending)
	p.Applied = p.Resolvers - len(p.Pending)
	p.Complete = len(p.Pending) == 0
	return p, nil
}

// Wait asks Of until the change is complete or ctx ends, and returns the
// last answer: with a nil error when complete, else with ctx's error (or
// the last Redis error) and the propagation so far. It asks again after
// Poll/8 at first, doubling up to Poll: a change usually completes within
// milliseconds of its commit, and a slow one costs one call per Poll.
func (g *Registry) Wait(ctx context.Context, c Change) (Propagation, error) {
	interval := max(g.poll/8, time.Millisecond)
	t := time.NewTimer(interval)
	defer t.Stop()
	var last Propagation
	var lastErr error
	for {
		p, err := g.Of(ctx, c)
		switch {
		case err == nil && p.Complete:
			return p, nil
		case err == nil:
			last, lastErr = p, nil
		case ctx.Err() == nil:
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return last, lastErr
			}
			return last, ctx.Err()
		case <-t.C:
			interval = min(2*interval, g.poll)
			t.Reset(interval)
		}
	}
}

// propagationOf lists the live resolvers that have not applied a revision.
// KEYS[1] the live set; ARGV: min heartbeat score, resolver key base,
// applied suffix, route key, revision, commit time in ms (0: unknown).
// It reads the per-resolver keys it derives from the set's members, so it
// needs them on the same Redis node (no Redis Cluster without hash tags in
// the prefix).
var propagationOf = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')
local rev = tonumber(ARGV[5])
local at = tonumber(ARGV[6])
local pending = {}
for _, id in ipairs(ids) do
  local base = ARGV[2] .. id
  local got = redis.call('HGET', base .. ARGV[3], ARGV[4])
  local ok = got and tonumber(got) >= rev
  if (not ok) and at > 0 then
    local started = redis.call('HGET', base, 'started_at')
    ok = started and tonumber(started) > at
  end
  if not ok then
    pending[#pending + 1] = id
  end
end
return {#ids, pending}
`)
