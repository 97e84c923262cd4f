package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

// revertOf returns the revert part of a mutation status ({} when absent).
func revertOf(st response) map[string]any {
	r, _ := st.Body["revert"].(map[string]any)
	if r == nil {
		return map[string]any{}
	}
	return r
}

// awaitRevert polls the mutation's status until its revert is in state want.
func awaitRevert(t *testing.T, p *platform, wfID, want string) response {
	t.Helper()
	var st response
	eventually(t, 30*time.Second, func() bool {
		st = p.do(t, "GET", "/api/v1/mutations/"+wfID, nil)
		return revertOf(st)["state"] == want
	}, "the revert of "+wfID+" is "+want)
	return st
}

// A change with revert_after 3s applies at once and, 3 s later, the route's
// previous state comes back as a new revision with action reverted: its own
// event and audit document, the mutation's status saying done.
func TestATimeBoxedChangeIsRevertedAfterItsTime(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	k := routes.Key{Tenant: testenv.Name(t, "team"), Service: "payments", Env: "prod", Version: "v1"}
	awaitCompleted(t, p, create(t, p, k, "https://a.example", true), "")

	res := p.do(t, "PUT", routePath(k), map[string]any{"url": "https://fallback.example", "revert_after": "3s"})
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	require.Equal(t, "updated", res.Body["action"])
	require.EqualValues(t, 2, res.Body["route"].(map[string]any)["revision"])
	wfID := res.Body["workflow_id"].(string)

	st := awaitRevert(t, p, wfID, "pending")
	require.Equal(t, "revert_pending", st.Body["status"], st.Raw)
	require.NotEmpty(t, st.Body["revert_at"], st.Raw)
	revertAt, err := time.Parse(time.RFC3339Nano, st.Body["revert_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(3*time.Second), revertAt, 3*time.Second, "revert_at is 3 s after the commit")
	require.Equal(t, "https://fallback.example", p.do(t, "GET", routePath(k), nil).Body["url"])

	st = awaitRevert(t, p, wfID, "done")
	require.EqualValues(t, 3, revertOf(st)["revision"], st.Raw)
	got := p.do(t, "GET", routePath(k), nil)
	require.Equal(t, "https://a.example", got.Body["url"], got.Raw)
	require.EqualValues(t, 3, got.Body["revision"])
	hist := p.do(t, "GET", routePath(k)+"/history", nil)
	require.Equal(t, http.StatusOK, hist.Status, hist.Raw)
	newest := hist.Body["revisions"].([]any)[0].(map[string]any)
	require.Equal(t, "reverted", newest["action"], hist.Raw)
	require.EqualValues(t, 3, newest["revision"])

	awaitCompleted(t, p, wfID, "")
	evs := p.eventsFor(t, k)
	require.Len(t, evs, 3, "create, update, revert")
	require.Equal(t, "reverted", string(evs[2].Action))
	require.Equal(t, revertOf(st)["event_id"], evs[2].EventID)
	eventually(t, 10*time.Second, func() bool { return p.auditDocs(t, evs[2].EventID) == 1 }, "the revert's audit document")
	require.Equal(t, []int64{1, 2, 3}, auditRevisions(t, p, k))
	requireConsistentTenant(t, p, k.Tenant)
	recordClosedHistory(t, p, wfID, "revert_history.json")

	late := p.do(t, "POST", "/api/v1/mutations/"+wfID+"/cancel", nil)
	require.Equal(t, http.StatusConflict, late.Status, "a revert that happened cannot be cancelled: %s", late.Raw)
}

// The revert is a compare-and-set on the revision the change produced: a
// route changed in between keeps its newer state and the status says the
// revert was skipped.
func TestARevertIsSkippedWhenTheRouteChangedMeanwhile(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	k := routes.Key{Tenant: testenv.Name(t, "team"), Service: "payments", Env: "prod", Version: "v1"}
	awaitCompleted(t, p, create(t, p, k, "https://a.example", true), "")

	res := p.do(t, "POST", routePath(k)+"/deactivate", map[string]any{"revert_after": "3s"})
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	wfID := res.Body["workflow_id"].(string)
	newer := p.do(t, "PUT", routePath(k), map[string]any{"url": "https://c.example"})
	require.Equal(t, http.StatusOK, newer.Status, newer.Raw)

	st := awaitRevert(t, p, wfID, "skipped")
	require.NotEmpty(t, revertOf(st)["reason"], st.Raw)
	awaitCompleted(t, p, wfID, "")
	got := p.do(t, "GET", routePath(k), nil)
	require.Equal(t, "https://c.example", got.Body["url"], got.Raw)
	require.Equal(t, false, got.Body["is_active"], "the deactivation stays: the revert was skipped")
	require.EqualValues(t, 3, got.Body["revision"])
	require.Len(t, p.eventsFor(t, k), 3, "create, deactivate, update: no revert")
	require.Equal(t, []int64{1, 2, 3}, auditRevisions(t, p, k))
	requireConsistentTenant(t, p, k.Tenant)
	recordClosedHistory(t, p, wfID, "revert_skipped_history.json")
}

// A pending revert can be cancelled: the change stays.
func TestACancelledRevertLeavesTheChangeInPlace(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	k := routes.Key{Tenant: testenv.Name(t, "team"), Service: "payments", Env: "prod", Version: "v1"}
	awaitCompleted(t, p, create(t, p, k, "https://a.example", true), "")

	res := p.do(t, "PUT", routePath(k), map[string]any{"url": "https://b.example", "revert_after": "3s"})
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	wfID := res.Body["workflow_id"].(string)
	awaitRevert(t, p, wfID, "pending")
	c := p.do(t, "POST", "/api/v1/mutations/"+wfID+"/cancel", nil)
	require.Equal(t, http.StatusOK, c.Status, c.Raw)
	require.Equal(t, "cancelled", revertOf(c)["state"], c.Raw)

	time.Sleep(4 * time.Second) // past the revert's time
	st := p.do(t, "GET", "/api/v1/mutations/"+wfID, nil)
	require.Equal(t, "cancelled", revertOf(st)["state"], st.Raw)
	require.Equal(t, "done", st.Body["steps"].(map[string]any)["committed"], "the change itself applied: %s", st.Raw)
	got := p.do(t, "GET", routePath(k), nil)
	require.Equal(t, "https://b.example", got.Body["url"], got.Raw)
	require.EqualValues(t, 2, got.Body["revision"])
	require.Len(t, p.eventsFor(t, k), 2)
	again := p.do(t, "POST", "/api/v1/mutations/"+wfID+"/cancel", nil)
	require.Equal(t, http.StatusConflict, again.Status, again.Raw)
	requireConsistentTenant(t, p, k.Tenant)
	recordClosedHistory(t, p, wfID, "revert_cancelled_history.json")
}

// Bad not_before and revert_after are refused at once, and nothing starts.
func TestBadScheduleAndRevertInputIs400(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	k := routes.Key{Tenant: testenv.Name(t, "team"), Service: "payments", Env: "prod", Version: "v1"}
	awaitCompleted(t, p, create(t, p, k, "https://a.example", true), "")
	createBody := func(extra map[string]any) map[string]any {
		b := map[string]any{"tenant": k.Tenant, "service": k.Service, "env": k.Env, "version": "v2", "url": "https://a.example"}
		for n, v := range extra {
			b[n] = v
		}
		return b
	}
	for _, tc := range []struct {
		name, method, path, field string
		body                      any
	}{
		{"not_before beyond 90 days", "PUT", routePath(k), "not_before", map[string]any{"url": "https://b.example", "not_before": fromNow(91 * 24 * time.Hour)}},
		{"not_before no time", "POST", routePath(k) + "/deactivate", "not_before", map[string]any{"not_before": "next tuesday"}},
		{"revert_after no duration", "PUT", routePath(k), "revert_after", map[string]any{"url": "https://b.example", "revert_after": "an hour"}},
		{"revert_after a number", "POST", routePath(k) + "/deactivate", "", map[string]any{"revert_after": 3}},
		{"revert_after under 1s", "POST", routePath(k) + "/deactivate", "revert_after", map[string]any{"revert_after": "500ms"}},
		{"revert_after negative", "POST", routePath(k) + "/activate", "revert_after", map[string]any{"revert_after": "-1h"}},
		{"revert_after beyond 30 days", "POST", routePath(k) + "/rollback", "revert_after", map[string]any{"revision": 1, "revert_after": "721h"}},
		{"revert_after on a create", "POST", "/api/v1/routes", "revert_after", createBody(map[string]any{"revert_after": "1h"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := p.do(t, tc.method, tc.path, tc.body)
			require.Equal(t, http.StatusBadRequest, res.Status, res.Raw)
			require.Equal(t, "invalid_argument", errorCode(res))
			if tc.field != "" {
				require.Contains(t, res.Body["error"].(map[string]any)["message"], tc.field)
			}
		})
	}
	got := p.do(t, "GET", routePath(k), nil)
	require.EqualValues(t, 1, got.Body["revision"], got.Raw)
	require.Len(t, p.eventsFor(t, k), 1)
	require.Equal(t, http.StatusNotFound, p.do(t, "GET", routePath(routes.Key{Tenant: k.Tenant, Service: k.Service, Env: k.Env, Version: "v2"}), nil).Status)

	// A not_before more than a minute in the past is 400; within the last
	// minute (clock skew) it means "apply now", the write's normal path.
	past := p.do(t, "POST", routePath(k)+"/deactivate", map[string]any{"not_before": fromNow(-2 * time.Minute)})
	require.Equal(t, http.StatusBadRequest, past.Status, past.Raw)
	require.Contains(t, past.Raw, "not_before")
	now := p.do(t, "POST", routePath(k)+"/deactivate", map[string]any{"not_before": fromNow(-10 * time.Second)})
	require.Equal(t, http.StatusOK, now.Status, now.Raw)
	require.EqualValues(t, 2, now.Body["route"].(map[string]any)["revision"])
}
