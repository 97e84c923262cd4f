package workflows_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/trafficmanager/trafficmanager/activities"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/workflows"
)

type batchUpdate struct {
	out workflows.BatchCommitOutput
	err error
}

func (f *fixture) runBatch(t *testing.T, env *testsuite.TestWorkflowEnvironment, in workflows.BatchInput) (workflows.BatchStatus, batchUpdate) {
	t.Helper()
	f.register(env)
	var ur batchUpdate
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(workflows.CommitUpdate, "commit", &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(err error) { ur.err = err },
			OnComplete: func(v any, err error) {
				ur.err = err
				if out, ok := v.(workflows.BatchCommitOutput); ok {
					ur.out = out
				}
			},
		})
	}, 0)
	env.ExecuteWorkflow(workflows.RouteBatch, in)
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var st workflows.BatchStatus
	require.NoError(t, env.GetWorkflowResult(&st))
	return st, ur
}

func creations(tenant string, n int) []routes.Mutation {
	ms := make([]routes.Mutation, n)
	for i := range ms {
		ms[i] = routes.Mutation{Action: routes.ActionCreated, Key: routes.Key{Tenant: tenant, Service: "payments", Env: "prod", Version: fmt.Sprintf("v%d", i)},
			URL: fmt.Sprintf("https://payments.example/v%d", i), Active: true, ChangedBy: "importer"}
	}
	return ms
}

func TestRouteBatchCreatesEveryRouteWithOneEventAndAuditDocumentEach(t *testing.T) {
	f := newFixture(t)
	tenant := testenv.Name(t, "team")
	ms := creations(tenant, 50)
	// Two of them exist already: left alone, no side effects for them.
	for _, i := range []int{3, 40} {
		_, err := f.store.Apply(context.Background(), ms[i])
		require.NoError(t, err)
	}
	// Kafka fails the first two produce attempts; the retry sends the same ids.
	f.pub.failures = 2

	var s testsuite.WorkflowTestSuite
	st, ur := f.runBatch(t, s.NewTestWorkflowEnvironment(), workflows.BatchInput{Mutations: ms, BatchID: "b-1", Principal: "ci"})

	require.NoError(t, ur.err)
	require.Len(t, ur.out.Results, 50)
	require.Len(t, ur.out.EventIDs, 50)
	require.Equal(t, 48, st.Created)
	require.Equal(t, 2, st.Unchanged)
	require.Equal(t, workflows.Steps{Committed: "done", Invalidated: "done", Published: "done", Audited: "done"}, st.Steps)
	var want []string
	for i, r := range ur.out.Results {
		require.Equal(t, ms[i].Key, r.Route.Key())
		require.Equal(t, workflows.BatchEventID("b-1", i), ur.out.EventIDs[i])
		if i == 3 || i == 40 {
			require.False(t, r.Changed)
			continue
		}
		require.True(t, r.Changed)
		want = append(want, ur.out.EventIDs[i])
	}
	require.Equal(t, want, f.pub.ids, "one event per created route, same ids after the retry")
	require.Len(t, f.aud.docs, 48)
	require.Equal(t, "ci", f.aud.docs[want[0]].Metadata.Principal)
	require.Equal(t, "importer", f.aud.docs[want[0]].ChangedBy)
	require.Len(t, f.cache.keys, 48)

	// A re-run of the same workflow input (mutations retry) replays the same changes.
	f2 := &fixture{store: f.store, pub: &recordingPublisher{}, aud: &recordingAudit{}, cache: &recordingCache{}}
	f2.acts = &activities.Activities{Routes: f2.store, Cache: f2.cache, Events: f2.pub, AuditLog: f2.aud, Log: f.acts.Log}
	st, _ = f2.runBatch(t, s.NewTestWorkflowEnvironment(), workflows.BatchInput{Mutations: ms, BatchID: "b-1", Principal: "ci"})
	require.Equal(t, 48, st.Created)
	require.Equal(t, want, f2.pub.ids)
}

func TestRouteBatchConflictRejectsTheWholeBatch(t *testing.T) {
	f := newFixture(t)
	tenant := testenv.Name(t, "team")
	ms := creations(tenant, 10)
	other := ms[7]
	other.URL = "https://elsewhere.example"
	_, err := f.store.Apply(context.Background(), other)
	require.NoError(t, err)

	var s testsuite.WorkflowTestSuite
	st, ur := f.runBatch(t, s.NewTestWorkflowEnvironment(), workflows.BatchInput{Mutations: ms, BatchID: "b-2"})

	var appErr *temporal.ApplicationError
	require.ErrorAs(t, ur.err, &appErr)
	require.Equal(t, activities.ErrTypeConflict, appErr.Type())
	require.Contains(t, appErr.Message(), "routes[7]")
	require.Equal(t, "rejected", st.Steps.Committed)
	require.Empty(t, f.pub.ids)
	require.Empty(t, f.aud.docs)
	_, err = f.store.Get(context.Background(), ms[0].Key)
	require.ErrorIs(t, err, routes.ErrNotFound, "nothing of the batch was created")
}

