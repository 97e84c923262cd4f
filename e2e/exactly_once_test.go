package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/consistency"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

// resetToFirstWorkflowTask does what `temporal workflow reset --type
// FirstWorkflowTask` does, and returns the new run's id.
func resetToFirstWorkflowTask(t *testing.T, p *platform, wfID string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	desc, err := p.tc.DescribeWorkflowExecution(ctx, wfID, "")
	require.NoError(t, err)
	runID := desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	var first int64
	it := p.tc.GetWorkflowHistory(ctx, wfID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() && first == 0 {
		ev, err := it.Next()
		require.NoError(t, err)
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
			first = ev.GetEventId()
		}
	}
	require.NotZero(t, first, "%s has a completed workflow task", wfID)
	res, err := p.tc.ResetWorkflowExecution(ctx, &workflowservice.ResetWorkflowExecutionRequest{
		Namespace:                 "default",
		WorkflowExecution:         &commonpb.WorkflowExecution{WorkflowId: wfID, RunId: runID},
		Reason:                    "test: reset to the first workflow task",
		WorkflowTaskFinishEventId: first,
		RequestId:                 wfID + "/" + runID + "/reset",
	})
	require.NoError(t, err)
	return res.GetRunId()
}

// awaitCompleted waits until the mutation's latest run (runID) completed.
func awaitCompleted(t *testing.T, p *platform, wfID, runID string) response {
	t.Helper()
	var st response
	eventually(t, 30*time.Second, func() bool {
		st = p.do(t, "GET", "/api/v1/mutations/"+wfID, nil)
		return st.Body["status"] == "completed" && (runID == "" || st.Body["run_id"] == runID)
	}, "mutation "+wfID+" completes")
	return st
}

// auditRevisions returns the metadata.revision of every audit document of
// route k, sorted: exactly 1..revision once each when nothing was lost or
// duplicated.
func auditRevisions(t *testing.T, p *platform, k routes.Key) []int64 {
	t.Helper()
	return auditRevisionsIn(t, p.mongo.Collection(audit.CollectionName), k)
}

func upTo(n int64) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i + 1)
	}
	return out
}

// The scenario, for every kind of mutation: a mutation is reset to
// its first workflow task after a newer change of the same route. The re-run
// reports its original outcome, the route keeps its newest state, and the
// audit trail holds exactly one document per revision.
func TestAResetMutationNeverUndoesANewerChange(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	path := func(k routes.Key) string {
		return "/api/v1/routes/" + k.Tenant + "/" + k.Service + "/" + k.Env + "/" + k.Version
	}
	tests := []struct {
		name string
		// run makes the changes and returns the workflow id to reset and
		// the route's state expected at the end.
		run func(t *testing.T, k routes.Key) (wfID string, url string, active bool, revision int64)
	}{
		{"update", func(t *testing.T, k routes.Key) (string, string, bool, int64) {
			create(t, p, k, "https://a.example", true)
			b := p.do(t, "PUT", path(k), map[string]any{"url": "https://b.example"}, "Idempotency-Key", "upd-b")
			require.Equal(t, http.StatusOK, b.Status, b.Raw)
			c := p.do(t, "PUT", path(k), map[string]any{"url": "https://c.example"}, "Idempotency-Key", "upd-c")
			require.Equal(t, http.StatusOK, c.Status, c.Raw)
			return b.Body["workflow_id"].(string), "https://c.example", true, 3
		}},
		{"deactivate", func(t *testing.T, k routes.Key) (string, string, bool, int64) {
			create(t, p, k, "https://a.example", true)
			off := p.do(t, "POST", path(k)+"/deactivate", nil, "Idempotency-Key", "off-1")
			require.Equal(t, http.StatusOK, off.Status, off.Raw)
			on := p.do(t, "POST", path(k)+"/activate", nil, "Idempotency-Key", "on-1")
			require.Equal(t, http.StatusOK, on.Status, on.Raw)
			return off.Body["workflow_id"].(string), "https://a.example", true, 3
		}},
		{"activate", func(t *testing.T, k routes.Key) (string, string, bool, int64) {
			create(t, p, k, "https://a.example", false)
			on := p.do(t, "POST", path(k)+"/activate", nil, "Idempotency-Key", "on-1")
			require.Equal(t, http.StatusOK, on.Status, on.Raw)
			off := p.do(t, "POST", path(k)+"/deactivate", nil, "Idempotency-Key", "off-1")
			require.Equal(t, http.StatusOK, off.Status, off.Raw)
			return on.Body["workflow_id"].(string), "https://a.example", false, 3
		}},
		{"create", func(t *testing.T, k routes.Key) (string, string, bool, int64) {
			wfID := create(t, p, k, "https://a.example", true)
			b := p.do(t, "PUT", path(k), map[string]any{"url": "https://b.example"})
			require.Equal(t, http.StatusOK, b.Status, b.Raw)
			return wfID, "https://b.example", true, 2
		}},
		{"a no-op activate", func(t *testing.T, k routes.Key) (string, string, bool, int64) {
			create(t, p, k, "https://a.example", true)
			on := p.do(t, "POST", path(k)+"/activate", nil, "Idempotency-Key", "noop-on")
			require.Equal(t, http.StatusOK, on.Status, on.Raw)
			require.Equal(t, false, on.Body["changed"])
			off := p.do(t, "POST", path(k)+"/deactivate", nil)
			require.Equal(t, http.StatusOK, off.Status, off.Raw)
			return on.Body["workflow_id"].(string), "https://a.example", false, 2
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := routes.Key{Tenant: testenv.Name(t, "team"), Service: "payments", Env: "prod", Version: "v1"}
			wfID, url, active, revision := tt.run(t, k)
			before := awaitCompleted(t, p, wfID, "")

			newRun := resetToFirstWorkflowTask(t, p, wfID)
			after := awaitCompleted(t, p, wfID, newRun)
			if tt.name == "update" {
				recordHistory(t, p, wfID, "rerun_history.json")
			}

			require.Equal(t, before.Body["changed"], after.Body["changed"], "the re-run reports the original outcome")
			require.Equal(t, before.Body["event_id"], after.Body["event_id"])
			require.Equal(t, before.Body["route"].(map[string]any)["revision"], after.Body["route"].(map[string]any)["revision"])
			got := p.do(t, "GET", path(k), nil)
			require.Equal(t, http.StatusOK, got.Status, got.Raw)
			require.Equal(t, url, got.Body["url"], "the newer change stands")
			require.Equal(t, active, got.Body["is_active"])
			require.EqualValues(t, revision, got.Body["revision"], "the re-run made no revision")
			require.Equal(t, upTo(revision), auditRevisions(t, p, k), "one audit document per revision")
			for _, e := range p.eventsFor(t, k) {
				require.LessOrEqual(t, e.Revision, revision)
			}
			requireConsistentTenant(t, p, k.Tenant)
		})
	}
}

