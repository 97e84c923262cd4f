package routes_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

func splitEnv(t *testing.T, store *routes.Store, versions ...string) routes.SplitKey {
	t.Helper()
	sk := routes.SplitKey{Tenant: testenv.Name(t, "team"), Service: "checkout", Env: "prod"}
	for _, v := range versions {
		_, err := store.Apply(context.Background(), routes.Mutation{Action: routes.ActionCreated, Key: sk.Route(v),
			URL: "https://" + v + ".example", Active: true})
		require.NoError(t, err)
	}
	return sk
}

func TestSplitWeightsAreValidatedBeforeAnyWrite(t *testing.T) {
	many := routes.Weights{}
	for _, v := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"} {
		many[v] = 0
	}
	many["a"] = 100
	for name, w := range map[string]routes.Weights{
		"weights not summing to 100": {"v1": 90, "v2": 5},
		"a negative weight":          {"v1": 110, "v2": -10},
		"a weight over 100":          {"v1": 101},
		"no version":                 {},
		"more than 10 versions":      many,
		"a bad version name":         {"v 1": 100},
	} {
		t.Run(name, func(t *testing.T) {
			require.ErrorIs(t, routes.ValidateWeights(w), routes.ErrInvalid)
		})
	}
	require.NoError(t, routes.ValidateWeights(routes.Weights{"v1": 90, "v2": 10, "v3": 0}))
}

func TestASplitIsWrittenOnceAndReRunsReplayIt(t *testing.T) {
	store := routes.NewStore(testenv.Postgres(t))
	ctx := context.Background()
	sk := splitEnv(t, store, "v1", "v2")
	put := routes.SplitMutation{Action: routes.ActionSplitUpdated, Key: sk, Weights: routes.Weights{"v1": 90, "v2": 10}, EventID: "sp-1"}
	res, err := store.ApplySplit(ctx, put)
	require.NoError(t, err)
	require.True(t, res.Changed)
	require.EqualValues(t, 1, res.Split.Revision)

	same := put
	same.EventID = "sp-same"
	res2, err := store.ApplySplit(ctx, same)
	require.NoError(t, err)
	require.False(t, res2.Changed, "the same weights change nothing")

	next := routes.SplitMutation{Action: routes.ActionSplitUpdated, Key: sk, Weights: routes.Weights{"v1": 50, "v2": 50}, EventID: "sp-2", IfRevision: 1}
	res3, err := store.ApplySplit(ctx, next)
	require.NoError(t, err)
	require.EqualValues(t, 2, res3.Split.Revision)

	// A re-run of the first mutation reports revision 1 and changes nothing.
	again, err := store.ApplySplit(ctx, put)
	require.NoError(t, err)
	require.True(t, again.Changed)
	require.EqualValues(t, 1, again.Split.Revision)
	cur, err := store.GetSplit(ctx, sk)
	require.NoError(t, err)
	require.EqualValues(t, 2, cur.Revision)
	require.Equal(t, routes.Weights{"v1": 50, "v2": 50}, cur.Weights)

	// If-Match on an old revision: 412, recorded, replayed.
	stale := routes.SplitMutation{Action: routes.ActionSplitUpdated, Key: sk, Weights: routes.Weights{"v1": 10, "v2": 90}, EventID: "sp-stale", IfRevision: 1}
	_, err = store.ApplySplit(ctx, stale)
	require.ErrorIs(t, err, routes.ErrPreconditionFailed)
	_, err = store.ApplySplit(ctx, stale)
	require.ErrorIs(t, err, routes.ErrPreconditionFailed)

	// Delete, then a new split continues the revisions.
	del, err := store.ApplySplit(ctx, routes.SplitMutation{Action: routes.ActionSplitDeleted, Key: sk, EventID: "sp-del"})
	require.NoError(t, err)
	require.EqualValues(t, 3, del.Split.Revision)
	_, err = store.GetSplit(ctx, sk)
	require.ErrorIs(t, err, routes.ErrSplitNotFound)
	_, err = store.ApplySplit(ctx, routes.SplitMutation{Action: routes.ActionSplitDeleted, Key: sk, EventID: "sp-del-2"})
	require.ErrorIs(t, err, routes.ErrSplitNotFound)
	res4, err := store.ApplySplit(ctx, routes.SplitMutation{Action: routes.ActionSplitUpdated, Key: sk, Weights: routes.Weights{"v2": 100}, EventID: "sp-4"})
	require.NoError(t, err)
	require.EqualValues(t, 4, res4.Split.Revision)

	hist, err := store.SplitHistory(ctx, sk, 10)
	require.NoError(t, err)
	require.Len(t, hist, 4)
	require.EqualValues(t, 4, hist[0].Revision)
	require.Equal(t, routes.ActionSplitDeleted, hist[1].Action)
}

