package workflows_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/trafficmanager/trafficmanager/workflows"
)

// Histories recorded from a dev server run (temporal workflow show -o json).
// A code change that breaks determinism of RouteMutation fails here: bump
// the workflow with workflow.GetVersion instead.
func TestRouteMutationReplaysRecordedHistories(t *testing.T) {
	for _, file := range []string{
		"testdata/deactivate_history.json", // commit, then invalidate/publish/audit in parallel
		"testdata/rejected_history.json",   // commit rejected: route not found
		"testdata/outage_history.json",     // Kafka refused the first publish: a durable activity published it later
		"testdata/rerun_history.json",      // an update reset to its first workflow task after newer changes: the ledger's outcome
	} {
		t.Run(file, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.RouteMutation, workflow.RegisterOptions{Name: workflows.WorkflowType})
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, file))
		})
	}
}

func TestRouteBatchReplaysRecordedHistories(t *testing.T) {
	for _, file := range []string{
		"testdata/batch_history.json",          // two routes committed, then the three bulk side effects
		"testdata/batch_rejected_history.json", // conflict: rejected as a whole
		"testdata/batch_rerun_history.json",    // reset after newer changes of its routes: the ledger's outcomes
	} {
		t.Run(file, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.RouteBatch, workflow.RegisterOptions{Name: workflows.BatchWorkflowType})
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, file))
		})
	}
}
