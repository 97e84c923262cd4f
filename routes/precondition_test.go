package routes_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

func TestIfRevisionAppliesOnlyToTheRevisionItNames(t *testing.T) {
	store := routes.NewStore(testenv.Postgres(t))
	ctx := context.Background()
	k := key(testenv.Name(t, "team"))
	_, err := store.Apply(ctx, routes.Mutation{Action: routes.ActionCreated, Key: k, URL: "https://a.example", Active: true})
	require.NoError(t, err)

	stale := routes.Mutation{Action: routes.ActionUpdated, Key: k, URL: "https://b.example", IfRevision: 7, EventID: testenv.Name(t, "stale")}
	_, err = store.Apply(ctx, stale)
	require.ErrorIs(t, err, routes.ErrPreconditionFailed)
	got, err := store.Get(ctx, k)
	require.NoError(t, err)
	require.Equal(t, "https://a.example", got.URL, "a failed precondition changes nothing")
	require.EqualValues(t, 1, got.Revision)

	res, err := store.Apply(ctx, routes.Mutation{Action: routes.ActionDeactivated, Key: k, IfRevision: 1})
	require.NoError(t, err)
	require.True(t, res.Changed)
	require.EqualValues(t, 2, res.Route.Revision)

	_, err = store.Apply(ctx, stale)
	require.ErrorIs(t, err, routes.ErrPreconditionFailed, "a re-run is rejected as recorded")
	recs, err := store.Recorded(ctx, stale.EventID)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.ErrorIs(t, recs[0].Err, routes.ErrPreconditionFailed)

	_, err = store.Apply(ctx, routes.Mutation{Action: routes.ActionCreated, Key: k, URL: "https://a.example", IfRevision: 1})
	require.ErrorIs(t, err, routes.ErrInvalid, "a create has no revision to match")
}

func TestTwoWritersWithTheSameIfRevisionExactlyOneWins(t *testing.T) {
	store := routes.NewStore(testenv.Postgres(t))
	ctx := context.Background()
	k := key(testenv.Name(t, "team"))
	_, err := store.Apply(ctx, routes.Mutation{Action: routes.ActionCreated, Key: k, URL: "https://a.example", Active: true})
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, url := range []string{"https://b.example", "https://c.example"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = store.Apply(ctx, routes.Mutation{Action: routes.ActionUpdated, Key: k, URL: url, IfRevision: 1})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
			continue
		}
		require.ErrorIs(t, err, routes.ErrPreconditionFailed)
	}
	require.Equal(t, 1, won)
	got, err := store.Get(ctx, k)
	require.NoError(t, err)
	require.EqualValues(t, 2, got.Revision)
}
