package cache_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestAnOlderReadNeverReplacesANewerRevision(t *testing.T) {
	ctx := context.Background()
	c := cache.NewRedis(testenv.Redis(t), time.Minute)
	k := routes.Key{Tenant: testenv.Name(t, "team"), Service: "payments", Env: "prod", Version: "v2"}

	// A negative answer (no row yet) is cached, then the route is created.
	ok, err := c.Fill(ctx, k, cache.Entry{Found: false, Revision: 0}, 10*time.Second)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, c.Invalidate(ctx, k, 1))
	_, hit, err := c.Get(ctx, k)
	require.NoError(t, err)
	require.False(t, hit, "the invalidation drops the negative entry")

	// A resolver that read before the commit tries to put the old answer back.
	ok, err = c.Fill(ctx, k, cache.Entry{Found: false, Revision: 0}, 10*time.Second)
	require.NoError(t, err)
	require.False(t, ok, "a fill older than the revision floor is refused")

	ok, err = c.Fill(ctx, k, cache.Entry{Found: true, URL: "https://b.example", Revision: 2}, time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = c.Fill(ctx, k, cache.Entry{Found: true, URL: "https://a.example", Revision: 1}, time.Minute)
	require.NoError(t, err)
	require.False(t, ok, "an older entry never replaces a newer one")
	e, hit, err := c.Get(ctx, k)
	require.NoError(t, err)
	require.True(t, hit)
	require.Equal(t, cache.Entry{Found: true, URL: "https://b.example", Revision: 2}, e)

	// Invalidation is idempotent and never lowers the floor.
	require.NoError(t, c.Invalidate(ctx, k, 3))
	require.NoError(t, c.Invalidate(ctx, k, 2))
	ok, err = c.Fill(ctx, k, cache.Entry{Found: true, URL: "https://b.example", Revision: 2}, time.Minute)
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, "route:"+k.String(), cache.Key(k))
}

func TestInvalidateManyDropsEveryEntryAndRaisesEachFloor(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.Redis(t)
	c := cache.NewRedis(rdb, time.Minute)
	tenant := testenv.Name(t, "team")
	var changes []cache.Invalidation
	for i := range 50 {
		k := routes.Key{Tenant: tenant, Service: "payments", Env: "prod", Version: "v" + string(rune('a'+i%26)) + string(rune('a'+i/26))}
		ok, err := c.Fill(ctx, k, cache.Entry{Found: true, URL: "https://old.example", Revision: 1}, time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		changes = append(changes, cache.Invalidation{Key: k, Revision: 2})
	}
	// A script cache flushed by a Redis restart must not break the pipeline.
	require.NoError(t, rdb.ScriptFlush(ctx).Err())
	require.NoError(t, c.InvalidateMany(ctx, changes))
	require.NoError(t, c.InvalidateMany(ctx, changes), "idempotent")
	for _, ch := range changes {
		_, hit, err := c.Get(ctx, ch.Key)
		require.NoError(t, err)
		require.False(t, hit, "%s dropped", ch.Key)
		ok, err := c.Fill(ctx, ch.Key, cache.Entry{Found: true, URL: "https://old.example", Revision: 1}, time.Minute)
		require.NoError(t, err)
		require.False(t, ok, "%s: the floor refuses the old revision", ch.Key)
	}
	require.NoError(t, c.InvalidateMany(ctx, nil))
}
