package workflows_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/workflows"
)

// timeBoxed prepares a route at revision 1 (https://a.example, active) and
// returns the change "route to the fallback" with a RevertAfter of an hour.
func (f *fixture) timeBoxed(t *testing.T, eventID string) workflows.MutationInput {
	t.Helper()
	m := create(testenv.Name(t, "team"), "https://a.example")
	_, err := f.store.Apply(context.Background(), m)
	require.NoError(t, err)
	m.Action, m.URL = routes.ActionUpdated, "https://fallback.example"
	return workflows.MutationInput{Mutation: m, EventID: eventID, RevertAfter: time.Hour, RequestedBy: alice, Principal: "ci"}
}

func TestATimeBoxedChangeIsRevertedAfterItsTime(t *testing.T) {
	f := newFixture(t)
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	env := scheduledAt(start)
	tm := f.tmStatus(env)
	in := f.timeBoxed(t, "ev-boxed")
	waiting := status[workflows.Status](t, env, 30*time.Minute)
	var during routes.Route
	env.RegisterDelayedCallback(func() {
		var err error
		during, err = f.store.Get(context.Background(), in.Mutation.Key)
		require.NoError(t, err)
	}, 30*time.Minute)

	st, ur := f.run(t, env, in)

	require.NoError(t, ur.err)
	require.EqualValues(t, 2, ur.out.Result.Route.Revision, "the commit update answers the change, not the revert")
	require.Equal(t, start.Add(time.Hour), *ur.out.RevertAt)
	require.Equal(t, "https://fallback.example", during.URL)
	require.Equal(t, workflows.StateRevertPending, waiting.State)
	require.Equal(t, workflows.RevertPending, waiting.Revert.State)
	require.Equal(t, start.Add(time.Hour), waiting.Revert.At)
	require.Equal(t, start.Add(time.Hour), *waiting.RevertAt)

	revertID := workflows.RevertEventID("ev-boxed")
	require.Equal(t, workflows.StateCompleted, st.State)
	require.Equal(t, workflows.RevertDone, st.Revert.State)
	require.EqualValues(t, 3, st.Revert.Revision)
	require.Equal(t, revertID, st.Revert.EventID)
	require.Equal(t, &workflows.Steps{Committed: "done", Invalidated: "done", Published: "done", Audited: "done"}, st.Revert.Steps)
	require.Equal(t, []string{workflows.StateRevertPending, workflows.StateCompleted}, *tm)

	got, err := f.store.Get(context.Background(), in.Mutation.Key)
	require.NoError(t, err)
	require.Equal(t, "https://a.example", got.URL)
	require.True(t, got.IsActive)
	require.EqualValues(t, 3, got.Revision)
	p, err := f.store.History(context.Background(), in.Mutation.Key, 1, "")
	require.NoError(t, err)
	require.Equal(t, routes.ActionReverted, p.Revisions[0].Action)
	require.EqualValues(t, 1, p.Revisions[0].RollbackTo)
	require.Equal(t, revertID, p.Revisions[0].EventID)

	require.Equal(t, []string{"ev-boxed", revertID}, f.pub.ids)
	doc := f.aud.docs[revertID]
	require.Equal(t, "reverted", doc.Action)
	require.EqualValues(t, 1, doc.Metadata.RollbackTo)
	require.EqualValues(t, 3, doc.Metadata.Revision)
	require.Equal(t, "https://fallback.example", doc.PreviousURL)
	require.Equal(t, "alice", doc.ChangedBy)
	require.Equal(t, "alice", doc.Metadata.RequestedBy)
	require.Equal(t, "ci", doc.Metadata.Principal)
	require.Equal(t, []string{in.Mutation.Key.String(), in.Mutation.Key.String()}, f.cache.keys)
}

