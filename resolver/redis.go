package resolver

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/routes"
)

// The Redis tier is optional and never required for an answer: every call is
// bounded by redisTimeout and goes through a circuit breaker, so with Redis
// down the resolver pays a few timeouts and then none at all until the
// breaker half-opens and one probe finds Redis back.

// RedisOptions returns options for a read-path client of the same server as
// o (address, credentials, database, TLS), with the resolver's timeouts.
// go-redis ignores context deadlines unless ContextTimeoutEnabled is set, so
// without it a Redis that accepts connections and never answers would hold a
// request for the client's ReadTimeout (seconds by default) instead of the
// resolver's RedisTimeout. Per-client state (hooks, push notification
// handlers) is not copied. Use it for the client behind Options.Redis:
//
//	own := redis.NewClient(resolver.RedisOptions(shared.Options()))
func RedisOptions(o *redis.Options) *redis.Options {
	return &redis.Options{
		Network:                    o.Network,
		Addr:                       o.Addr,
		Dialer:                     o.Dialer,
		ClientName:                 o.ClientName,
		Protocol:                   o.Protocol,
		Username:                   o.Username,
		Password:                   o.Password,
		CredentialsProvider:        o.CredentialsProvider,
		CredentialsProviderContext: o.CredentialsProviderContext,
		DB:                         o.DB,
		TLSConfig:                  o.TLSConfig,

		ContextTimeoutEnabled: true,
		DialTimeout:           250 * time.Millisecond,
		DialerRetries:         1,
		ReadTimeout:           250 * time.Millisecond,
		WriteTimeout:          250 * time.Millisecond,
		PoolTimeout:           100 * time.Millisecond,
		MaxRetries:            1,
	}
}

func (r *Resolver) redisGet(ctx context.Context, k routes.Key) (cache.Entry, bool) {
	if r.redis == nil || !r.redisCB.TryAcquirePermit() {
		return cache.Entry{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, r.redisTimeout)
	defer cancel()
	e, ok, err := r.redis.Get(ctx, k)
	if err != nil {
		r.redisCB.RecordFailure()
		r.log.Debug("redis get failed", zap.Stringer("route", k), zap.Error(err))
		return cache.Entry{}, false
	}
	r.redisCB.RecordSuccess()
	return e, ok
}

// redisFill caches e in Redis unless Redis knows a newer revision. It
// reports whether e was stored.
func (r *Resolver) redisFill(ctx context.Context, k routes.Key, e *entry) bool {
	if r.redis == nil || !r.redisCB.TryAcquirePermit() {
		return false
	}
	ttl := r.negativeTTL
	if e.kind == kindPositive {
		ttl = r.positiveTTL
	}
	ctx, cancel := context.WithTimeout(ctx, r.redisTimeout)
	defer cancel()
	stored, err := r.redis.Fill(ctx, k, e.cacheEntry(), ttl)
	if err != nil {
		r.redisCB.RecordFailure()
		r.log.Debug("redis fill failed", zap.Stringer("route", k), zap.Error(err))
		return false
	}
	r.redisCB.RecordSuccess()
	return stored
}

// redisInvalidate drops k's Redis answer and raises its revision floor to
// revision, as the write path does after a change.
func (r *Resolver) redisInvalidate(ctx context.Context, k routes.Key, revision int64) {
	if r.redis == nil || !r.redisCB.TryAcquirePermit() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, r.redisTimeout)
	defer cancel()
	if err := r.redis.Invalidate(ctx, k, revision); err != nil {
		r.redisCB.RecordFailure()
		r.log.Warn("redis invalidation of an overtaken fill failed", zap.Stringer("route", k), zap.Error(err))
		return
	}
	r.redisCB.RecordSuccess()
}
