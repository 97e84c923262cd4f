package workflows_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/worker"
	"github.com/trafficmanager/trafficmanager/workflows"
)

// On a real Temporal server (the dev server of internal/testenv), each
// kind of wait costs the number of history events docs/temporal.md
// states, and every such history replays on the current code.
func TestWaitingMutationsCostTheDocumentedHistoryEventsAndReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal dev server")
	}
	srv := testenv.Temporal(t)
	tc, err := client.DialContext(context.Background(), client.Options{HostPort: srv.Address, Namespace: srv.Namespace,
		Logger: observability.NewTemporalLogger(zap.NewNop())})
	require.NoError(t, err)
	t.Cleanup(tc.Close)

	approve := func(by workflows.Actor) func(*testing.T, *fixture, string, routes.Key) {
		return func(t *testing.T, _ *fixture, id string, _ routes.Key) {
			update(t, tc, id, workflows.ApproveUpdate, workflows.Decision{By: by})
		}
	}
	tests := []struct {
		name   string
		in     func(*testing.T, *fixture) workflows.MutationInput
		then   func(t *testing.T, f *fixture, id string, k routes.Key)
		status string // TmStatus at the end
		events int
		revert string // Revert.State at the end, if any
	}{
		{name: "an immediate mutation", in: immediate, status: workflows.StateRunning, events: 11},
		{name: "a scheduled mutation", in: func(t *testing.T, f *fixture) workflows.MutationInput {
			in := immediate(t, f)
			in.NotBefore = ptr(time.Now().Add(time.Second))
			return in
		}, status: workflows.StateCompleted, events: 20},
		{name: "a scheduled mutation cancelled", in: func(t *testing.T, f *fixture) workflows.MutationInput {
			in := immediate(t, f)
			in.NotBefore = ptr(time.Now().Add(time.Hour))
			return in
		}, then: func(t *testing.T, _ *fixture, id string, _ routes.Key) { update(t, tc, id, workflows.CancelUpdate) }, status: workflows.StateCancelled, events: 16},
		{name: "an approved mutation", in: awaiting, then: approve(bob), status: workflows.StateCompleted, events: 21},
		{name: "an approved mutation that then waits for its time", in: func(t *testing.T, f *fixture) workflows.MutationInput {
			in := awaiting(t, f)
			in.NotBefore = ptr(time.Now().Add(2 * time.Second))
			return in
		}, then: approve(bob), status: workflows.StateCompleted, events: 27},
		{name: "a rejected mutation", in: awaiting, then: func(t *testing.T, _ *fixture, id string, _ routes.Key) {
			update(t, tc, id, workflows.RejectUpdate, workflows.Decision{By: bob})
		}, status: workflows.StateDenied, events: 16},
		{name: "an expired mutation", in: func(t *testing.T, f *fixture) workflows.MutationInput {
			in := awaiting(t, f)
			in.Approval.Timeout = time.Second
			return in
		}, status: workflows.StateExpired, events: 15},
		{name: "a reverted change", in: timeBoxedFor(2 * time.Second), status: workflows.StateCompleted, events: 24, revert: workflows.RevertDone},
		{name: "a skipped revert", in: timeBoxedFor(2 * time.Second), then: func(t *testing.T, f *fixture, id string, k routes.Key) {
			waitFor(t, tc, id, workflows.StateRevertPending)
			_, err := f.store.Apply(context.Background(), routes.Mutation{Action: routes.ActionDeactivated, Key: k})
			require.NoError(t, err)
		}, status: workflows.StateCompleted, events: 21, revert: workflows.RevertSkipped},
		{name: "a cancelled revert", in: timeBoxedFor(time.Hour), then: func(t *testing.T, _ *fixture, id string, _ routes.Key) {
			waitFor(t, tc, id, workflows.StateRevertPending)
			update(t, tc, id, workflows.CancelUpdate)
		}, status: workflows.StateCompleted, events: 21, revert: workflows.RevertCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			tq := testenv.Name(t, "tq")
			w := sdkworker.New(tc, tq, sdkworker.Options{})
			worker.Register(w, f.acts)
			require.NoError(t, w.Start())
			t.Cleanup(w.Stop)

			in := tt.in(t, f)
			id := testenv.Name(t, "wf")
			initial := workflows.StateRunning
			switch {
			case in.Approval != nil:
				initial = workflows.StateAwaitingApproval
			case in.NotBefore != nil:
				initial = workflows.StateScheduled
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := tc.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
				StartWorkflowOperation: tc.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
					ID: id, TaskQueue: tq, WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
					TypedSearchAttributes: temporal.NewSearchAttributes(workflows.AttrTenant.ValueSet(in.Mutation.Key.Tenant), workflows.AttrStatus.ValueSet(initial)),
				}, workflows.WorkflowType, in),
				UpdateOptions: client.UpdateWorkflowOptions{UpdateID: "commit", UpdateName: workflows.CommitUpdate, WaitForStage: client.WorkflowUpdateStageAccepted},
			})
			require.NoError(t, err)
			if tt.then != nil {
				tt.then(t, f, id, in.Mutation.Key)
			}
			var st workflows.Status
			require.NoError(t, tc.GetWorkflow(ctx, id, "").Get(ctx, &st))
			if tt.revert != "" {
				require.Equal(t, tt.revert, st.Revert.State)
			}

			desc, err := tc.DescribeWorkflowExecution(ctx, id, "")
			require.NoError(t, err)
			var got string
			require.NoError(t, converter.GetDefaultDataConverter().FromPayload(desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()["TmStatus"], &got))
			require.Equal(t, tt.status, got, "TmStatus at the end")

			h := history(t, tc, id)
			require.Equal(t, tt.events, len(h.Events), "history: %s", eventTypes(h))
			r := sdkworker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.RouteMutation, workflow.RegisterOptions{Name: workflows.WorkflowType})
			require.NoError(t, r.ReplayWorkflowHistory(nil, h), "the history replays")
		})
	}
}

