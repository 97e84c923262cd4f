package workflows_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/trafficmanager/trafficmanager/workflows"
)

// Histories of mutations that waited (for their time, an approver, their
// revert), recorded from the e2e tests on a dev server with
// TM_RECORD_HISTORIES (e2e/approval_test.go, revert_test.go,
// schedule_test.go). A change to the gate or the revert that breaks their
// determinism fails here: version it with workflow.GetVersion instead.
func TestWaitingRouteMutationsReplayRecordedHistories(t *testing.T) {
	for _, file := range []string{
		"testdata/scheduled_history.json",                     // not_before 2 s: a timer, then the commit
		"testdata/scheduled_precondition_failed_history.json", // not_before with an If-Match a newer write made stale: rejected when it applies
		"testdata/approval_history.json",                      // awaiting approval, approved by another principal: applied once
		"testdata/approval_rejected_history.json",             // awaiting approval, rejected: no commit
		"testdata/approval_cancelled_history.json",            // awaiting approval, cancelled: no commit
		"testdata/revert_history.json",                        // revert_after 3 s: applied, then reverted as a new revision
		"testdata/revert_skipped_history.json",                // revert_after 3 s; the route changed meanwhile: revert skipped
		"testdata/revert_cancelled_history.json",              // revert_after 3 s; the pending revert cancelled
	} {
		t.Run(file, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.RouteMutation, workflow.RegisterOptions{Name: workflows.WorkflowType})
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, file))
		})
	}
}

func TestWaitingRouteBatchesReplayRecordedHistories(t *testing.T) {
	for _, file := range []string{
		"testdata/batch_approval_history.json",  // a batch with prod routes awaiting approval, approved: created once
		"testdata/batch_scheduled_history.json", // a batch with not_before 2 s
	} {
		t.Run(file, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.RouteBatch, workflow.RegisterOptions{Name: workflows.BatchWorkflowType})
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, file))
		})
	}
}
