package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/routes"
)

// A batch with a route in an env that needs approval waits as a whole and,
// approved, creates every route once; a batch with a not_before creates its
// routes at that time.
func TestAnApprovedOrScheduledBatchCreatesItsRoutesOnce(t *testing.T) {
	t.Parallel()
	ap := startApprovalPlatform(t)
	ap.requireApproval(t, "prod")
	const n = 4 // svc-0..3, prod and staging alternately
	res := ap.do(t, "POST", "/api/v1/routes/batch", batchBody(ap.tenant, n, func(i int) string { return "https://a.example" }), ap.writer...)
	require.Equal(t, http.StatusAccepted, res.Status, res.Raw)
	require.Equal(t, "awaiting_approval", res.Body["status"], res.Raw)
	wfID := res.Body["workflow_id"].(string)
	require.Equal(t, http.StatusNotFound, ap.do(t, "GET", routePath(batchKey(ap.tenant, 1)), nil, ap.admin...).Status, "nothing before the approval")
	require.Equal(t, http.StatusForbidden, ap.do(t, "POST", "/api/v1/mutations/"+wfID+"/approve", nil, ap.writer...).Status)
	ok := ap.do(t, "POST", "/api/v1/mutations/"+wfID+"/approve", nil, ap.approver...)
	require.Equal(t, http.StatusOK, ok.Status, ok.Raw)
	require.Equal(t, http.StatusConflict, ap.do(t, "POST", "/api/v1/mutations/"+wfID+"/approve", nil, ap.admin...).Status, "a second principal's approval")
	ap.awaitStatus(t, wfID, "completed")

	sched := map[string]any{"routes": []map[string]any{
		{"tenant": ap.tenant, "service": "later", "env": "staging", "version": "v1", "url": "https://a.example"},
		{"tenant": ap.tenant, "service": "later", "env": "staging", "version": "v2", "url": "https://a.example"},
	}, "not_before": fromNow(2 * time.Second)}
	sres := ap.do(t, "POST", "/api/v1/routes/batch", sched, ap.writer...)
	require.Equal(t, http.StatusAccepted, sres.Status, sres.Raw)
	require.Equal(t, "scheduled", sres.Body["status"], sres.Raw)
	schedID := sres.Body["workflow_id"].(string)
	later := routes.Key{Tenant: ap.tenant, Service: "later", Env: "staging", Version: "v2"}
	require.Equal(t, http.StatusNotFound, ap.do(t, "GET", routePath(later), nil, ap.admin...).Status, "nothing before its time")
	ap.awaitStatus(t, schedID, "completed")
	require.Equal(t, http.StatusOK, ap.do(t, "GET", routePath(later), nil, ap.admin...).Status)

	for i := range n {
		k := batchKey(ap.tenant, i)
		got := ap.do(t, "GET", routePath(k), nil, ap.admin...)
		require.Equal(t, http.StatusOK, got.Status, got.Raw)
		require.EqualValues(t, 1, got.Body["revision"])
		evs := ap.eventsFor(t, k)
		require.Len(t, evs, 1, "one event for %v", k)
		md := auditMetadata(t, ap.platform, evs[0].EventID)
		require.Equal(t, "alice", md.ApprovedBy, "%v", k)
	}
	requireConsistentTenant(t, ap.platform, ap.tenant)
	recordClosedHistory(t, ap.platform, wfID, "batch_approval_history.json")
	recordClosedHistory(t, ap.platform, schedID, "batch_scheduled_history.json")
}

// An approval given before the write's not_before holds it until then; the
// listing pages through waiting mutations with limit and cursor, only the
// token's tenant's.
func TestAnApprovedScheduledWriteAppliesAtItsTimeAndListsPage(t *testing.T) {
	t.Parallel()
	ap := startApprovalPlatform(t)
	k := routes.Key{Tenant: ap.tenant, Service: "payments", Env: "prod", Version: "v1"}
	ap.createRoute(t, k, "https://a.example")
	for _, v := range []string{"v2", "v3", "v4"} {
		ap.createRoute(t, routes.Key{Tenant: ap.tenant, Service: "payments", Env: "prod", Version: v}, "https://a.example")
	}
	ap.requireApproval(t, "prod")

	res := ap.do(t, "PUT", routePath(k), map[string]any{"url": "https://b.example", "not_before": fromNow(4 * time.Second)}, ap.writer...)
	require.Equal(t, http.StatusAccepted, res.Status, res.Raw)
	require.Equal(t, "awaiting_approval", res.Body["status"], res.Raw)
	wfID := res.Body["workflow_id"].(string)
	st := ap.do(t, "GET", "/api/v1/mutations/"+wfID, nil, ap.admin...)
	require.NotEmpty(t, st.Body["not_before"], st.Raw)
	ok := ap.do(t, "POST", "/api/v1/mutations/"+wfID+"/approve", nil, ap.approver...)
	require.Equal(t, http.StatusOK, ok.Status, ok.Raw)
	ap.awaitStatus(t, wfID, "scheduled")
	require.Equal(t, "https://a.example", ap.do(t, "GET", routePath(k), nil, ap.admin...).Body["url"], "approved, but not before its time")
	done := ap.awaitStatus(t, wfID, "completed")
	require.Contains(t, done.Raw, `"alice"`)
	require.Equal(t, "https://b.example", ap.do(t, "GET", routePath(k), nil, ap.admin...).Body["url"])

	// Three more wait for approval; pages of two.
	var waiting []string
	for _, v := range []string{"v2", "v3", "v4"} {
		r := ap.do(t, "POST", routePath(routes.Key{Tenant: ap.tenant, Service: "payments", Env: "prod", Version: v})+"/deactivate", nil, ap.writer...)
		require.Equal(t, http.StatusAccepted, r.Status, r.Raw)
		waiting = append(waiting, r.Body["workflow_id"].(string))
	}
	list := func(cursor string) response {
		q := "/api/v1/mutations?status=awaiting_approval&limit=2"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		return ap.do(t, "GET", q, nil, ap.approver...)
	}
	var first, second response
	var listed []string
	eventually(t, 15*time.Second, func() bool {
		// Visibility is eventually consistent: page until all three show.
		first = list("")
		require.Equal(t, http.StatusOK, first.Status, first.Raw)
		if cur, _ := first.Body["next_cursor"].(string); cur == "" || len(first.Body["mutations"].([]any)) != 2 {
			return false
		}
		second = list(first.Body["next_cursor"].(string))
		require.Equal(t, http.StatusOK, second.Status, second.Raw)
		listed = nil
		for _, page := range []response{first, second} {
			for _, m := range page.Body["mutations"].([]any) {
				m := m.(map[string]any)
				require.Equal(t, "awaiting_approval", m["status"])
				require.Equal(t, ap.tenant, m["route"].(map[string]any)["tenant"])
				listed = append(listed, m["workflow_id"].(string))
			}
		}
		return len(listed) == 3
	}, "two pages list the three waiting mutations")
	require.ElementsMatch(t, waiting, listed)
	require.Empty(t, second.Body["next_cursor"], second.Raw)
	foreign := ap.do(t, "GET", "/api/v1/mutations?status=awaiting_approval", nil, ap.foreign...)
	require.Equal(t, http.StatusOK, foreign.Status, foreign.Raw)
	require.NotContains(t, foreign.Raw, ap.tenant, "another tenant's approver sees none of them")
	bad := ap.do(t, "GET", "/api/v1/mutations?status=sleeping", nil, ap.approver...)
	require.Equal(t, http.StatusBadRequest, bad.Status, bad.Raw)
}