func ptr[T any](v T) *T { return &v }

func immediate(t *testing.T, _ *fixture) workflows.MutationInput {
	m := create(testenv.Name(t, "team"), "https://payments.example/v2")
	return workflows.MutationInput{Mutation: m, EventID: testenv.Name(t, "ev"), RequestedBy: alice}
}

func awaiting(t *testing.T, f *fixture) workflows.MutationInput {
	in := immediate(t, f)
	in.Approval = approval(72 * time.Hour)
	return in
}

func timeBoxedFor(d time.Duration) func(*testing.T, *fixture) workflows.MutationInput {
	return func(t *testing.T, f *fixture) workflows.MutationInput {
		in := f.timeBoxed(t, testenv.Name(t, "ev"))
		in.RevertAfter = d
		return in
	}
}

// update sends an update and waits for its answer.
func update(t *testing.T, tc client.Client, id, name string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: name, Args: args, WaitForStage: client.WorkflowUpdateStageCompleted})
	require.NoError(t, err)
	var st workflows.Status
	require.NoError(t, h.Get(ctx, &st))
}

// waitFor polls the status query until the mutation is in state.
func waitFor(t *testing.T, tc client.Client, id, state string) {
	t.Helper()
	require.Eventually(t, func() bool {
		v, err := tc.QueryWorkflow(context.Background(), id, "", workflows.StatusQuery)
		var st workflows.Status
		return err == nil && v.Get(&st) == nil && st.State == state
	}, 10*time.Second, 20*time.Millisecond)
}

func history(t *testing.T, tc client.Client, id string) *historypb.History {
	t.Helper()
	it := tc.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, e)
	}
	return h
}

func eventTypes(h *historypb.History) string {
	var b strings.Builder
	for i, e := range h.Events {
		fmt.Fprintf(&b, "\n%2d %s", i+1, e.GetEventType())
	}
	return b.String()
}