func TestASplitNamesOnlyActiveRoutesOfItsEnv(t *testing.T) {
	store := routes.NewStore(testenv.Postgres(t))
	ctx := context.Background()
	sk := splitEnv(t, store, "v1", "v2", "v3")
	_, err := store.Apply(ctx, routes.Mutation{Action: routes.ActionDeactivated, Key: sk.Route("v3")})
	require.NoError(t, err)

	for name, w := range map[string]routes.Weights{
		"an unknown version":  {"v1": 90, "v9": 10},
		"an inactive version": {"v1": 90, "v3": 10},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := store.ApplySplit(ctx, routes.SplitMutation{Action: routes.ActionSplitUpdated, Key: sk, Weights: w, EventID: "bad-" + name})
			require.ErrorIs(t, err, routes.ErrInvalid)
		})
	}

	_, err = store.ApplySplit(ctx, routes.SplitMutation{Action: routes.ActionSplitUpdated, Key: sk, Weights: routes.Weights{"v1": 90, "v2": 10}})
	require.NoError(t, err)
	// The rule: deactivating a version the split uses is a conflict naming the split.
	_, err = store.Apply(ctx, routes.Mutation{Action: routes.ActionDeactivated, Key: sk.Route("v2"), EventID: "off-v2"})
	require.ErrorIs(t, err, routes.ErrConflict)
	require.Contains(t, err.Error(), sk.Tenant+"/checkout/prod")
	r, err := store.Get(ctx, sk.Route("v2"))
	require.NoError(t, err)
	require.True(t, r.IsActive)
	// Once the split no longer names it, the deactivate goes through.
	_, err = store.ApplySplit(ctx, routes.SplitMutation{Action: routes.ActionSplitUpdated, Key: sk, Weights: routes.Weights{"v1": 100}})
	require.NoError(t, err)
	_, err = store.Apply(ctx, routes.Mutation{Action: routes.ActionDeactivated, Key: sk.Route("v2")})
	require.NoError(t, err)
	// A version of another env with the same name is not affected.
	other := routes.SplitKey{Tenant: sk.Tenant, Service: "checkout", Env: "stage"}
	_, err = store.Apply(ctx, routes.Mutation{Action: routes.ActionCreated, Key: other.Route("v1"), URL: "https://s.example", Active: true})
	require.NoError(t, err)
	_, err = store.Apply(ctx, routes.Mutation{Action: routes.ActionDeactivated, Key: other.Route("v1")})
	require.NoError(t, err)
}

// The rule covers every change that would leave a split's version
// inactive: a rollback (or revert) to an inactive revision too.
func TestARollbackToAnInactiveRevisionOfASplitVersionIsAConflict(t *testing.T) {
	store := routes.NewStore(testenv.Postgres(t))
	ctx := context.Background()
	sk := splitEnv(t, store, "v1", "v2")
	_, err := store.Apply(ctx, routes.Mutation{Action: routes.ActionDeactivated, Key: sk.Route("v2")}) // revision 2
	require.NoError(t, err)
	_, err = store.Apply(ctx, routes.Mutation{Action: routes.ActionActivated, Key: sk.Route("v2")}) // revision 3
	require.NoError(t, err)
	_, err = store.ApplySplit(ctx, routes.SplitMutation{Action: routes.ActionSplitUpdated, Key: sk, Weights: routes.Weights{"v1": 50, "v2": 50}})
	require.NoError(t, err)
	_, err = store.Apply(ctx, routes.Mutation{Action: routes.ActionRolledBack, Key: sk.Route("v2"), RollbackTo: 2, EventID: "rb-2"})
	require.ErrorIs(t, err, routes.ErrConflict)
	// Recorded: a re-run is rejected the same way, even once the split is gone.
	_, err = store.ApplySplit(ctx, routes.SplitMutation{Action: routes.ActionSplitDeleted, Key: sk})
	require.NoError(t, err)
	_, err = store.Apply(ctx, routes.Mutation{Action: routes.ActionRolledBack, Key: sk.Route("v2"), RollbackTo: 2, EventID: "rb-2"})
	require.ErrorIs(t, err, routes.ErrConflict)
	// A new rollback (another event id) applies once no split names v2.
	_, err = store.Apply(ctx, routes.Mutation{Action: routes.ActionRolledBack, Key: sk.Route("v2"), RollbackTo: 2, EventID: "rb-3"})
	require.NoError(t, err, "without the split the rollback applies")
}
