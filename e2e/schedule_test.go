package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

// fromNow returns an RFC 3339 time d from now.
func fromNow(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339Nano) }

// A write scheduled 2 s ahead answers 202 scheduled at once, leaves the
// route as it is until then, then applies with one event and one audit
// document; a cancel after it applied is 409 mutation_not_pending.
func TestAScheduledWriteAppliesAtItsTime(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	k := routes.Key{Tenant: testenv.Name(t, "team"), Service: "payments", Env: "prod", Version: "v1"}
	create(t, p, k, "https://a.example", true)

	res := p.do(t, "PUT", routePath(k), map[string]any{"url": "https://b.example", "not_before": fromNow(2 * time.Second)})
	require.Equal(t, http.StatusAccepted, res.Status, res.Raw)
	require.Equal(t, "scheduled", res.Body["status"])
	require.NotEmpty(t, res.Body["not_before"])
	wfID := res.Body["workflow_id"].(string)

	st := p.do(t, "GET", "/api/v1/mutations/"+wfID, nil)
	require.Equal(t, "scheduled", st.Body["status"], st.Raw)
	require.NotEmpty(t, st.Body["not_before"], st.Raw)
	require.Equal(t, "https://a.example", p.do(t, "GET", routePath(k), nil).Body["url"], "unchanged before its time")

	done := awaitCompleted(t, p, wfID, "")
	require.Equal(t, "done", done.Body["steps"].(map[string]any)["committed"], done.Raw)
	require.Equal(t, "https://b.example", p.do(t, "GET", routePath(k), nil).Body["url"])
	evs := p.eventsFor(t, k)
	require.Len(t, evs, 2, "the create's event and the scheduled update's")
	require.Equal(t, done.Body["event_id"], evs[1].EventID)
	require.EqualValues(t, 1, p.auditDocs(t, evs[1].EventID))
	recordClosedHistory(t, p, wfID, "scheduled_history.json")

	late := p.do(t, "POST", "/api/v1/mutations/"+wfID+"/cancel", nil)
	require.Equal(t, http.StatusConflict, late.Status, late.Raw)
	require.Equal(t, "mutation_not_pending", late.Body["error"].(map[string]any)["code"])
}

// A scheduled write cancelled before its time never changes the route.
func TestACancelledScheduledWriteNeverApplies(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	k := routes.Key{Tenant: testenv.Name(t, "team"), Service: "payments", Env: "prod", Version: "v1"}
	create(t, p, k, "https://a.example", true)

	res := p.do(t, "POST", routePath(k)+"/deactivate", map[string]any{"not_before": fromNow(2 * time.Second)})
	require.Equal(t, http.StatusAccepted, res.Status, res.Raw)
	wfID := res.Body["workflow_id"].(string)

	cancelled := p.do(t, "POST", "/api/v1/mutations/"+wfID+"/cancel", nil)
	require.Equal(t, http.StatusOK, cancelled.Status, cancelled.Raw)
	require.Equal(t, "cancelled", cancelled.Body["status"])
	require.Equal(t, "skipped", cancelled.Body["steps"].(map[string]any)["committed"])

	time.Sleep(3 * time.Second) // past its time
	got := p.do(t, "GET", routePath(k), nil)
	require.Equal(t, true, got.Body["is_active"], got.Raw)
	require.EqualValues(t, 1, got.Body["revision"])
	require.Len(t, p.eventsFor(t, k), 1, "only the create's event")
	st := p.do(t, "GET", "/api/v1/mutations/"+wfID, nil)
	require.Equal(t, "cancelled", st.Body["status"], st.Raw)
	again := p.do(t, "POST", "/api/v1/mutations/"+wfID+"/cancel", nil)
	require.Equal(t, http.StatusConflict, again.Status, again.Raw)
}

// A bad not_before is refused at once.
func TestABadNotBeforeIs400(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	k := routes.Key{Tenant: testenv.Name(t, "team"), Service: "payments", Env: "prod", Version: "v1"}
	for _, nb := range []string{"tomorrow", fromNow(91 * 24 * time.Hour)} {
		res := p.do(t, "POST", "/api/v1/routes", map[string]any{
			"tenant": k.Tenant, "service": k.Service, "env": k.Env, "version": k.Version, "url": "https://a.example", "not_before": nb,
		})
		require.Equal(t, http.StatusBadRequest, res.Status, res.Raw)
		require.Contains(t, res.Body["error"].(map[string]any)["message"], "not_before")
	}
}

// A scheduled write decides its preconditions when it applies: an If-Match
// that a newer write made stale, and a route that does not exist, end the
// mutation with a rejected commit whose error says why; nothing changes.
func TestAScheduledWriteChecksIfMatchAndTheRouteWhenItApplies(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	k := routes.Key{Tenant: testenv.Name(t, "team"), Service: "payments", Env: "prod", Version: "v1"}
	awaitCompleted(t, p, create(t, p, k, "https://a.example", true), "")

	stale := p.do(t, "PUT", routePath(k), map[string]any{"url": "https://b.example", "not_before": fromNow(2 * time.Second)}, "If-Match", `"1"`)
	require.Equal(t, http.StatusAccepted, stale.Status, stale.Raw)
	missing := p.do(t, "POST", routePath(routes.Key{Tenant: k.Tenant, Service: "payments", Env: "prod", Version: "v9"})+"/activate",
		map[string]any{"not_before": fromNow(2 * time.Second)})
	require.Equal(t, http.StatusAccepted, missing.Status, "not-found is decided when it applies: %s", missing.Raw)
	newer := p.do(t, "PUT", routePath(k), map[string]any{"url": "https://c.example"})
	require.Equal(t, http.StatusOK, newer.Status, newer.Raw)

	staleID := stale.Body["workflow_id"].(string)
	for wfID, code := range map[string]string{
		staleID:                              "precondition_failed",
		missing.Body["workflow_id"].(string): "route_not_found",
	} {
		var st response
		eventually(t, 30*time.Second, func() bool {
			st = p.do(t, "GET", "/api/v1/mutations/"+wfID, nil)
			steps, _ := st.Body["steps"].(map[string]any)
			return steps["committed"] == "rejected" && st.Body["status"] != "running"
		}, wfID+" is rejected when it applies")
		require.Equal(t, "rejected", st.Body["status"], st.Raw)
		require.Equal(t, code, errorCode(st), st.Raw)
	}
	recordClosedHistory(t, p, staleID, "scheduled_precondition_failed_history.json")
	got := p.do(t, "GET", routePath(k), nil)
	require.Equal(t, "https://c.example", got.Body["url"], got.Raw)
	require.EqualValues(t, 2, got.Body["revision"])
	require.Len(t, p.eventsFor(t, k), 2)
	requireConsistentTenant(t, p, k.Tenant)
}
