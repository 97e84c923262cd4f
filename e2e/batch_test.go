package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

func batchBody(tenant string, n int, url func(i int) string) map[string]any {
	rs := make([]map[string]any, n)
	for i := range rs {
		rs[i] = map[string]any{
			"tenant": tenant, "service": fmt.Sprintf("svc-%d", i%10), "env": []string{"prod", "staging"}[i%2],
			"version": fmt.Sprintf("v%d", i), "url": url(i),
		}
	}
	return map[string]any{"routes": rs, "changed_by": "importer"}
}

func batchKey(tenant string, i int) routes.Key {
	return routes.Key{Tenant: tenant, Service: fmt.Sprintf("svc-%d", i%10), Env: []string{"prod", "staging"}[i%2], Version: fmt.Sprintf("v%d", i)}
}

func TestBatchCreatesAThousandRoutesEachWithItsEventInvalidationAndAuditDocument(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 20*time.Second)
	ctx := context.Background()
	tenant := testenv.Name(t, "bulk")
	url := func(i int) string { return fmt.Sprintf("https://svc-%d.example/v%d", i%10, i) }
	// Negative answers cached before the routes exist must be dropped.
	for _, i := range []int{0, 499, 999} {
		require.NoError(t, p.rdb.Set(ctx, cache.Key(batchKey(tenant, i)), `{"found":false,"revision":0}`, time.Minute).Err())
	}

	res := p.do(t, "POST", "/api/v1/routes/batch", batchBody(tenant, routes.MaxBatch, url), "Idempotency-Key", "import-1")
	require.Equal(t, http.StatusCreated, res.Status, truncated(res.Raw))
	require.EqualValues(t, 1000, res.Body["created"])
	require.EqualValues(t, 0, res.Body["unchanged"])
	require.Equal(t, tenant, res.Body["tenant"])
	wfID := res.Body["workflow_id"].(string)
	require.Equal(t, "batch/"+tenant+"/created/import-1", wfID)
	items := res.Body["routes"].([]any)
	require.Len(t, items, 1000)
	ids := map[string]bool{}
	for i, it := range items {
		m := it.(map[string]any)
		require.Equal(t, batchKey(tenant, i).Version, m["version"], "answers in request order")
		require.Equal(t, true, m["changed"])
		require.EqualValues(t, 1, m["revision"])
		ids[m["event_id"].(string)] = true
	}
	require.Len(t, ids, 1000, "one event id per route")

	// Committed before the answer: every route resolves from Postgres at once.
	got := p.do(t, "GET", "/api/v1/routes/"+tenant+"/svc-7/staging/v777", nil)
	require.Equal(t, http.StatusOK, got.Status, got.Raw)
	require.Equal(t, url(777), got.Body["url"])

	eventually(t, 20*time.Second, func() bool {
		st := p.do(t, "GET", "/api/v1/mutations/"+wfID, nil)
		return st.Status == 200 && st.Body["status"] == "completed"
	}, "batch workflow completed")
	st := p.do(t, "GET", "/api/v1/mutations/"+wfID, nil)
	require.Equal(t, map[string]any{"committed": "done", "invalidated": "done", "published": "done", "audited": "done"}, st.Body["steps"])
	require.EqualValues(t, 1000, st.Body["created"])
	require.EqualValues(t, 1000, st.Body["routes"])

	// Exactly one event and one audit document per route, with the answered ids.
	seen := map[string]int{}
	for _, e := range p.allEvents(t) {
		if e.Tenant == tenant {
			seen[e.EventID]++
			require.Equal(t, "importer", e.ChangedBy)
			require.Equal(t, wfID, e.WorkflowID)
		}
	}
	require.Len(t, seen, 1000)
	for id, n := range seen {
		require.True(t, ids[id], "event %s was answered", id)
		require.Equal(t, 1, n, "event %s published once", id)
	}
	docs, err := p.mongo.Collection(audit.CollectionName).CountDocuments(ctx, bson.D{{Key: "route.tenant", Value: tenant}})
	require.NoError(t, err)
	require.EqualValues(t, 1000, docs)
	for _, i := range []int{0, 499, 999} {
		require.Zero(t, p.rdb.Exists(ctx, cache.Key(batchKey(tenant, i))).Val(), "negative entry of routes[%d] dropped", i)
	}

	// The same Idempotency-Key again: the same answer, nothing new.
	again := p.do(t, "POST", "/api/v1/routes/batch", batchBody(tenant, routes.MaxBatch, url), "Idempotency-Key", "import-1")
	require.Equal(t, http.StatusCreated, again.Status, truncated(again.Raw))
	require.Equal(t, res.Body["batch_id"], again.Body["batch_id"])
	require.EqualValues(t, 1000, again.Body["created"])

	// Another key, same routes and URLs: nothing to create.
	same := p.do(t, "POST", "/api/v1/routes/batch", batchBody(tenant, routes.MaxBatch, url))
	require.Equal(t, http.StatusOK, same.Status, truncated(same.Raw))
	require.EqualValues(t, 0, same.Body["created"])
	require.EqualValues(t, 1000, same.Body["unchanged"])
	time.Sleep(300 * time.Millisecond)
	docs, err = p.mongo.Collection(audit.CollectionName).CountDocuments(ctx, bson.D{{Key: "route.tenant", Value: tenant}})
	require.NoError(t, err)
	require.EqualValues(t, 1000, docs, "no audit for unchanged routes")
}

