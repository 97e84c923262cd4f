package workflows_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/trafficmanager/trafficmanager/workflows"
)

// Histories recorded by e2e/splits_test.go (TM_RECORD_HISTORIES): a code
// change that breaks determinism of SplitMutation fails here.
func TestSplitMutationReplaysRecordedHistories(t *testing.T) {
	for _, file := range []string{
		"testdata/split_history.json",           // commit, then invalidate/publish/audit in parallel
		"testdata/split_delete_history.json",    // a delete
		"testdata/split_approval_history.json",  // awaiting approval, approved, applied
		"testdata/split_scheduled_history.json", // a durable timer until not_before, then applied
	} {
		t.Run(file, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.SplitMutation, workflow.RegisterOptions{Name: workflows.SplitWorkflowType})
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, file))
		})
	}
}
