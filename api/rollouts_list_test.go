package api

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/trafficmanager/trafficmanager/routes"
)

// tenantScope is a Scope of fixed tenants (read and write).
type tenantScope []string

func (s tenantScope) Allows(tenant string, _ bool) bool {
	for _, t := range s {
		if t == tenant {
			return true
		}
	}
	return false
}
func (s tenantScope) Tenants() []string { return s }

func listContext(url string, scope Scope) *gin.Context {
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest("GET", url, nil)
	if scope != nil {
		c.Set("scope", scope)
	}
	return c
}

func TestTheRolloutListingsParameters(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		scope     Scope
		wantErr   bool
		want      string
	}{
		{name: "no parameters list every rollout", url: "/?", want: `WorkflowType = 'Rollout'`},
		{name: "a token sees its tenants only", url: "/?status=paused", scope: tenantScope{"team-a", "team-b"},
			want: `WorkflowType = 'Rollout' AND TmTenant IN ('team-a', 'team-b') AND TmStatus = 'paused' AND ExecutionStatus = 'Running'`},
		{name: "service and env narrow it", url: "/?tenant=team-a&service=checkout&env=prod&status=awaiting_approval",
			want: `WorkflowType = 'Rollout' AND TmTenant IN ('team-a') AND TmService = 'checkout' AND TmEnv = 'prod' AND TmStatus = 'awaiting_approval' AND ExecutionStatus = 'Running'`},
		{name: "failed is every way the workflow ends without completing", url: "/?status=failed",
			want: `WorkflowType = 'Rollout' AND ExecutionStatus IN ('Failed', 'Terminated', 'TimedOut', 'Canceled')`},
		{name: "an unknown status is refused", url: "/?status=scheduled", wantErr: true},
		{name: "a service that is not a name is refused", url: "/?service=a'b", wantErr: true},
		{name: "an env that is not a name is refused", url: "/?env=%20", wantErr: true},
		{name: "a limit over 200 is refused", url: "/?limit=201", wantErr: true},
		{name: "a cursor that is not base64 is refused", url: "/?cursor=***", wantErr: true},
		{name: "another tenant than the token's is refused", url: "/?tenant=team-c", scope: tenantScope{"team-a"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, empty, err := parseRolloutQuery(listContext(tc.url, tc.scope))
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.False(t, empty)
			require.Equal(t, tc.want, q.visibilityQuery())
		})
	}
	for status := range rolloutStatuses {
		require.Contains(t, rolloutQuery{mutationQuery: mutationQuery{status: status}}.visibilityQuery(), " AND ", "status %s", status)
	}
}

func TestATokenWithoutTenantsListsNoRollout(t *testing.T) {
	_, empty, err := parseRolloutQuery(listContext("/", tenantScope{}))
	require.NoError(t, err)
	require.True(t, empty)
}

func payload(t *testing.T, v any) *commonpb.Payload {
	p, err := converter.GetDefaultDataConverter().ToPayload(v)
	require.NoError(t, err)
	return p
}

func TestAListedRolloutComesFromItsVisibilityRecord(t *testing.T) {
	start := time.Date(2026, 11, 29, 21, 0, 0, 0, time.UTC)
	info := &workflowpb.WorkflowExecutionInfo{
		Execution: &commonpb.WorkflowExecution{WorkflowId: "rollout/team-a/checkout/prod/k1", RunId: "r1"},
		Status:    enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
		StartTime: timestamppb.New(start),
		SearchAttributes: &commonpb.SearchAttributes{IndexedFields: map[string]*commonpb.Payload{
			"TmTenant": payload(t, "team-a"), "TmService": payload(t, "checkout"), "TmEnv": payload(t, "prod"),
			"TmStatus": payload(t, "awaiting_approval"),
		}},
		Memo: &commonpb.Memo{Fields: map[string]*commonpb.Payload{"to": payload(t, "v2")}},
	}
	require.Equal(t, listedRollout{
		ID: "team-a/checkout/prod/k1", WorkflowID: "rollout/team-a/checkout/prod/k1", Status: "awaiting_approval",
		Service: "checkout", Env: "prod", To: "v2", StartedAt: &start,
	}, listedRolloutOf(info))

	info.Memo, info.Status = nil, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
	info.SearchAttributes.IndexedFields["TmStatus"] = payload(t, "paused")
	got := listedRolloutOf(info)
	require.Equal(t, "completed", got.Status, "ended before its last upsert")
	require.Empty(t, got.To, "started before the memo held to")
	require.Equal(t, "failed", rolloutListedStatus(enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, "running"))
	require.Equal(t, "aborted", rolloutListedStatus(enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, "aborted"))
}

func TestASplitMutationIsListedWithItsSplitKey(t *testing.T) {
	info := &workflowpb.WorkflowExecutionInfo{
		Execution: &commonpb.WorkflowExecution{WorkflowId: "split/team-a/checkout/prod/split_updated/k1", RunId: "r1"},
		Status:    enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
		SearchAttributes: &commonpb.SearchAttributes{IndexedFields: map[string]*commonpb.Payload{
			"TmTenant": payload(t, "team-a"), "TmAction": payload(t, "split_updated"), "TmStatus": payload(t, "awaiting_approval"),
		}},
	}
	got := listed(info)
	require.Equal(t, "split_updated", got.Action)
	require.Equal(t, "awaiting_approval", got.Status)
	require.Equal(t, routes.SplitKey{Tenant: "team-a", Service: "checkout", Env: "prod"}, got.Route)
}
