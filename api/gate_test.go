package api

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/trafficmanager/trafficmanager/workflows"
)

func TestRevertAfter(t *testing.T) {
	for _, tc := range []struct {
		name    string
		v       string
		want    time.Duration
		wantErr bool
	}{
		{name: "none is no revert", v: ""},
		{name: "one second is the shortest", v: "1s", want: time.Second},
		{name: "an hour and a half", v: "1h30m", want: 90 * time.Minute},
		{name: "30 days is the longest", v: "720h", want: 720 * time.Hour},
		{name: "less than a second is refused", v: "999ms", wantErr: true},
		{name: "more than 30 days is refused", v: "720h1s", wantErr: true},
		{name: "zero is refused", v: "0s", wantErr: true},
		{name: "a negative duration is refused", v: "-1h", wantErr: true},
		{name: "a number without a unit is refused", v: "3600", wantErr: true},
		{name: "days are not a Go unit", v: "1d", wantErr: true},
		{name: "garbage is refused", v: "soon", wantErr: true},
		{name: "an overflowing duration is refused", v: "99999999999999999999h", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := parseRevertAfter(tc.v)
			if tc.wantErr {
				e := ToError(err)
				require.Equal(t, 400, e.Status)
				require.Equal(t, "invalid_argument", e.Code)
				require.Contains(t, e.Message, "revert_after")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, d)
		})
	}
}

func TestARequestHashNamesItsRevertAfter(t *testing.T) {
	at := &notBefore{at: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	none := timing{}
	require.Equal(t, workflows.RequestHash(testMutation), none.requestHash(testMutation), "a plain write hashes as before")
	require.Equal(t, at.requestHash(testMutation), timing{nb: at}.requestHash(testMutation), "a scheduled write hashes as before")
	hour, twoHours := timing{revertAfter: time.Hour}, timing{revertAfter: 2 * time.Hour}
	require.NotEqual(t, none.requestHash(testMutation), hour.requestHash(testMutation))
	require.NotEqual(t, hour.requestHash(testMutation), twoHours.requestHash(testMutation))
	require.NotEqual(t, hour.requestHash(testMutation), timing{nb: at, revertAfter: time.Hour}.requestHash(testMutation))
}

func TestStatusNames(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		temporal, state, errType string
		want                     string
	}{
		{"a plain running mutation is running", "running", "", "", "running"},
		{"waiting for its time is scheduled", "running", workflows.StateScheduled, "", "scheduled"},
		{"waiting for an approver is awaiting_approval", "running", workflows.StateAwaitingApproval, "", "awaiting_approval"},
		{"waiting for its revert is revert_pending", "running", workflows.StateRevertPending, "", "revert_pending"},
		{"applying after its wait is running", "running", workflows.StateApplying, "", "running"},
		{"cancelled is cancelled, running or not", "running", workflows.StateCancelled, "", "cancelled"},
		{"an approver's rejection is rejected", "completed", workflows.StateDenied, "", "rejected"},
		{"no decision in time is expired", "completed", workflows.StateExpired, "", "expired"},
		{"a rejected commit is rejected", "completed", "", "Conflict", "rejected"},
		{"an applied mutation is completed", "completed", "", "", "completed"},
		{"a terminated workflow keeps Temporal's name", "terminated", "", "", "terminated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, statusOf(tc.temporal, tc.state, tc.errType))
		})
	}
}

func TestListedStatusesComeFromTmStatusAndTheExecution(t *testing.T) {
	running, completed := enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
	require.Equal(t, "running", listedStatus(running, ""), "a workflow from before TmStatus")
	require.Equal(t, "awaiting_approval", listedStatus(running, "awaiting_approval"))
	require.Equal(t, "completed", listedStatus(completed, "running"), "ended before its last upsert")
	require.Equal(t, "expired", listedStatus(completed, "expired"))
	require.Equal(t, "failed", listedStatus(enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, "scheduled"))
	require.Equal(t, "failed", listedStatus(enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT, ""))
	require.Equal(t, "failed", listedStatus(completed, "failed"), "waited, then its commit was rejected")
}

func TestTheVisibilityQueryOfAListing(t *testing.T) {
	q := mutationQuery{tenants: []string{"team-a", "team-b"}, status: "awaiting_approval"}
	// Rollouts awaiting approval are decided as mutations are: listed too.
	require.Equal(t, `WorkflowType IN ('RouteMutation', 'RouteBatch', 'SplitMutation', 'Rollout') AND TmTenant IN ('team-a', 'team-b') AND TmStatus = 'awaiting_approval' AND ExecutionStatus = 'Running'`, q.visibilityQuery())
	q = mutationQuery{status: "failed"}
	// Split mutations are listed for every status.
	require.Equal(t, `WorkflowType IN ('RouteMutation', 'RouteBatch', 'SplitMutation') AND (ExecutionStatus IN ('Failed', 'Terminated', 'TimedOut', 'Canceled') OR TmStatus = 'failed')`, q.visibilityQuery())
	for status := range listStatuses {
		require.NotEmpty(t, mutationQuery{status: status}.visibilityQuery())
	}
}

func TestAWrongTypeNamesTheJSONFieldNotTheGoStruct(t *testing.T) {
	require.Equal(t, "revert_after", jsonField("timingFields.revert_after"))
	require.Equal(t, "tenant", jsonField("createRequest.tenant"))
	require.Equal(t, "routes.url", jsonField("routes.url"))
	require.Equal(t, "require_approval.envs", jsonField("require_approval.envs"))
}
