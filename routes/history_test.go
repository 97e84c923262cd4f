package routes_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

func TestHistoryListsEachRevisionNewestFirstAndPages(t *testing.T) {
	store := routes.NewStore(testenv.Postgres(t))
	ctx := context.Background()
	k := key(testenv.Name(t, "team"))

	_, err := store.History(ctx, k, 10, "")
	require.ErrorIs(t, err, routes.ErrNotFound, "an unknown route has no history")

	steps := []routes.Mutation{
		{Action: routes.ActionCreated, URL: "https://a.example", Active: true, ChangedBy: "alice"},
		{Action: routes.ActionUpdated, URL: "https://b.example"},
		{Action: routes.ActionActivated}, // already active: no revision
		{Action: routes.ActionDeactivated},
		{Action: routes.ActionActivated},
	}
	for _, m := range steps {
		m.Key = k
		_, err := store.Apply(ctx, m)
		require.NoError(t, err)
	}

	var got []routes.Revision
	cursor := ""
	for {
		p, err := store.History(ctx, k, 2, cursor)
		require.NoError(t, err)
		require.LessOrEqual(t, len(p.Revisions), 2)
		got = append(got, p.Revisions...)
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	require.Len(t, got, 4)
	wantActions := []routes.Action{routes.ActionActivated, routes.ActionDeactivated, routes.ActionUpdated, routes.ActionCreated}
	for i, r := range got {
		require.EqualValues(t, 4-i, r.Revision)
		require.Equal(t, wantActions[i], r.Action)
		require.NotEmpty(t, r.EventID)
	}
	require.Equal(t, "https://a.example", got[3].URL)
	require.Equal(t, "alice", got[3].ChangedBy)
	require.False(t, got[1].IsActive)
	require.True(t, got[0].IsActive)
	require.Equal(t, "https://b.example", got[0].URL)

	_, err = store.History(ctx, k, 2, "!!garbage")
	require.ErrorIs(t, err, routes.ErrInvalid)
}
