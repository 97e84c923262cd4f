package workflows_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/trafficmanager/trafficmanager/workflows"
)

// Histories recorded by e2e/rollouts_test.go (TM_RECORD_HISTORIES): a code
// change that breaks determinism of Rollout fails here, and replaying a
// finished rollout schedules nothing new (no split step applied again).
func TestRolloutReplaysRecordedHistories(t *testing.T) {
	for _, file := range []string{
		"testdata/rollout_history.json",              // three steps with pauses to 100 %
		"testdata/rollout_abort_history.json",        // aborted after the first step: the starting split restored
		"testdata/rollout_check_failed_history.json", // the check gate fails twice: aborted, the split deleted
		"testdata/rollout_pause_history.json",        // paused, the worker restarted, resumed, completed
		"testdata/rollout_approval_history.json",     // awaiting approval (policy on prod), approved by another principal, completed
		"testdata/rollout_rejected_history.json",     // awaiting approval, rejected: no step, the env's lock released
	} {
		t.Run(file, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.Rollout, workflow.RegisterOptions{Name: workflows.RolloutWorkflowType})
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, file))
		})
	}
}
