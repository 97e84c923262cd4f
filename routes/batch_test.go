package routes_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

// batch returns n creations of tenant over a few services and envs, with
// event ids prefixed by run so two runs differ.
func batch(tenant, run string, n int) []routes.Mutation {
	ms := make([]routes.Mutation, n)
	for i := range ms {
		ms[i] = routes.Mutation{
			Action:  routes.ActionCreated,
			Key:     routes.Key{Tenant: tenant, Service: fmt.Sprintf("svc-%d", i%7), Env: []string{"prod", "staging"}[i%2], Version: fmt.Sprintf("v%d", i)},
			URL:     fmt.Sprintf("https://svc-%d.example/v%d", i%7, i),
			Active:  i%3 != 0,
			EventID: fmt.Sprintf("%s-%d", run, i),
		}
	}
	return ms
}

func countRoutes(t *testing.T, s *routes.Store, tenant string) int {
	t.Helper()
	var n int
	require.NoError(t, s.Pool().QueryRow(context.Background(), `SELECT count(*) FROM endpoints p
		JOIN environments e ON e.id = p.environment_id JOIN services s ON s.id = e.service_id
		JOIN tenants t ON t.id = s.tenant_id WHERE t.name = $1`, tenant).Scan(&n))
	return n
}

func TestCreateBatchCreatesEveryRouteOnceAndReportsReRuns(t *testing.T) {
	store := routes.NewStore(testenv.Postgres(t))
	ctx := context.Background()
	tenant := testenv.Name(t, "bulk")
	ms := batch(tenant, "a", routes.MaxBatch)

	res, err := store.CreateBatch(ctx, ms)
	require.NoError(t, err)
	require.Len(t, res, len(ms))
	for i, r := range res {
		require.True(t, r.Changed, "routes[%d]", i)
		require.Equal(t, ms[i].Key, r.Route.Key(), "results are in input order")
		require.Equal(t, ms[i].URL, r.Route.URL)
		require.Equal(t, ms[i].Active, r.Route.IsActive)
		require.EqualValues(t, 1, r.Route.Revision)
		require.Empty(t, r.PreviousState)
	}
	require.Equal(t, routes.MaxBatch, countRoutes(t, store, tenant))
	got, err := store.Get(ctx, ms[500].Key)
	require.NoError(t, err)
	require.Equal(t, ms[500].URL, got.URL)

	// The same batch again (a workflow re-run): the changes it made are reported again.
	res, err = store.CreateBatch(ctx, ms)
	require.NoError(t, err)
	for i, r := range res {
		require.True(t, r.Changed, "re-run reports routes[%d] as its change", i)
	}
	// Another batch creating the same routes with the same URLs: nothing to do.
	res, err = store.CreateBatch(ctx, batch(tenant, "b", routes.MaxBatch))
	require.NoError(t, err)
	for i, r := range res {
		require.False(t, r.Changed, "routes[%d]", i)
		require.EqualValues(t, 1, r.Route.Revision)
	}
	require.Equal(t, routes.MaxBatch, countRoutes(t, store, tenant))

	// The first batch re-run after one of its routes changed: it still
	// reports what it did, and changes nothing.
	_, err = store.Apply(ctx, routes.Mutation{Action: routes.ActionDeactivated, Key: ms[7].Key, EventID: "ev-off"})
	require.NoError(t, err)
	res, err = store.CreateBatch(ctx, ms)
	require.NoError(t, err)
	require.True(t, res[7].Changed)
	require.EqualValues(t, 1, res[7].Route.Revision)
	got, err = store.Get(ctx, ms[7].Key)
	require.NoError(t, err)
	require.False(t, got.IsActive)
	require.EqualValues(t, 2, got.Revision)
}

func TestCreateBatchIsAllOrNothing(t *testing.T) {
	store := routes.NewStore(testenv.Postgres(t))
	ctx := context.Background()
	tenant := testenv.Name(t, "bulk")
	first := batch(tenant, "a", 10)
	_, err := store.CreateBatch(ctx, first[:5])
	require.NoError(t, err)

	// routes[3] exists with another URL: the whole batch fails, naming it.
	second := batch(tenant, "b", 10)
	second[3].URL = "https://elsewhere.example/"
	_, err = store.CreateBatch(ctx, second)
	require.ErrorIs(t, err, routes.ErrConflict)
	require.Contains(t, err.Error(), "routes[3]")
	require.Equal(t, 5, countRoutes(t, store, tenant), "none of the new routes was created")

	res, err := store.CreateBatch(ctx, batch(tenant, "c", 10))
	require.NoError(t, err)
	changed := 0
	for _, r := range res {
		if r.Changed {
			changed++
		}
	}
	require.Equal(t, 5, changed, "the five missing routes are created, the five existing left alone")
}

func TestConcurrentOverlappingBatchesCreateEachRouteOnce(t *testing.T) {
	store := routes.NewStore(testenv.Postgres(t))
	ctx := context.Background()
	tenant := testenv.Name(t, "bulk")
	const writers, n = 6, 300
	var wg sync.WaitGroup
	results := make([][]routes.Result, writers)
	errs := make([]error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ms := batch(tenant, fmt.Sprintf("w%d", w), n)
			if w%2 == 1 { // the same routes in the opposite order
				for i, j := 0, len(ms)-1; i < j; i, j = i+1, j-1 {
					ms[i], ms[j] = ms[j], ms[i]
				}
			}
			results[w], errs[w] = store.CreateBatch(ctx, ms)
		}()
	}
	wg.Wait()
	created := map[routes.Key]int{}
	for w := range writers {
		require.NoError(t, errs[w], "writer %d (a deadlock would surface here)", w)
		for _, r := range results[w] {
			if r.Changed {
				created[r.Route.Key()]++
			}
		}
	}
	require.Len(t, created, n)
	for k, c := range created {
		require.Equal(t, 1, c, "%s created by exactly one batch", k)
	}
	require.Equal(t, n, countRoutes(t, store, tenant))
}

func TestValidateBatch(t *testing.T) {
	ok := batch("team-a", "x", 3)
	require.NoError(t, routes.ValidateBatch(ok))

	cases := map[string]struct {
		ms    func() []routes.Mutation
		field string
	}{
		"empty":    {func() []routes.Mutation { return nil }, "routes"},
		"too many": {func() []routes.Mutation { return batch("team-a", "x", routes.MaxBatch+1) }, "routes"},
		"bad url":  {func() []routes.Mutation { ms := batch("team-a", "x", 3); ms[2].URL = "ftp://x"; return ms }, "routes[2].url"},
		"bad name": {func() []routes.Mutation { ms := batch("team-a", "x", 3); ms[1].Key.Service = "Bad Name"; return ms }, "routes[1].service"},
		"two tenants": {func() []routes.Mutation {
			ms := batch("team-a", "x", 3)
			ms[1].Key.Tenant = "team-b"
			return ms
		}, "routes[1].tenant"},
		"duplicate": {func() []routes.Mutation { ms := batch("team-a", "x", 3); ms[2].Key = ms[0].Key; return ms }, "routes[2]"},
		"not a create": {func() []routes.Mutation {
			ms := batch("team-a", "x", 3)
			ms[0].Action = routes.ActionUpdated
			return ms
		}, "routes[0].action"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := routes.ValidateBatch(c.ms())
			var inv *routes.InvalidError
			require.True(t, errors.As(err, &inv), "%v", err)
			require.Equal(t, c.field, inv.Field)
		})
	}
}
