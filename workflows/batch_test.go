package workflows_test

import (
	"context"
	"fmt"
	"testing"

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
