package routes_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func key(tenant string) routes.Key {
	return routes.Key{Tenant: tenant, Service: "payments", Env: "prod", Version: "v2"}
}

func TestTwentyConcurrentCreatorsMakeOneRouteAndOneOfEachParent(t *testing.T) {
	pool := testenv.Postgres(t)
	store := routes.NewStore(pool)
	ctx := context.Background()
	tenant := testenv.Name(t, "team")

	var wg sync.WaitGroup
	results := make([]routes.Result, 20)
	errs := make([]error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Distinct versions share the tenant, service and environment rows;
			// five creators per version race on the endpoint row too.
			k := key(tenant)
			k.Version = []string{"v1", "v2", "v3", "v4"}[i%4]
			results[i], errs[i] = store.Apply(ctx, routes.Mutation{Action: routes.ActionCreated, Key: k, URL: "https://x.example/" + k.Version, Active: true})
		}()
	}
	wg.Wait()
	changed := 0
	for i := range 20 {
		require.NoError(t, errs[i])
		require.EqualValues(t, 1, results[i].Route.Revision)
		if results[i].Changed {
			changed++
		}
	}
	require.Equal(t, 4, changed, "one creator per version wins, the others see changed=false")

	var tenants, services, envs, endpoints int
	require.NoError(t, pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM tenants WHERE name = $1),
		(SELECT count(*) FROM services s JOIN tenants t ON t.id = s.tenant_id WHERE t.name = $1),
		(SELECT count(*) FROM environments e JOIN services s ON s.id = e.service_id JOIN tenants t ON t.id = s.tenant_id WHERE t.name = $1),
		(SELECT count(*) FROM endpoints p JOIN environments e ON e.id = p.environment_id JOIN services s ON s.id = e.service_id JOIN tenants t ON t.id = s.tenant_id WHERE t.name = $1)`,
		tenant).Scan(&tenants, &services, &envs, &endpoints))
	require.Equal(t, []int{1, 1, 1, 4}, []int{tenants, services, envs, endpoints})
}

func TestEachChangeBumpsTheRevisionAndNoOpsDoNot(t *testing.T) {
	store := routes.NewStore(testenv.Postgres(t))
	ctx := context.Background()
	k := key(testenv.Name(t, "team"))
	apply := func(a routes.Action, url string) routes.Result {
		t.Helper()
		res, err := store.Apply(ctx, routes.Mutation{Action: a, Key: k, URL: url, Active: true})
		require.NoError(t, err)
		return res
	}

	res := apply(routes.ActionCreated, "https://a.example")
	require.True(t, res.Changed)
	require.EqualValues(t, 1, res.Route.Revision)
	require.Equal(t, "", res.PreviousURL)

	res = apply(routes.ActionCreated, "https://a.example")
	require.False(t, res.Changed, "creating the same route again changes nothing")
	require.EqualValues(t, 1, res.Route.Revision)

	res = apply(routes.ActionUpdated, "https://b.example")
	require.True(t, res.Changed)
	require.EqualValues(t, 2, res.Route.Revision)
	require.Equal(t, "https://a.example", res.PreviousURL)

	res = apply(routes.ActionActivated, "")
	require.False(t, res.Changed, "already active")
	require.EqualValues(t, 2, res.Route.Revision)

	res = apply(routes.ActionDeactivated, "")
	require.True(t, res.Changed)
	require.False(t, res.Route.IsActive)
	require.Equal(t, "active", res.PreviousState)
	require.EqualValues(t, 3, res.Route.Revision)

	res = apply(routes.ActionDeactivated, "")
	require.False(t, res.Changed)

	res = apply(routes.ActionUpdated, "https://b.example")
	require.False(t, res.Changed, "same url")

	got, err := store.Get(ctx, k)
	require.NoError(t, err)
	require.EqualValues(t, 3, got.Revision)
	require.Equal(t, "https://b.example", got.URL)
	require.False(t, got.IsActive)
	require.True(t, got.UpdatedAt.After(got.CreatedAt) || got.UpdatedAt.Equal(got.CreatedAt))
}

func TestMissingRoutesAndConflictsAreDomainErrors(t *testing.T) {
	store := routes.NewStore(testenv.Postgres(t))
	ctx := context.Background()
	k := key(testenv.Name(t, "team"))

	for _, a := range []routes.Action{routes.ActionUpdated, routes.ActionActivated, routes.ActionDeactivated} {
		_, err := store.Apply(ctx, routes.Mutation{Action: a, Key: k, URL: "https://a.example"})
		require.ErrorIs(t, err, routes.ErrNotFound, a)
	}
	_, err := store.Get(ctx, k)
	require.ErrorIs(t, err, routes.ErrNotFound)

	_, err = store.Apply(ctx, routes.Mutation{Action: routes.ActionCreated, Key: k, URL: "https://a.example"})
	require.NoError(t, err)
	_, err = store.Apply(ctx, routes.Mutation{Action: routes.ActionCreated, Key: k, URL: "https://other.example"})
	require.ErrorIs(t, err, routes.ErrConflict)

	_, err = store.Apply(ctx, routes.Mutation{Action: routes.ActionCreated, Key: routes.Key{Tenant: "Bad Tenant"}, URL: "https://a.example"})
	var inv *routes.InvalidError
	require.True(t, errors.As(err, &inv))
	require.Equal(t, "tenant", inv.Field)
}

func TestListPagesThroughRoutesInKeyOrder(t *testing.T) {
	store := routes.NewStore(testenv.Postgres(t))
	ctx := context.Background()
	tenant := testenv.Name(t, "team")
	for _, v := range []string{"v1", "v2", "v3", "v4", "v5"} {
		k := key(tenant)
		k.Version = v
		_, err := store.Apply(ctx, routes.Mutation{Action: routes.ActionCreated, Key: k, URL: "https://x.example", Active: v != "v3"})
		require.NoError(t, err)
	}
	var seen []string
	cursor := ""
	for {
		p, err := store.List(ctx, routes.Filter{Tenant: tenant, Limit: 2, Cursor: cursor})
		require.NoError(t, err)
		for _, r := range p.Routes {
			seen = append(seen, r.Version)
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	require.Equal(t, []string{"v1", "v2", "v3", "v4", "v5"}, seen)

	inactive := false
	p, err := store.List(ctx, routes.Filter{Tenant: tenant, Active: &inactive})
	require.NoError(t, err)
	require.Len(t, p.Routes, 1)
	require.Equal(t, "v3", p.Routes[0].Version)

	_, err = store.List(ctx, routes.Filter{Cursor: "!!garbage"})
	require.ErrorIs(t, err, routes.ErrInvalid)
}