// A batch reset after one of its routes changed leaves that route alone.
func TestAResetBatchNeverUndoesANewerChange(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	tenant := testenv.Name(t, "team")
	res := p.do(t, "POST", "/api/v1/routes/batch", map[string]any{"routes": []map[string]any{
		{"tenant": tenant, "service": "search", "env": "prod", "version": "v1", "url": "https://s.example/v1"},
		{"tenant": tenant, "service": "search", "env": "prod", "version": "v2", "url": "https://s.example/v2"},
	}}, "Idempotency-Key", "batch-1")
	require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	wfID := res.Body["workflow_id"].(string)
	k := routes.Key{Tenant: tenant, Service: "search", Env: "prod", Version: "v2"}
	upd := p.do(t, "PUT", "/api/v1/routes/"+tenant+"/search/prod/v2", map[string]any{"url": "https://s.example/v2-new"})
	require.Equal(t, http.StatusOK, upd.Status, upd.Raw)
	off := p.do(t, "POST", "/api/v1/routes/"+tenant+"/search/prod/v1/deactivate", nil)
	require.Equal(t, http.StatusOK, off.Status, off.Raw)
	awaitCompleted(t, p, wfID, "")

	newRun := resetToFirstWorkflowTask(t, p, wfID)
	after := awaitCompleted(t, p, wfID, newRun)
	require.EqualValues(t, 2, after.Body["created"], after.Raw)
	recordHistory(t, p, wfID, "batch_rerun_history.json")

	got := p.do(t, "GET", "/api/v1/routes/"+tenant+"/search/prod/v2", nil)
	require.Equal(t, "https://s.example/v2-new", got.Body["url"])
	require.EqualValues(t, 2, got.Body["revision"])
	got = p.do(t, "GET", "/api/v1/routes/"+tenant+"/search/prod/v1", nil)
	require.Equal(t, false, got.Body["is_active"])
	require.EqualValues(t, 2, got.Body["revision"])
	require.Equal(t, []int64{1, 2}, auditRevisions(t, p, k))
	require.Equal(t, []int64{1, 2}, auditRevisions(t, p, routes.Key{Tenant: tenant, Service: "search", Env: "prod", Version: "v1"}))
	requireConsistentTenant(t, p, tenant)
}

// requireConsistentTenant runs the oracle of `trafficmanager check` on tenant.
func requireConsistentTenant(t *testing.T, p *platform, tenant string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := consistency.Check(ctx, p.pool, p.mongo.Collection(audit.CollectionName), tenant)
	require.NoError(t, err)
	require.True(t, rep.Consistent(), "check: %+v", rep.Discrepancies)
	require.NotZero(t, rep.Routes)
}

// The same Idempotency-Key with another request is refused, not answered
// with the first request's result.
func TestAnIdempotencyKeyReusedForAnotherRequestIs422(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	k := routes.Key{Tenant: testenv.Name(t, "team"), Service: "payments", Env: "prod", Version: "v1"}
	create(t, p, k, "https://a.example", true)
	path := "/api/v1/routes/" + k.Tenant + "/payments/prod/v1"
	first := p.do(t, "PUT", path, map[string]any{"url": "https://b.example"}, "Idempotency-Key", "k-1")
	require.Equal(t, http.StatusOK, first.Status, first.Raw)
	same := p.do(t, "PUT", path, map[string]any{"url": "https://b.example"}, "Idempotency-Key", "k-1")
	require.Equal(t, http.StatusOK, same.Status, same.Raw)
	require.Equal(t, first.Body["event_id"], same.Body["event_id"])
	other := p.do(t, "PUT", path, map[string]any{"url": "https://c.example"}, "Idempotency-Key", "k-1")
	require.Equal(t, http.StatusUnprocessableEntity, other.Status, other.Raw)
	require.Equal(t, "idempotency_key_reused", other.Body["error"].(map[string]any)["code"])
	got := p.do(t, "GET", path, nil)
	require.Equal(t, "https://b.example", got.Body["url"])
}

// create writes a route and returns its mutation's workflow id.
func create(t *testing.T, p *platform, k routes.Key, url string, active bool) string {
	t.Helper()
	res := p.do(t, "POST", "/api/v1/routes", map[string]any{
		"tenant": k.Tenant, "service": k.Service, "env": k.Env, "version": k.Version, "url": url, "active": active,
	})
	require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	return res.Body["workflow_id"].(string)
}
