package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/internal/openapitest"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/workflows"
)

// resolveSplit is GET /api/v1/resolve/{t}/{s}/{e} with X-Route-Key.
func resolveSplit(t *testing.T, base, path, key string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(openapitest.WithReporter(context.Background(), t), "GET", base+"/api/v1/resolve/"+path, nil)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("X-Route-Key", key)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	return res.StatusCode, res.Header.Get("X-Route-Version")
}

func TestASplitIsSetResolvedChangedWithinTheBoundAndAudited(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	resolverURL := startResolver(t, p)
	tenant := testenv.Name(t, "team")
	env := tenant + "/checkout/prod"
	for _, v := range []string{"v1", "v2", "v3"} {
		res := p.do(t, "POST", "/api/v1/routes", map[string]any{"tenant": tenant, "service": "checkout", "env": "prod",
			"version": v, "url": "https://" + v + ".checkout.example"})
		require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	}
	_, err := p.pool.Exec(t.Context(), `SELECT 1`)
	require.NoError(t, err)

	// No split and three active versions: nothing to pick.
	code, _ := resolveSplit(t, resolverURL, env, "k")
	require.Equal(t, http.StatusNotFound, code)
	got := p.do(t, "GET", "/api/v1/splits/"+env, nil)
	require.Equal(t, http.StatusNotFound, got.Status, got.Raw)
	require.Contains(t, got.Raw, "split_not_found")

	// Bad input: all 400, nothing written.
	for _, w := range []map[string]any{
		{"v1": 90, "v2": 5}, {"v1": 110, "v2": -10}, {"v1": 90, "v9": 10},
		{"a": 10, "b": 10, "c": 10, "d": 10, "e": 10, "f": 10, "g": 10, "h": 10, "i": 10, "j": 10, "k": 0},
	} {
		res := p.do(t, "PUT", "/api/v1/splits/"+env, map[string]any{"weights": w})
		require.Equal(t, http.StatusBadRequest, res.Status, "%v: %s", w, res.Raw)
		require.Contains(t, res.Raw, "invalid_argument")
	}

	res := p.do(t, "PUT", "/api/v1/splits/"+env, map[string]any{"weights": map[string]int{"v1": 90, "v2": 10}, "changed_by": "alice"},
		"Idempotency-Key", "split-first")
	require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	require.Equal(t, "split_updated", res.Body["action"])
	require.True(t, strings.HasPrefix(res.Body["workflow_id"].(string), "split/"+tenant+"/checkout/prod/split_updated/"))
	split := res.Body["split"].(map[string]any)
	require.EqualValues(t, 1, split["revision"])
	firstEvent, firstWF := res.Body["event_id"].(string), res.Body["workflow_id"].(string)

	// The same request again is the same mutation.
	again := p.do(t, "PUT", "/api/v1/splits/"+env, map[string]any{"weights": map[string]int{"v1": 90, "v2": 10}, "changed_by": "alice"},
		"Idempotency-Key", "split-first")
	require.Equal(t, firstEvent, again.Body["event_id"], again.Raw)

	got = p.do(t, "GET", "/api/v1/splits/"+env, nil)
	require.Equal(t, http.StatusOK, got.Status, got.Raw)
	require.Equal(t, `"1"`, got.Header.Get("ETag"))
	require.Equal(t, map[string]any{"v1": 90.0, "v2": 10.0}, got.Body["weights"])

	// Deactivating a version of the split is a conflict naming the split.
	off := p.do(t, "POST", "/api/v1/routes/"+tenant+"/checkout/prod/v2/deactivate", nil)
	require.Equal(t, http.StatusConflict, off.Status, off.Raw)
	require.Contains(t, off.Raw, env)
	// An inactive version cannot join a split.
	off = p.do(t, "POST", "/api/v1/routes/"+tenant+"/checkout/prod/v3/deactivate", nil)
	require.Equal(t, http.StatusOK, off.Status, off.Raw)
	bad := p.do(t, "PUT", "/api/v1/splits/"+env, map[string]any{"weights": map[string]int{"v1": 90, "v3": 10}})
	require.Equal(t, http.StatusBadRequest, bad.Status, bad.Raw)

	keys := make([]string, 2000)
	first := map[string]string{}
	n := 0
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%d-%d", i, i*7919)
		code, v := resolveSplit(t, resolverURL, env, keys[i])
		require.Equal(t, http.StatusOK, code)
		first[keys[i]] = v
		if v == "v2" {
			n++
		}
	}
	require.InDelta(t, 10, float64(n)/20, 3, "share of v2 under 90/10")

	// If-Match: a stale revision is 412; the current one applies.
	stale := p.do(t, "PUT", "/api/v1/splits/"+env, map[string]any{"weights": map[string]int{"v1": 50, "v2": 50}}, "If-Match", `"7"`)
	require.Equal(t, http.StatusPreconditionFailed, stale.Status, stale.Raw)
	res = p.do(t, "PUT", "/api/v1/splits/"+env, map[string]any{"weights": map[string]int{"v1": 50, "v2": 50}}, "If-Match", `"1"`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	require.EqualValues(t, 2, res.Body["split"].(map[string]any)["revision"])
	acked := time.Now()
	secondEvent := res.Body["event_id"].(string)

	// Within the propagation bound the resolver serves the new weights,
	// and every key that moved went to v2.
	var moved int
	eventually(t, time.Second, func() bool {
		moved = 0
		for _, k := range keys[:400] {
			_, v := resolveSplit(t, resolverURL, env, k)
			if v != first[k] {
				require.Equal(t, "v2", v, "key %s moved from %s", k, first[k])
				moved++
			}
		}
		return moved > 100
	}, "new weights served within 1s")
	t.Logf("new weights served %v after the ack; %d of 400 keys moved to v2", time.Since(acked), moved)

	for _, id := range []string{firstEvent, secondEvent} {
		eventually(t, 10*time.Second, func() bool { return p.auditDocs(t, id) == 1 }, "audit document of "+id)
	}

	del := p.do(t, "DELETE", "/api/v1/splits/"+env, nil)
	require.Equal(t, http.StatusOK, del.Status, del.Raw)
	require.EqualValues(t, 3, del.Body["split"].(map[string]any)["revision"])
	require.Equal(t, http.StatusNotFound, p.do(t, "GET", "/api/v1/splits/"+env, nil).Status)
	delEvent := del.Body["event_id"].(string)
	eventually(t, 10*time.Second, func() bool { return p.auditDocs(t, delEvent) == 1 }, "audit document of the delete")
	// v1 and v2 are active, v3 is not: no split, two versions → 404.
	eventually(t, time.Second, func() bool {
		code, _ := resolveSplit(t, resolverURL, env, "k")
		return code == http.StatusNotFound
	}, "the deleted split is not served")

	hist := p.do(t, "GET", "/api/v1/splits/"+env+"/history", nil)
	require.Equal(t, http.StatusOK, hist.Status, hist.Raw)
	revs := hist.Body["revisions"].([]any)
	require.Len(t, revs, 3)
	require.Equal(t, "split_deleted", revs[0].(map[string]any)["action"])
	require.EqualValues(t, 1, revs[2].(map[string]any)["revision"])

	wfID := del.Body["workflow_id"].(string)
	eventually(t, 10*time.Second, func() bool {
		st := p.do(t, "GET", "/api/v1/mutations/"+wfID, nil)
		return st.Status == 200 && st.Body["status"] == "completed"
	}, "split delete workflow completed")
	recordHistory(t, p, firstWF, "split_history.json")
	recordHistory(t, p, wfID, "split_delete_history.json")
	requireConsistentTenant(t, p, tenant)
}