func TestABatchBehindAnApprovalCreatesItsRoutesOnceApproved(t *testing.T) {
	f := newFixture(t)
	env := scheduledAt(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	tm := f.tmStatus(env)
	tenant := testenv.Name(t, "team")
	ms := creations(tenant, 3)
	self := send(env, time.Hour, workflows.ApproveUpdate, "approve-self", workflows.Decision{By: *alice})
	waiting := status[workflows.BatchStatus](t, env, 2*time.Hour)
	var createdEarly bool
	env.RegisterDelayedCallback(func() {
		_, err := f.store.Get(context.Background(), ms[0].Key)
		createdEarly = err == nil
	}, 2*time.Hour)
	ok := send(env, 3*time.Hour, workflows.ApproveUpdate, "approve", workflows.Decision{By: bob, Comment: "ok"})

	st, ur := f.runBatch(t, env, workflows.BatchInput{Mutations: ms, BatchID: "b-approved", Approval: approval(72 * time.Hour), RequestedBy: alice})

	require.Equal(t, workflows.ErrTypeSelfApproval, errType(t, self.rejected))
	require.Equal(t, workflows.StateAwaitingApproval, waiting.State)
	require.Equal(t, alice, waiting.RequestedBy)
	require.False(t, createdEarly)
	require.NoError(t, ok.err)
	require.Equal(t, &bob, ok.value.(workflows.BatchStatus).ApprovedBy)
	require.NoError(t, ur.err)
	require.Len(t, ur.out.Results, 3)
	require.Equal(t, 3, st.Created)
	require.Equal(t, &bob, st.ApprovedBy)
	require.Equal(t, workflows.Steps{Committed: "done", Invalidated: "done", Published: "done", Audited: "done"}, st.Steps)
	require.Len(t, f.aud.docs, 3)
	for _, d := range f.aud.docs {
		require.Equal(t, "alice", d.Metadata.RequestedBy)
		require.Equal(t, "bob", d.Metadata.ApprovedBy)
	}
	require.Equal(t, []string{workflows.StateRunning, workflows.StateCompleted}, *tm)
}

func TestABatchThatIsRejectedExpiresOrIsCancelledCreatesNothing(t *testing.T) {
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	nb := start.Add(24 * time.Hour)
	tests := []struct {
		name    string
		in      workflows.BatchInput
		update  string
		state   string
		errType string
	}{
		{"a rejected batch", workflows.BatchInput{Approval: approval(72 * time.Hour)}, workflows.RejectUpdate, workflows.StateDenied, workflows.ErrTypeDenied},
		{"an expired batch", workflows.BatchInput{Approval: approval(72 * time.Hour)}, "", workflows.StateExpired, workflows.ErrTypeExpired},
		{"a batch cancelled while awaiting approval", workflows.BatchInput{Approval: approval(72 * time.Hour)}, workflows.CancelUpdate, workflows.StateCancelled, workflows.ErrTypeCancelled},
		{"a scheduled batch cancelled", workflows.BatchInput{NotBefore: &nb}, workflows.CancelUpdate, workflows.StateCancelled, workflows.ErrTypeCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			env := scheduledAt(start)
			tm := f.tmStatus(env)
			ms := creations(testenv.Name(t, "team"), 2)
			in := tt.in
			in.Mutations, in.BatchID, in.RequestedBy = ms, "b-"+tt.state, alice
			var u *sent
			switch tt.update {
			case workflows.RejectUpdate:
				u = send(env, time.Hour, tt.update, "u", workflows.Decision{By: bob})
			case workflows.CancelUpdate:
				u = send(env, time.Hour, tt.update, "u")
			}

			st, ur := f.runBatch(t, env, in)

			if u != nil {
				require.NoError(t, u.rejected)
				require.NoError(t, u.err)
			}
			require.Equal(t, tt.state, st.State)
			require.Equal(t, tt.errType, errType(t, ur.err))
			require.Equal(t, workflows.Steps{Committed: "skipped", Invalidated: "skipped", Published: "skipped", Audited: "skipped"}, st.Steps)
			require.Equal(t, []string{tt.state}, *tm)
			_, err := f.store.Get(context.Background(), ms[0].Key)
			require.ErrorIs(t, err, routes.ErrNotFound)
			require.Empty(t, f.aud.docs)
		})
	}
}

func TestACancelOfABatchThatIsNotPendingIsRejected(t *testing.T) {
	f := newFixture(t)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	c := send(env, 0, workflows.CancelUpdate, "cancel")

	st, ur := f.runBatch(t, env, workflows.BatchInput{Mutations: creations(testenv.Name(t, "team"), 2), BatchID: "b-now"})

	require.Equal(t, workflows.ErrTypeNotPending, errType(t, c.rejected))
	require.NoError(t, ur.err)
	require.Equal(t, 2, st.Created)
	require.Empty(t, st.State)
}
