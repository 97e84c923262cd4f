package routes_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

// Every kind of mutation re-run after newer changes of the same route
// returns its recorded outcome and leaves the route as the newer changes
// made it: the reset scenario of the exactly-once issue, at the store.
func TestAReRunReturnsItsRecordedOutcomeWhateverCommittedSince(t *testing.T) {
	store := routes.NewStore(testenv.Postgres(t))
	ctx := context.Background()
	k := key(testenv.Name(t, "team"))
	apply := func(m routes.Mutation) routes.Result {
		t.Helper()
		res, err := store.Apply(ctx, m)
		require.NoError(t, err)
		return res
	}
	create := routes.Mutation{Action: routes.ActionCreated, Key: k, URL: "https://a.example", Active: true, EventID: "ev-create", ChangedBy: "alice"}
	toB := routes.Mutation{Action: routes.ActionUpdated, Key: k, URL: "https://b.example", EventID: "ev-b"}
	off := routes.Mutation{Action: routes.ActionDeactivated, Key: k, EventID: "ev-off"}
	offAgain := routes.Mutation{Action: routes.ActionDeactivated, Key: k, EventID: "ev-off-again"}
	on := routes.Mutation{Action: routes.ActionActivated, Key: k, EventID: "ev-on"}
	toC := routes.Mutation{Action: routes.ActionUpdated, Key: k, URL: "https://c.example", EventID: "ev-c"}

	first := map[string]routes.Result{}
	for _, m := range []routes.Mutation{create, toB, off, offAgain, on, toC} {
		first[m.EventID] = apply(m)
	}
	require.False(t, first["ev-off-again"].Changed)
	newest, err := store.Get(ctx, k)
	require.NoError(t, err)
	require.Equal(t, routes.Route{}.URL+"https://c.example", newest.URL)
	require.EqualValues(t, 5, newest.Revision)

	// Re-run each one, oldest first, then newest first.
	for _, order := range [][]routes.Mutation{{create, toB, off, offAgain, on, toC}, {toC, on, offAgain, off, toB, create}} {
		for _, m := range order {
			again := apply(m)
			require.Equal(t, first[m.EventID].Changed, again.Changed, m.EventID)
			require.Equal(t, first[m.EventID].Route.Revision, again.Route.Revision, m.EventID)
			require.Equal(t, first[m.EventID].Route.URL, again.Route.URL, m.EventID)
			require.Equal(t, first[m.EventID].Route.IsActive, again.Route.IsActive, m.EventID)
			require.Equal(t, first[m.EventID].PreviousURL, again.PreviousURL, m.EventID)
			require.Equal(t, first[m.EventID].PreviousState, again.PreviousState, m.EventID)
			require.True(t, first[m.EventID].Route.UpdatedAt.Equal(again.Route.UpdatedAt), m.EventID)
		}
	}
	now, err := store.Get(ctx, k)
	require.NoError(t, err)
	require.Equal(t, newest, now, "no re-run changed the route")

	// The ledger holds one changed row per revision, in order.
	var revs []int64
	rows, err := store.Pool().Query(ctx, `SELECT revision FROM route_ledger WHERE tenant = $1 AND outcome = 'changed' ORDER BY seq`, k.Tenant)
	require.NoError(t, err)
	for rows.Next() {
		var r int64
		require.NoError(t, rows.Scan(&r))
		revs = append(revs, r)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []int64{1, 2, 3, 4, 5}, revs)
}

func TestRejectionsAreRecordedAndReplayedAsRejections(t *testing.T) {
	store := routes.NewStore(testenv.Postgres(t))
	ctx := context.Background()
	k := key(testenv.Name(t, "team"))

	update := routes.Mutation{Action: routes.ActionUpdated, Key: k, URL: "https://b.example", EventID: "ev-early-update"}
	_, err := store.Apply(ctx, update)
	require.ErrorIs(t, err, routes.ErrNotFound)

	_, err = store.Apply(ctx, routes.Mutation{Action: routes.ActionCreated, Key: k, URL: "https://a.example", Active: true, EventID: "ev-create"})
	require.NoError(t, err)
	conflicting := routes.Mutation{Action: routes.ActionCreated, Key: k, URL: "https://other.example", Active: true, EventID: "ev-conflict"}
	_, err = store.Apply(ctx, conflicting)
	require.ErrorIs(t, err, routes.ErrConflict)

	// Re-run now that the route exists: still the recorded 404, nothing changes.
	_, err = store.Apply(ctx, update)
	require.ErrorIs(t, err, routes.ErrNotFound)
	// The conflicting create re-run after the route took its URL: still a conflict.
	_, err = store.Apply(ctx, routes.Mutation{Action: routes.ActionUpdated, Key: k, URL: "https://other.example", EventID: "ev-move"})
	require.NoError(t, err)
	_, err = store.Apply(ctx, conflicting)
	require.ErrorIs(t, err, routes.ErrConflict)

	got, err := store.Get(ctx, k)
	require.NoError(t, err)
	require.EqualValues(t, 2, got.Revision)
	require.Equal(t, "https://other.example", got.URL)

	recs, err := store.Recorded(ctx, "ev-early-update", "ev-conflict", "ev-move", "unknown")
	require.NoError(t, err)
	require.Len(t, recs, 3)
	for _, rec := range recs {
		switch rec.EventID {
		case "ev-early-update":
			require.Equal(t, routes.OutcomeRejected, rec.Outcome)
			require.ErrorIs(t, rec.Err, routes.ErrNotFound)
		case "ev-conflict":
			require.ErrorIs(t, rec.Err, routes.ErrConflict)
		case "ev-move":
			require.Equal(t, routes.OutcomeChanged, rec.Outcome)
			require.EqualValues(t, 2, rec.Result.Route.Revision)
		}
	}
}

// Runs of one mutation racing each other (a lost COMMIT reply retried
// while the first attempt still holds the row) apply it once.
func TestConcurrentRunsOfOneMutationApplyItOnce(t *testing.T) {
	store := routes.NewStore(testenv.Postgres(t))
	ctx := context.Background()
	k := key(testenv.Name(t, "team"))
	_, err := store.Apply(ctx, routes.Mutation{Action: routes.ActionCreated, Key: k, URL: "https://a.example", Active: true, EventID: "ev-create"})
	require.NoError(t, err)

	for round := range 5 {
		m := routes.Mutation{Action: routes.ActionUpdated, Key: k, URL: "https://" + string(rune('b'+round)) + ".example", EventID: "ev-update-" + string(rune('a'+round))}
		var wg sync.WaitGroup
		results := make([]routes.Result, 8)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := store.Apply(ctx, m)
				require.NoError(t, err)
				results[i] = res
			}()
		}
		wg.Wait()
		for _, r := range results {
			require.True(t, r.Changed)
			require.EqualValues(t, round+2, r.Route.Revision, "every run reports the one revision it made")
		}
	}
	got, err := store.Get(ctx, k)
	require.NoError(t, err)
	require.EqualValues(t, 6, got.Revision)
}