func TestARevertIsSkippedWhenTheRouteChangedInBetween(t *testing.T) {
	f := newFixture(t)
	env := scheduledAt(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	in := f.timeBoxed(t, "ev-boxed")
	env.RegisterDelayedCallback(func() {
		hotfix := in.Mutation
		hotfix.URL = "https://hotfix.example"
		_, err := f.store.Apply(context.Background(), hotfix)
		require.NoError(t, err)
	}, 30*time.Minute)

	st, ur := f.run(t, env, in)

	require.NoError(t, ur.err)
	require.Equal(t, workflows.RevertSkipped, st.Revert.State)
	require.Contains(t, st.Revert.Reason, "the route changed after this mutation")
	require.Contains(t, st.Revert.Reason, "revision 3")
	require.Zero(t, st.Revert.Revision)
	require.Equal(t, workflows.StateCompleted, st.State)
	got, err := f.store.Get(context.Background(), in.Mutation.Key)
	require.NoError(t, err)
	require.Equal(t, "https://hotfix.example", got.URL, "the newer change is left alone")
	require.EqualValues(t, 3, got.Revision)
	require.Equal(t, []string{"ev-boxed"}, f.pub.ids, "no event for a skipped revert")
	require.Len(t, f.aud.docs, 1)
}

func TestAPendingRevertCanBeCancelled(t *testing.T) {
	f := newFixture(t)
	env := scheduledAt(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	tm := f.tmStatus(env)
	in := f.timeBoxed(t, "ev-boxed")
	c := send(env, 30*time.Minute, workflows.CancelUpdate, "cancel")

	st, ur := f.run(t, env, in)

	require.NoError(t, ur.err)
	require.NoError(t, c.rejected)
	require.NoError(t, c.err)
	require.Equal(t, workflows.RevertCancelled, c.value.(workflows.Status).Revert.State)
	require.Equal(t, workflows.RevertCancelled, st.Revert.State)
	require.Equal(t, workflows.StateCompleted, st.State)
	require.Equal(t, workflows.Steps{Committed: "done", Invalidated: "done", Published: "done", Audited: "done"}, st.Steps, "the change itself stays")
	require.Less(t, env.Now().Sub(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)), time.Hour, "the workflow ends at the cancel")
	require.Equal(t, []string{workflows.StateRevertPending, workflows.StateCompleted}, *tm)
	got, err := f.store.Get(context.Background(), in.Mutation.Key)
	require.NoError(t, err)
	require.Equal(t, "https://fallback.example", got.URL)
	require.EqualValues(t, 2, got.Revision)
	recs, err := f.store.Recorded(context.Background(), workflows.RevertEventID("ev-boxed"))
	require.NoError(t, err)
	require.Empty(t, recs, "the revert never reached the ledger")
}

// A re-run of a time-boxed change (reset, mutations retry) after its
// revert applied finds both in the ledger and changes nothing again.
func TestARerunOfARevertedChangeRevertsOnlyOnce(t *testing.T) {
	f := newFixture(t)
	in := f.timeBoxed(t, "ev-boxed")
	first, _ := f.run(t, scheduledAt(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)), in)
	require.Equal(t, workflows.RevertDone, first.Revert.State)

	again, ur := f.run(t, scheduledAt(time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)), in)

	require.NoError(t, ur.err)
	require.EqualValues(t, 2, ur.out.Result.Route.Revision, "the change's recorded outcome")
	require.Equal(t, workflows.RevertDone, again.Revert.State)
	require.EqualValues(t, 3, again.Revert.Revision, "the revert's recorded outcome")
	got, err := f.store.Get(context.Background(), in.Mutation.Key)
	require.NoError(t, err)
	require.EqualValues(t, 3, got.Revision)
	require.Len(t, f.aud.docs, 2)
}

func TestRevertAfterOnACreateIsIgnored(t *testing.T) {
	f := newFixture(t)
	env := scheduledAt(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	tm := f.tmStatus(env)
	m := create(testenv.Name(t, "team"), "https://a.example")

	st, ur := f.run(t, env, workflows.MutationInput{Mutation: m, EventID: "ev-create", RevertAfter: time.Hour})

	require.NoError(t, ur.err)
	require.Nil(t, st.Revert)
	require.Nil(t, st.RevertAt)
	require.Empty(t, *tm)
	require.Len(t, f.aud.docs, 1)
}
