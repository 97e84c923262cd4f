package routes_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

func TestRollbackRestoresARevisionAsANewOne(t *testing.T) {
	store := routes.NewStore(testenv.Postgres(t))
	ctx := context.Background()
	k := key(testenv.Name(t, "team"))
	for _, m := range []routes.Mutation{
		{Action: routes.ActionCreated, URL: "https://a.example", Active: true},
		{Action: routes.ActionUpdated, URL: "https://b.example"},
		{Action: routes.ActionDeactivated},
	} {
		m.Key = k
		_, err := store.Apply(ctx, m)
		require.NoError(t, err)
	}

	rb := routes.Mutation{Action: routes.ActionRolledBack, Key: k, RollbackTo: 1, EventID: testenv.Name(t, "rb")}
	res, err := store.Apply(ctx, rb)
	require.NoError(t, err)
	require.True(t, res.Changed)
	require.EqualValues(t, 4, res.Route.Revision)
	require.Equal(t, "https://a.example", res.Route.URL)
	require.True(t, res.Route.IsActive)
	require.Equal(t, "https://b.example", res.PreviousURL)
	require.Equal(t, "inactive", res.PreviousState)

	again, err := store.Apply(ctx, routes.Mutation{Action: routes.ActionRolledBack, Key: k, RollbackTo: 1})
	require.NoError(t, err)
	require.False(t, again.Changed, "rolling back to the current state changes nothing")
	require.EqualValues(t, 4, again.Route.Revision)

	unknown := routes.Mutation{Action: routes.ActionRolledBack, Key: k, RollbackTo: 9, EventID: testenv.Name(t, "unknown")}
	_, err = store.Apply(ctx, unknown)
	require.ErrorIs(t, err, routes.ErrInvalid)
	_, err = store.Apply(ctx, unknown)
	require.ErrorIs(t, err, routes.ErrInvalid, "a re-run is rejected as recorded")

	replay, err := store.Apply(ctx, rb)
	require.NoError(t, err)
	require.Equal(t, res.Route.Revision, replay.Route.Revision, "a re-run answers the recorded outcome")

	p, err := store.History(ctx, k, 10, "")
	require.NoError(t, err)
	require.Len(t, p.Revisions, 4)
	require.Equal(t, routes.ActionRolledBack, p.Revisions[0].Action)
	require.EqualValues(t, 1, p.Revisions[0].RollbackTo)
	require.Zero(t, p.Revisions[1].RollbackTo)

	_, err = store.Apply(ctx, routes.Mutation{Action: routes.ActionRolledBack, Key: k})
	require.ErrorIs(t, err, routes.ErrInvalid, "a rollback names a revision")
	_, err = store.Apply(ctx, routes.Mutation{Action: routes.ActionUpdated, Key: k, URL: "https://c.example", RollbackTo: 1})
	require.ErrorIs(t, err, routes.ErrInvalid)
	_, err = store.Apply(ctx, routes.Mutation{Action: routes.ActionRolledBack, Key: key(testenv.Name(t, "none")), RollbackTo: 1})
	require.ErrorIs(t, err, routes.ErrNotFound)
}

// The revert of a time-boxed change is a rollback to the revision before
// it, guarded by the revision the change produced.
func TestRevertRestoresThePreviousRevisionOnlyWhileTheChangeIsCurrent(t *testing.T) {
	store := routes.NewStore(testenv.Postgres(t))
	ctx := context.Background()
	k := key(testenv.Name(t, "team"))
	for _, m := range []routes.Mutation{
		{Action: routes.ActionCreated, URL: "https://a.example", Active: true},
		{Action: routes.ActionUpdated, URL: "https://fallback.example"},
	} {
		m.Key = k
		_, err := store.Apply(ctx, m)
		require.NoError(t, err)
	}

	rv := routes.Mutation{Action: routes.ActionReverted, Key: k, RollbackTo: 1, IfRevision: 2, EventID: testenv.Name(t, "rv"), ChangedBy: "alice"}
	res, err := store.Apply(ctx, rv)
	require.NoError(t, err)
	require.True(t, res.Changed)
	require.EqualValues(t, 3, res.Route.Revision)
	require.Equal(t, "https://a.example", res.Route.URL)
	require.Equal(t, "https://fallback.example", res.PreviousURL)

	replay, err := store.Apply(ctx, rv)
	require.NoError(t, err)
	require.EqualValues(t, 3, replay.Route.Revision, "a re-run answers the recorded outcome")

	p, err := store.History(ctx, k, 10, "")
	require.NoError(t, err)
	require.Len(t, p.Revisions, 3)
	require.Equal(t, routes.ActionReverted, p.Revisions[0].Action)
	require.EqualValues(t, 1, p.Revisions[0].RollbackTo)
	require.Equal(t, "alice", p.Revisions[0].ChangedBy)

	stale := routes.Mutation{Action: routes.ActionReverted, Key: k, RollbackTo: 1, IfRevision: 2, EventID: testenv.Name(t, "stale")}
	_, err = store.Apply(ctx, stale)
	require.ErrorIs(t, err, routes.ErrPreconditionFailed, "the route moved on: the revert is refused")

	_, err = store.Apply(ctx, routes.Mutation{Action: routes.ActionReverted, Key: k, IfRevision: 3})
	require.ErrorIs(t, err, routes.ErrInvalid, "a revert names the revision it restores")
	a, err := routes.ParseAction("reverted")
	require.NoError(t, err)
	require.Equal(t, routes.ActionReverted, a)
}