// A split change in an env that needs approval waits like a route write,
// applies once after another principal approves, and names both in its
// audit document; a scheduled one applies at its time.
func TestASplitChangeWaitsForApprovalAndForItsTime(t *testing.T) {
	t.Parallel()
	ap := startApprovalPlatform(t)
	for _, v := range []string{"v1", "v2"} {
		ap.createRoute(t, routes.Key{Tenant: ap.tenant, Service: "checkout", Env: "prod", Version: v}, "https://"+v+".example")
		ap.createRoute(t, routes.Key{Tenant: ap.tenant, Service: "checkout", Env: "stage", Version: v}, "https://"+v+".example")
	}
	ap.requireApproval(t, "prod")
	prod := "/api/v1/splits/" + ap.tenant + "/checkout/prod"

	res := ap.do(t, "PUT", prod, map[string]any{"weights": map[string]int{"v1": 80, "v2": 20}}, ap.writer...)
	require.Equal(t, http.StatusAccepted, res.Status, res.Raw)
	require.Equal(t, "awaiting_approval", res.Body["status"], res.Raw)
	wfID := res.Body["workflow_id"].(string)
	st := ap.do(t, "GET", "/api/v1/mutations/"+wfID, nil, ap.approver...)
	require.Equal(t, http.StatusOK, st.Status, st.Raw)
	require.Equal(t, "awaiting_approval", st.Body["status"], st.Raw)
	require.Equal(t, http.StatusNotFound, ap.do(t, "GET", prod, nil, ap.admin...).Status, "nothing applies before the approval")
	eventually(t, 15*time.Second, func() bool {
		l := ap.do(t, "GET", "/api/v1/mutations?status=awaiting_approval&tenant="+ap.tenant, nil, ap.approver...)
		require.Equal(t, http.StatusOK, l.Status, l.Raw)
		return strings.Contains(l.Raw, `"workflow_id":"`+wfID+`","run_id"`) && strings.Contains(l.Raw, `"action":"split_updated"`)
	}, "GET /api/v1/mutations?status=awaiting_approval lists the split change")

	mine := ap.do(t, "POST", "/api/v1/mutations/"+wfID+"/approve", nil, ap.writer...)
	require.Equal(t, http.StatusForbidden, mine.Status, mine.Raw)
	ok := ap.do(t, "POST", "/api/v1/mutations/"+wfID+"/approve", nil, ap.approver...)
	require.Equal(t, http.StatusOK, ok.Status, ok.Raw)
	done := ap.awaitStatus(t, wfID, "completed")
	require.Equal(t, map[string]any{"committed": "done", "invalidated": "done", "published": "done", "audited": "done"}, done.Body["steps"], done.Raw)
	got := ap.do(t, "GET", prod, nil, ap.admin...)
	require.Equal(t, http.StatusOK, got.Status, got.Raw)
	require.Equal(t, map[string]any{"v1": 80.0, "v2": 20.0}, got.Body["weights"])
	var doc audit.Document
	eventID := workflows.EventIDFor(wfID)
	eventually(t, 10*time.Second, func() bool {
		return ap.mongo.Collection(audit.CollectionName).FindOne(t.Context(), bson.D{{Key: "event_id", Value: eventID}}).Decode(&doc) == nil
	}, "audit document of the approved split")
	require.Equal(t, "split_updated", doc.Action)
	require.Equal(t, "split_changed", doc.EventType)
	require.EqualValues(t, 1, doc.Metadata.Revision)
	require.Equal(t, "ci", doc.Metadata.RequestedBy)
	require.Equal(t, "alice", doc.Metadata.ApprovedBy)
	require.Equal(t, map[string]int{"v1": 80, "v2": 20}, doc.Metadata.Weights)

	stage := "/api/v1/splits/" + ap.tenant + "/checkout/stage"
	at := time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339)
	res = ap.do(t, "PUT", stage, map[string]any{"weights": map[string]int{"v1": 50, "v2": 50}, "not_before": at}, ap.writer...)
	require.Equal(t, http.StatusAccepted, res.Status, res.Raw)
	require.Equal(t, "scheduled", res.Body["status"], res.Raw)
	require.Equal(t, http.StatusNotFound, ap.do(t, "GET", stage, nil, ap.admin...).Status)
	ap.awaitStatus(t, res.Body["workflow_id"].(string), "completed")
	require.Equal(t, http.StatusOK, ap.do(t, "GET", stage, nil, ap.admin...).Status)
	recordHistory(t, ap.platform, wfID, "split_approval_history.json")
	recordHistory(t, ap.platform, res.Body["workflow_id"].(string), "split_scheduled_history.json")
	requireConsistentTenant(t, ap.platform, ap.tenant)
}
