package workflows_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/trafficmanager/trafficmanager/activities"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/workflows"
)

var (
	alice = &workflows.Actor{ID: "tok-alice", Name: "alice"}
	bob   = workflows.Actor{ID: "tok-bob", Name: "bob"}
)

// sent is the outcome of an update sent to the workflow under test.
type sent struct {
	rejected error
	err      error
	value    any
}

// send sends the update name with arg after delay (on the test clock).
func send(env *testsuite.TestWorkflowEnvironment, delay time.Duration, name, id string, arg ...any) *sent {
	s := &sent{}
	env.RegisterDelayedCallback(func() { sendNow(env, s, name, id, arg...) }, delay)
	return s
}

func sendNow(env *testsuite.TestWorkflowEnvironment, s *sent, name, id string, arg ...any) {
	env.UpdateWorkflow(name, id, &testsuite.TestUpdateCallback{
		OnAccept: func() {},
		OnReject: func(err error) { s.rejected = err },
		OnComplete: func(v any, err error) {
			s.err, s.value = err, v
		},
	}, arg...)
}

// status queries the workflow's status after delay.
func status[S any](t *testing.T, env *testsuite.TestWorkflowEnvironment, delay time.Duration) *S {
	var st S
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(workflows.StatusQuery)
		require.NoError(t, err)
		require.NoError(t, v.Get(&st))
	}, delay)
	return &st
}

// tmStatus records the values the workflow upserts into TmStatus.
func (f *fixture) tmStatus(env *testsuite.TestWorkflowEnvironment) *[]string {
	f.register(env)
	var got []string
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		if v, ok := sa.GetKeyword(workflows.AttrStatus); ok {
			got = append(got, v)
		}
	}).Return(nil).Maybe()
	return &got
}

func errType(t *testing.T, err error) string {
	t.Helper()
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.True(t, appErr.NonRetryable())
	return appErr.Type()
}

func approval(timeout time.Duration) *workflows.Approval {
	return &workflows.Approval{Timeout: timeout}
}

// requireNothingChanged checks that the mutation left no trace: no route,
// no ledger row, no event, no audit document.
func (f *fixture) requireNothingChanged(t *testing.T, k routes.Key, eventID string) {
	t.Helper()
	_, err := f.store.Get(context.Background(), k)
	require.ErrorIs(t, err, routes.ErrNotFound, "the route was never created")
	recs, err := f.store.Recorded(context.Background(), eventID)
	require.NoError(t, err)
	require.Empty(t, recs, "no ledger row")
	require.Empty(t, f.pub.ids)
	require.Empty(t, f.aud.docs)
}

func TestAMutationNobodyApprovesExpiresAfter72HoursAndChangesNothing(t *testing.T) {
	f := newFixture(t)
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	env := scheduledAt(start)
	tm := f.tmStatus(env)
	m := create(testenv.Name(t, "team"), "https://payments.example/v2")
	waiting := status[workflows.Status](t, env, time.Hour)

	began := time.Now()
	st, ur := f.run(t, env, workflows.MutationInput{Mutation: m, EventID: "ev-expire", Approval: approval(72 * time.Hour), RequestedBy: alice})

	require.Less(t, time.Since(began), 10*time.Second, "the test suite skips the 72 h")
	require.Equal(t, workflows.StateAwaitingApproval, waiting.State)
	require.Equal(t, start.Add(72*time.Hour), *waiting.ExpiresAt)
	require.Equal(t, alice, waiting.RequestedBy)
	require.Equal(t, workflows.StateExpired, st.State)
	require.Equal(t, workflows.Steps{Committed: "skipped", Invalidated: "skipped", Published: "skipped", Audited: "skipped"}, st.Steps)
	require.Equal(t, workflows.ErrTypeExpired, errType(t, ur.err), "the pending commit update is answered: expired")
	require.Equal(t, []string{workflows.StateExpired}, *tm)
	f.requireNothingChanged(t, m.Key, "ev-expire")
}

