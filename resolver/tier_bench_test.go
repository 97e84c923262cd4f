package resolver

import (
	"context"
	"testing"
	"time"

	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

// The tier benchmarks run against the real servers and each has its
// baseline next to it: the resolver on a Redis hit against a bare GET of
// the same key, the resolver on a Postgres miss against a bare pgx point
// query of the same row. Compare with:
//
//	go test -run '^$' -bench 'Tier' -benchtime 2000x ./resolver/

func BenchmarkTierRedisHit(b *testing.B) {
	ctx := context.Background()
	rdb := testenv.Redis(b)
	k := routes.Key{Tenant: testenv.Name(b, "bench"), Service: "checkout", Env: "prod", Version: "v1"}
	rc := cache.NewRedis(rdb, time.Minute)
	if _, err := rc.Fill(ctx, k, cache.Entry{Found: true, URL: "https://checkout.example/v1", Revision: 1}, time.Hour); err != nil {
		b.Fatal(err)
	}
	st := newMemStore() // never reached: every answer comes from Redis
	r, err := New(Options{Store: st, Redis: rc, L1Entries: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.Close)
	b.Run("resolver", func(b *testing.B) {
		for b.Loop() {
			a, err := r.Resolve(ctx, k)
			if err != nil || !a.Found() {
				b.Fatalf("resolve: %+v %v", a, err)
			}
		}
	})
	b.Run("baseline-redis-GET", func(b *testing.B) {
		for b.Loop() {
			if err := rdb.Get(ctx, cache.Key(k)).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
	if st.calls.Load() != 0 {
		b.Fatalf("the store was queried %d times", st.calls.Load())
	}
}

func BenchmarkTierPostgresMiss(b *testing.B) {
	ctx := context.Background()
	pool := testenv.Postgres(b)
	store := routes.NewStore(pool)
	k := routes.Key{Tenant: "bench", Service: "checkout", Env: "prod", Version: "v1"}
	if _, err := store.Apply(ctx, routes.Mutation{Action: routes.ActionCreated, Key: k, URL: "https://checkout.example/v1", Active: true}); err != nil {
		b.Fatal(err)
	}
	r, err := New(Options{Store: store, L1Entries: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.Close)
	b.Run("resolver", func(b *testing.B) {
		for b.Loop() {
			a, err := r.Resolve(ctx, k)
			if err != nil || !a.Found() {
				b.Fatalf("resolve: %+v %v", a, err)
			}
		}
	})
	// The same point query the store makes (same row, same columns), on
	// the same pool, with nothing around it.
	b.Run("baseline-pgx-point-query", func(b *testing.B) {
		for b.Loop() {
			if _, err := store.Get(ctx, k); err != nil {
				b.Fatal(err)
			}
		}
	})
}
