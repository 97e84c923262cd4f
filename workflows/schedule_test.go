package workflows_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/workflows"
)

// scheduledAt starts a test environment at start, so NotBefore is relative
// to a known workflow.Now.
func scheduledAt(start time.Time) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(start)
	return env
}

func TestAScheduledMutationWaitsOnItsTimerThenCommits(t *testing.T) {
	f := newFixture(t)
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	env := scheduledAt(start)
	nb := start.Add(72 * time.Hour)
	m := create(testenv.Name(t, "team"), "https://payments.example/v2")
	var waiting workflows.Status
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(workflows.StatusQuery)
		require.NoError(t, err)
		require.NoError(t, v.Get(&waiting))
		_, err = f.store.Get(context.Background(), m.Key)
		require.Error(t, err, "nothing is committed while the mutation waits")
	}, time.Hour)

	began := time.Now()
	st, ur := f.run(t, env, workflows.MutationInput{Mutation: m, EventID: "ev-later", NotBefore: &nb})

	require.Less(t, time.Since(began), 10*time.Second, "the test suite skips the 72 h")
	require.Equal(t, workflows.StateScheduled, waiting.State)
	require.Equal(t, nb, *waiting.NotBefore)
	require.Equal(t, workflows.StepPending, waiting.Steps.Committed)
	require.NoError(t, ur.err)
	require.True(t, ur.out.Result.Changed)
	require.Equal(t, workflows.StateApplying, st.State)
	require.Equal(t, workflows.Steps{Committed: "done", Invalidated: "done", Published: "done", Audited: "done"}, st.Steps)
	require.Len(t, f.aud.docs, 1)
}

func TestACancelledScheduledMutationEndsWithoutCommitting(t *testing.T) {
	f := newFixture(t)
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	env := scheduledAt(start)
	nb := start.Add(72 * time.Hour)
	m := create(testenv.Name(t, "team"), "https://payments.example/v2")
	var cancelled workflows.Status
	var cancelErr error
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(workflows.CancelUpdate, "cancel", &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(err error) { cancelErr = err },
			OnComplete: func(v any, err error) {
				cancelErr = err
				cancelled, _ = v.(workflows.Status)
			},
		})
	}, time.Hour)

	st, ur := f.run(t, env, workflows.MutationInput{Mutation: m, EventID: "ev-cancelled", NotBefore: &nb})

	require.NoError(t, cancelErr)
	require.Equal(t, workflows.StateCancelled, cancelled.State)
	require.Equal(t, workflows.StateCancelled, st.State)
	require.Equal(t, workflows.Steps{Committed: "skipped", Invalidated: "skipped", Published: "skipped", Audited: "skipped"}, st.Steps)
	require.Error(t, ur.err, "the pending commit update is answered: cancelled")
	_, err := f.store.Get(context.Background(), m.Key)
	require.Error(t, err, "the route was never created")
	recs, err := f.store.Recorded(context.Background(), "ev-cancelled")
	require.NoError(t, err)
	require.Empty(t, recs, "no ledger row")
	require.Empty(t, f.pub.ids)
	require.Empty(t, f.aud.docs)
}

func TestACancelOfAMutationThatIsNotScheduledIsRejected(t *testing.T) {
	f := newFixture(t)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	m := create(testenv.Name(t, "team"), "https://payments.example/v2")
	var rejected error
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(workflows.CancelUpdate, "cancel", &testsuite.TestUpdateCallback{
			OnAccept:   func() {},
			OnReject:   func(err error) { rejected = err },
			OnComplete: func(any, error) {},
		})
	}, 0)

	st, ur := f.run(t, env, workflows.MutationInput{Mutation: m, EventID: "ev-now"})

	var appErr *temporal.ApplicationError
	require.ErrorAs(t, rejected, &appErr)
	require.Equal(t, workflows.ErrTypeNotPending, appErr.Type())
	require.NoError(t, ur.err)
	require.Equal(t, "done", st.Steps.Committed)
	require.Empty(t, st.State, "an unscheduled mutation reports no state")
}