func TestAnApprovedMutationAppliesExactlyOnceEvenWhenApprovedTwice(t *testing.T) {
	f := newFixture(t)
	env := scheduledAt(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	tm := f.tmStatus(env)
	m := create(testenv.Name(t, "team"), "https://payments.example/v2")
	first, second := &sent{}, &sent{}
	env.RegisterDelayedCallback(func() {
		sendNow(env, first, workflows.ApproveUpdate, "approve-1", workflows.Decision{By: bob, Comment: "lgtm"})
		sendNow(env, second, workflows.ApproveUpdate, "approve-2", workflows.Decision{By: workflows.Actor{ID: "tok-carol", Name: "carol"}})
	}, 3*time.Hour)

	st, ur := f.run(t, env, workflows.MutationInput{Mutation: m, EventID: "ev-approved", Approval: approval(72 * time.Hour), RequestedBy: alice})

	require.NoError(t, first.rejected)
	require.NoError(t, first.err)
	require.Equal(t, &bob, first.value.(workflows.Status).ApprovedBy)
	require.Equal(t, workflows.ErrTypeNotPending, errType(t, second.rejected), "the second approval finds nothing to approve")
	require.NoError(t, ur.err)
	require.True(t, ur.out.Result.Changed)
	require.EqualValues(t, 1, ur.out.Result.Route.Revision)
	require.Equal(t, &bob, st.ApprovedBy)
	require.Equal(t, "lgtm", st.Comment)
	require.Equal(t, workflows.StateApplying, st.State)
	require.Equal(t, workflows.Steps{Committed: "done", Invalidated: "done", Published: "done", Audited: "done"}, st.Steps)
	require.Equal(t, []string{"ev-approved"}, f.pub.ids)
	require.Len(t, f.aud.docs, 1)
	doc := f.aud.docs["ev-approved"]
	require.Equal(t, "alice", doc.Metadata.RequestedBy)
	require.Equal(t, "bob", doc.Metadata.ApprovedBy)
	require.Equal(t, []string{workflows.StateRunning, workflows.StateCompleted}, *tm)
	recs, err := f.store.Recorded(context.Background(), "ev-approved")
	require.NoError(t, err)
	require.Len(t, recs, 1)
}

func TestTheRequesterCannotApproveButSomeoneElseCan(t *testing.T) {
	f := newFixture(t)
	env := scheduledAt(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	m := create(testenv.Name(t, "team"), "https://payments.example/v2")
	self := send(env, time.Hour, workflows.ApproveUpdate, "approve-self", workflows.Decision{By: workflows.Actor{ID: alice.ID, Name: "alice again"}})
	before := status[workflows.Status](t, env, 2*time.Hour)
	other := send(env, 3*time.Hour, workflows.ApproveUpdate, "approve-bob", workflows.Decision{By: bob})

	st, ur := f.run(t, env, workflows.MutationInput{Mutation: m, EventID: "ev-four-eyes", Approval: approval(72 * time.Hour), RequestedBy: alice})

	require.Equal(t, workflows.ErrTypeSelfApproval, errType(t, self.rejected))
	require.Equal(t, workflows.StateAwaitingApproval, before.State, "a refused approval changes nothing")
	require.NoError(t, other.rejected)
	require.NoError(t, ur.err)
	require.True(t, ur.out.Result.Changed)
	require.Equal(t, &bob, st.ApprovedBy)
}

func TestARejectedMutationChangesNothing(t *testing.T) {
	f := newFixture(t)
	env := scheduledAt(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	tm := f.tmStatus(env)
	m := create(testenv.Name(t, "team"), "https://payments.example/v2")
	rej := send(env, time.Hour, workflows.RejectUpdate, "reject", workflows.Decision{By: bob, Comment: "not during the freeze"})
	late := send(env, 2*time.Hour, workflows.ApproveUpdate, "approve-late", workflows.Decision{By: bob})

	st, ur := f.run(t, env, workflows.MutationInput{Mutation: m, EventID: "ev-rejected", Approval: approval(72 * time.Hour), RequestedBy: alice})

	require.NoError(t, rej.rejected)
	require.NoError(t, rej.err)
	require.Equal(t, workflows.StateDenied, rej.value.(workflows.Status).State)
	require.Nil(t, late.rejected, "the workflow ended: the late approval never reached it")
	require.Equal(t, workflows.StateDenied, st.State)
	require.Equal(t, &bob, st.DecidedBy)
	require.Nil(t, st.ApprovedBy)
	require.Equal(t, "not during the freeze", st.Comment)
	require.Equal(t, workflows.Steps{Committed: "skipped", Invalidated: "skipped", Published: "skipped", Audited: "skipped"}, st.Steps)
	require.Equal(t, workflows.ErrTypeDenied, errType(t, ur.err))
	require.Equal(t, []string{workflows.StateDenied}, *tm)
	f.requireNothingChanged(t, m.Key, "ev-rejected")
}

func TestAnApprovedMutationThenWaitsForItsNotBefore(t *testing.T) {
	f := newFixture(t)
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	env := scheduledAt(start)
	tm := f.tmStatus(env)
	nb := start.Add(10 * time.Hour)
	m := create(testenv.Name(t, "team"), "https://payments.example/v2")
	awaiting := status[workflows.Status](t, env, 30*time.Minute)
	ok := send(env, time.Hour, workflows.ApproveUpdate, "approve", workflows.Decision{By: bob})
	waiting := status[workflows.Status](t, env, 5*time.Hour)
	var committedEarly bool
	env.RegisterDelayedCallback(func() {
		_, err := f.store.Get(context.Background(), m.Key)
		committedEarly = err == nil
	}, 9*time.Hour)

	st, ur := f.run(t, env, workflows.MutationInput{Mutation: m, EventID: "ev-approved-later", NotBefore: &nb, Approval: approval(72 * time.Hour), RequestedBy: alice})

	require.NoError(t, ok.err)
	require.Equal(t, workflows.StateAwaitingApproval, awaiting.State)
	require.Equal(t, nb, *awaiting.NotBefore, "the status says when it would apply")
	require.Equal(t, workflows.StateScheduled, ok.value.(workflows.Status).State, "the approval answers: scheduled")
	require.Equal(t, workflows.StateScheduled, waiting.State)
	require.Equal(t, nb, *waiting.NotBefore)
	require.False(t, committedEarly, "approved, but not before its time")
	require.False(t, env.Now().Before(nb))
	require.NoError(t, ur.err)
	require.True(t, ur.out.Result.Changed)
	require.Equal(t, "done", st.Steps.Audited)
	require.Equal(t, []string{workflows.StateScheduled, workflows.StateRunning, workflows.StateCompleted}, *tm)
}

func TestAMutationCancelledWhileAwaitingApprovalChangesNothing(t *testing.T) {
	f := newFixture(t)
	env := scheduledAt(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	tm := f.tmStatus(env)
	m := create(testenv.Name(t, "team"), "https://payments.example/v2")
	c := send(env, time.Hour, workflows.CancelUpdate, "cancel")

	st, ur := f.run(t, env, workflows.MutationInput{Mutation: m, EventID: "ev-withdrawn", Approval: approval(72 * time.Hour), RequestedBy: alice})

	require.NoError(t, c.rejected)
	require.NoError(t, c.err)
	require.Equal(t, workflows.StateCancelled, st.State)
	require.Equal(t, workflows.ErrTypeCancelled, errType(t, ur.err))
	require.Equal(t, []string{workflows.StateCancelled}, *tm)
	f.requireNothingChanged(t, m.Key, "ev-withdrawn")
}

func TestApproveAndRejectOfAMutationThatDoesNotWaitAreRejected(t *testing.T) {
	f := newFixture(t)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	tm := f.tmStatus(env)
	m := create(testenv.Name(t, "team"), "https://payments.example/v2")
	ap := send(env, 0, workflows.ApproveUpdate, "approve", workflows.Decision{By: bob})
	rj := send(env, 0, workflows.RejectUpdate, "reject", workflows.Decision{By: bob})

	st, ur := f.run(t, env, workflows.MutationInput{Mutation: m, EventID: "ev-now", RequestedBy: alice})

	require.Equal(t, workflows.ErrTypeNotPending, errType(t, ap.rejected))
	require.Equal(t, workflows.ErrTypeNotPending, errType(t, rj.rejected))
	require.NoError(t, ur.err)
	require.Empty(t, st.State)
	require.Equal(t, alice, st.RequestedBy)
	require.Empty(t, *tm, "a mutation that applies at once upserts nothing")
	require.Equal(t, "alice", f.aud.docs["ev-now"].Metadata.RequestedBy)
	require.Empty(t, f.aud.docs["ev-now"].Metadata.ApprovedBy)
}

// If-Match is honoured when a scheduled change applies, not when it was
// requested: a route changed meanwhile rejects it, and its status says why.
func TestAScheduledChangeWhoseRouteChangedMeanwhileFailsItsPrecondition(t *testing.T) {
	f := newFixture(t)
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	env := scheduledAt(start)
	tm := f.tmStatus(env)
	m := create(testenv.Name(t, "team"), "https://a.example")
	_, err := f.store.Apply(context.Background(), m)
	require.NoError(t, err)
	env.RegisterDelayedCallback(func() {
		upd := m
		upd.Action, upd.URL = routes.ActionUpdated, "https://hotfix.example"
		_, err := f.store.Apply(context.Background(), upd)
		require.NoError(t, err)
	}, time.Hour)
	nb := start.Add(2 * time.Hour)
	later := m
	later.Action, later.URL, later.IfRevision = routes.ActionUpdated, "https://v3.example", 1

	st, ur := f.run(t, env, workflows.MutationInput{Mutation: later, EventID: "ev-stale", NotBefore: &nb})

	require.Equal(t, activities.ErrTypePreconditionFailed, errType(t, ur.err))
	require.Equal(t, activities.ErrTypePreconditionFailed, st.ErrorType)
	require.Contains(t, st.Error, "revision 2")
	require.Equal(t, workflows.RejectedSteps, st.Steps)
	require.Equal(t, []string{workflows.StateRunning, workflows.StateFailed}, *tm)
	got, err := f.store.Get(context.Background(), m.Key)
	require.NoError(t, err)
	require.Equal(t, "https://hotfix.example", got.URL)
	require.Empty(t, f.pub.ids)
}