func TestBatchIsAllOrNothingAndRejectsBadInputWithClear4xx(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	tenant := testenv.Name(t, "bulk")
	url := func(i int) string { return fmt.Sprintf("https://a.example/%d", i) }

	res := p.do(t, "POST", "/api/v1/routes/batch", batchBody(tenant, 5, url))
	require.Equal(t, http.StatusCreated, res.Status, res.Raw)

	// routes[3] exists with another URL: 409 naming it, none of the ten created.
	conflicting := batchBody(tenant, 10, func(i int) string {
		if i == 3 {
			return "https://elsewhere.example/"
		}
		return url(i)
	})
	res = p.do(t, "POST", "/api/v1/routes/batch", conflicting)
	require.Equal(t, http.StatusConflict, res.Status, res.Raw)
	require.Equal(t, "conflict", res.Body["error"].(map[string]any)["code"])
	require.Contains(t, res.Body["error"].(map[string]any)["message"], "routes[3]")
	list := p.do(t, "GET", "/api/v1/routes?tenant="+tenant, nil)
	require.Equal(t, http.StatusOK, list.Status, list.Raw)
	require.Len(t, list.Body["routes"], 5)

	mixed := batchBody(tenant, 3, url)
	mixed["routes"].([]map[string]any)[2]["tenant"] = "someone-else"
	dup := batchBody(tenant, 3, url)
	dup["routes"].([]map[string]any)[2]["version"] = "v0"
	dup["routes"].([]map[string]any)[2]["service"] = "svc-0"
	dup["routes"].([]map[string]any)[2]["env"] = "prod"
	badURL := batchBody(tenant, 3, url)
	badURL["routes"].([]map[string]any)[1]["url"] = "ftp://x"
	big := strings.Repeat("a", 1<<20)
	for name, c := range map[string]struct {
		body   any
		status int
		msg    string
	}{
		"empty":            {map[string]any{"routes": []any{}}, 400, "routes"},
		"no routes field":  {map[string]any{}, 400, "routes"},
		"too many":         {batchBody(tenant, routes.MaxBatch+1, url), 400, "at most 1000"},
		"two tenants":      {mixed, 400, "routes[2].tenant"},
		"same route twice": {dup, 400, "routes[2]"},
		"bad url":          {badURL, 400, "routes[1].url"},
		"unknown field":    {map[string]any{"routes": []any{}, "extra": 1}, 400, "unknown field"},
		"not json":         {"{", 400, "malformed"},
		"over 1 MiB":       {`{"routes":[],"changed_by":"` + big + `"}`, 413, "1 MiB"},
	} {
		t.Run(name, func(t *testing.T) {
			res := p.do(t, "POST", "/api/v1/routes/batch", c.body)
			require.Equal(t, c.status, res.Status, truncated(res.Raw))
			e := res.Body["error"].(map[string]any)
			require.Equal(t, "invalid_argument", e["code"])
			require.Contains(t, e["message"], c.msg)
		})
	}

	// "batch" is also a valid tenant name: its routes stay reachable.
	res = p.do(t, "POST", "/api/v1/routes/batch/payments/prod/v1/activate", nil)
	require.Equal(t, http.StatusNotFound, res.Status, res.Raw)
	require.Equal(t, "route_not_found", res.Body["error"].(map[string]any)["code"])
	res = p.do(t, "GET", "/api/v1/mutations/batch/"+tenant+"/created/nope", nil)
	require.Equal(t, http.StatusNotFound, res.Status, res.Raw)
}

func truncated(s string) string {
	if len(s) > 600 {
		return s[:600] + "…"
	}
	return s
}

// A batch just under the 1 MiB body limit (1000 routes with ~950-byte URLs)
// fits Temporal's payload limits: input, commit results and answer.
func TestBatchAtTheBodyLimitCommits(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 20*time.Second)
	tenant := testenv.Name(t, "bulk")
	pad := strings.Repeat("p", 900)
	body := batchBody(tenant, routes.MaxBatch, func(i int) string { return fmt.Sprintf("https://svc-%d.example/%s/%d", i%10, pad, i) })
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	require.Greater(t, len(raw), 950_000)
	require.Less(t, len(raw), 1<<20)

	res := p.do(t, "POST", "/api/v1/routes/batch", string(raw))
	require.Equal(t, http.StatusCreated, res.Status, truncated(res.Raw))
	require.EqualValues(t, 1000, res.Body["created"])
	wfID := res.Body["workflow_id"].(string)
	eventually(t, 30*time.Second, func() bool {
		st := p.do(t, "GET", "/api/v1/mutations/"+wfID, nil)
		return st.Status == 200 && st.Body["status"] == "completed"
	}, "batch workflow completed")
}
