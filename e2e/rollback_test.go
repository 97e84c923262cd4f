package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

// historyOf pages through a route's history, limit revisions at a time.
func historyOf(t *testing.T, p *platform, k routes.Key, limit string) (revs []map[string]any, pages int) {
	t.Helper()
	cursor := ""
	for {
		q := "?limit=" + limit
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		res := p.do(t, "GET", routePath(k)+"/history"+q, nil)
		require.Equal(t, http.StatusOK, res.Status, res.Raw)
		for _, r := range res.Body["revisions"].([]any) {
			revs = append(revs, r.(map[string]any))
		}
		pages++
		next, _ := res.Body["next_cursor"].(string)
		if next == "" {
			return revs, pages
		}
		cursor = next
	}
}

// A route changed five times (update, deactivate, activate, rollback,
// update) has six revisions, listed newest first over pages; a rollback
// restores url and active state as a new revision with one event and one
// audit document naming the restored revision, and a reset of it changes
// nothing.
func TestRollbackRestoresARevisionAndHistoryListsEveryOne(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	k := routes.Key{Tenant: testenv.Name(t, "team"), Service: "payments", Env: "prod", Version: "v1"}
	path := routePath(k)
	create(t, p, k, "https://a.example", true)
	for _, step := range []struct {
		method, path string
		body         any
	}{
		{"PUT", path, map[string]any{"url": "https://b.example"}},
		{"POST", path + "/deactivate", nil},
		{"POST", path + "/activate", nil},
		{"POST", path + "/rollback", map[string]any{"revision": 1}},
		{"PUT", path, map[string]any{"url": "https://c.example"}},
	} {
		res := p.do(t, step.method, step.path, step.body)
		require.Equal(t, http.StatusOK, res.Status, res.Raw)
		require.Equal(t, true, res.Body["changed"], res.Raw)
	}
	revs, pages := historyOf(t, p, k, "4")
	require.Equal(t, 2, pages)
	require.Len(t, revs, 6)
	wantActions := []string{"updated", "rolled_back", "activated", "deactivated", "updated", "created"}
	wantURLs := []string{"https://c.example", "https://a.example", "https://b.example", "https://b.example", "https://b.example", "https://a.example"}
	for i, r := range revs {
		require.EqualValues(t, 6-i, r["revision"])
		require.Equal(t, wantActions[i], r["action"])
		require.Equal(t, wantURLs[i], r["url"])
		require.NotEmpty(t, r["event_id"])
		require.NotEmpty(t, r["workflow_id"])
	}
	require.EqualValues(t, 1, revs[1]["rollback_to"])
	require.NotContains(t, revs[0], "rollback_to")

	// Roll back to revision 3 (b, inactive).
	rb := p.do(t, "POST", path+"/rollback", map[string]any{"revision": 3, "changed_by": "oncall"}, "Idempotency-Key", "rb-3", "If-Match", `"6"`)
	require.Equal(t, http.StatusOK, rb.Status, rb.Raw)
	require.Equal(t, "rolled_back", rb.Body["action"])
	wfID := rb.Body["workflow_id"].(string)
	require.Equal(t, "route/"+k.Tenant+"/payments/prod/v1/rolled_back/rb-3", wfID)
	got := p.do(t, "GET", path, nil)
	require.Equal(t, "https://b.example", got.Body["url"])
	require.Equal(t, false, got.Body["is_active"])
	require.EqualValues(t, 7, got.Body["revision"])

	eventID := rb.Body["event_id"].(string)
	eventually(t, 10*time.Second, func() bool { return p.auditDocs(t, eventID) == 1 }, "audit document of the rollback")
	var doc audit.Document
	require.NoError(t, p.mongo.Collection(audit.CollectionName).FindOne(context.Background(), bson.D{{Key: "event_id", Value: eventID}}).Decode(&doc))
	require.Equal(t, "rolled_back", doc.Action)
	require.EqualValues(t, 3, doc.Metadata.RollbackTo)
	require.Equal(t, "oncall", doc.ChangedBy)
	eventually(t, 10*time.Second, func() bool {
		n := 0
		for _, e := range p.eventsFor(t, k) {
			if e.EventID == eventID {
				require.EqualValues(t, 3, e.RollbackTo)
				n++
			}
		}
		return n == 1
	}, "one event of the rollback")

	// Rolling back to the state the route has changes nothing.
	same := p.do(t, "POST", path+"/rollback", map[string]any{"revision": 3})
	require.Equal(t, http.StatusOK, same.Status, same.Raw)
	require.Equal(t, false, same.Body["changed"])

	// A reset of the rollback's workflow changes nothing.
	before := awaitCompleted(t, p, wfID, "")
	newRun := resetToFirstWorkflowTask(t, p, wfID)
	after := awaitCompleted(t, p, wfID, newRun)
	require.Equal(t, before.Body["event_id"], after.Body["event_id"])
	got = p.do(t, "GET", path, nil)
	require.EqualValues(t, 7, got.Body["revision"])
	require.Equal(t, upTo(7), auditRevisions(t, p, k))
	requireConsistentTenant(t, p, k.Tenant)

	// Unknown revision, bad bodies, unknown route.
	for _, body := range []any{map[string]any{"revision": 99}, map[string]any{"revision": 0}, map[string]any{}, map[string]any{"revision": "1"}} {
		res := p.do(t, "POST", path+"/rollback", body)
		require.Equal(t, http.StatusBadRequest, res.Status, res.Raw)
		require.Equal(t, "invalid_argument", errorCode(res))
	}
	missing := k
	missing.Version = "v9"
	res := p.do(t, "POST", routePath(missing)+"/rollback", map[string]any{"revision": 1})
	require.Equal(t, http.StatusNotFound, res.Status, res.Raw)
	require.Equal(t, "route_not_found", errorCode(res))
	res = p.do(t, "GET", routePath(missing)+"/history", nil)
	require.Equal(t, http.StatusNotFound, res.Status, res.Raw)
	require.Equal(t, "route_not_found", errorCode(res))

	// The audit action query knows the new action.
	res = p.do(t, "GET", "/api/v1/audit/action?action=rolled_back", nil)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
}
