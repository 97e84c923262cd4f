package e2e

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/auth"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
)

func TestEveryProtectedEndpointDecidesByTokenRoleAndTenant(t *testing.T) {
	t.Parallel()
	p := startPlatformWith(t, platformOptions{ackTimeout: 10 * time.Second, auth: true})
	ctx := context.Background()
	mine, other := testenv.Name(t, "mine"), testenv.Name(t, "other")
	bearer := func(s string) []string { return []string{"Authorization", "Bearer " + s} }
	token := func(name string, role auth.Role, tenants ...string) string {
		_, secret, err := p.tokens.Create(ctx, name, role, tenants)
		require.NoError(t, err)
		return secret
	}
	writer, reader, foreign := token("ci", auth.RoleWriter, mine), token("dash", auth.RoleReader, mine), token("them", auth.RoleWriter, other)
	revokedTok := token("old", auth.RoleWriter, mine)
	list, err := p.tokens.List(ctx)
	require.NoError(t, err)
	for _, tk := range list {
		if tk.Name == "old" {
			_, err := p.tokens.Revoke(ctx, tk.ID)
			require.NoError(t, err)
		}
	}

	// One route of each tenant exists.
	for _, tn := range []string{mine, other} {
		res := p.do(t, "POST", "/api/v1/routes", map[string]any{"tenant": tn, "service": "payments", "env": "prod", "version": "v1", "url": "https://a.example"}, bearer(p.admin)...)
		require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	}
	created := p.do(t, "POST", "/api/v1/routes", map[string]any{"tenant": mine, "service": "payments", "env": "prod", "version": "v2", "url": "https://a.example"}, bearer(writer)...)
	require.Equal(t, http.StatusCreated, created.Status, created.Raw)
	eventID := created.Body["event_id"].(string)
	eventually(t, 10*time.Second, func() bool { return p.auditDocs(t, eventID) == 1 }, "audit document")
	var doc struct {
		ChangedBy string `bson:"changed_by"`
	}
	require.NoError(t, p.mongo.Collection(audit.CollectionName).FindOne(ctx, bson.D{{Key: "event_id", Value: eventID}}).Decode(&doc))
	require.Equal(t, "ci", doc.ChangedBy, "changed_by defaults to the token's name")
	wfID := created.Body["workflow_id"].(string)

	type call struct {
		name, method, path string
		body               any
	}
	routePath := "/api/v1/routes/" + mine + "/payments/prod/v1"
	calls := []call{
		{"create", "POST", "/api/v1/routes", map[string]any{"tenant": mine, "service": "payments", "env": "prod", "version": "v1", "url": "https://a.example"}},
		{"batch", "POST", "/api/v1/routes/batch", map[string]any{"routes": []map[string]any{{"tenant": mine, "service": "payments", "env": "prod", "version": "v1", "url": "https://a.example"}}}},
		{"update", "PUT", routePath, map[string]any{"url": "https://a.example"}},
		{"activate", "POST", routePath + "/activate", nil},
		{"rollback", "POST", routePath + "/rollback", map[string]any{"revision": 1}},
		{"get", "GET", routePath, nil},
		{"history", "GET", routePath + "/history", nil},
		{"list", "GET", "/api/v1/routes?tenant=" + mine, nil},
		{"mutation", "GET", "/api/v1/mutations/" + wfID, nil},
		{"audit", "GET", "/api/v1/audit/route?tenant=" + mine + "&service=payments&env=prod&version=v1", nil},
		{"tokens", "GET", "/api/v1/tokens", nil},
	}
	want := map[string][7]int{
		//            none  bad  revoked reader writer-other writer admin
		"create":   {401, 401, 401, 403, 403, 200, 200},
		"batch":    {401, 401, 401, 403, 403, 200, 200},
		"update":   {401, 401, 401, 403, 403, 200, 200},
		"activate": {401, 401, 401, 403, 403, 200, 200},
		"rollback": {401, 401, 401, 403, 403, 200, 200},
		"get":      {401, 401, 401, 200, 404, 200, 200},
		"history":  {401, 401, 401, 200, 404, 200, 200},
		"list":     {401, 401, 401, 200, 403, 200, 200},
		"mutation": {401, 401, 401, 200, 404, 200, 200},
		"audit":    {401, 401, 401, 200, 403, 200, 200},
		"tokens":   {401, 401, 401, 403, 403, 403, 200},
	}
	principals := []struct {
		name    string
		headers []string
	}{
		{"no token", nil}, {"bad token", bearer("tm_nope")}, {"revoked token", bearer(revokedTok)},
		{"reader", bearer(reader)}, {"writer of another tenant", bearer(foreign)}, {"writer", bearer(writer)}, {"admin", bearer(p.admin)},
	}
	for _, c := range calls {
		for i, pr := range principals {
			t.Run(c.name+" as "+pr.name, func(t *testing.T) {
				res := p.do(t, c.method, c.path, c.body, pr.headers...)
				require.Equal(t, want[c.name][i], res.Status, res.Raw)
				if res.Status >= 400 {
					require.Contains(t, []string{"unauthenticated", "permission_denied", "route_not_found", "mutation_not_found"}, res.Body["error"].(map[string]any)["code"])
				}
			})
		}
	}

	// Lists only ever hold the token's tenants.
	res := p.do(t, "GET", "/api/v1/routes", nil, bearer(reader)...)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	for _, r := range res.Body["routes"].([]any) {
		require.Equal(t, mine, r.(map[string]any)["tenant"])
	}
	res = p.do(t, "GET", "/api/v1/audit/recent?days=1", nil, bearer(reader)...)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	for _, e := range res.Body["events"].([]any) {
		require.Equal(t, mine, e.(map[string]any)["route"].(map[string]any)["tenant"])
	}
}

func TestTokensAreShownOnceAndRevocationTakesEffect(t *testing.T) {
	t.Parallel()
	p := startPlatformWith(t, platformOptions{ackTimeout: 10 * time.Second, auth: true})
	admin := []string{"Authorization", "Bearer " + p.admin}
	res := p.do(t, "POST", "/api/v1/tokens", map[string]any{"name": "ci", "role": "writer", "tenants": []string{"team-a"}}, admin...)
	require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	secret, id := res.Body["token"].(string), res.Body["id"].(string)
	require.NotEmpty(t, secret)

	listed := p.do(t, "GET", "/api/v1/tokens", nil, admin...)
	require.NotContains(t, listed.Raw, secret, "a listing never shows a secret")
	var stored []byte
	require.NoError(t, p.pool.QueryRow(context.Background(), `SELECT token_hash FROM api_tokens WHERE id = $1`, id).Scan(&stored))
	require.NotContains(t, string(stored), secret)

	mine := []string{"Authorization", "Bearer " + secret}
	require.Equal(t, http.StatusOK, p.do(t, "GET", "/api/v1/routes?tenant=team-a", nil, mine...).Status)
	require.Equal(t, http.StatusOK, p.do(t, "DELETE", "/api/v1/tokens/"+id, nil, admin...).Status)
	require.Equal(t, http.StatusUnauthorized, p.do(t, "GET", "/api/v1/routes?tenant=team-a", nil, mine...).Status)

	bad := p.do(t, "POST", "/api/v1/tokens", map[string]any{"name": "x", "role": "root", "tenants": []string{"team-a"}}, admin...)
	require.Equal(t, http.StatusBadRequest, bad.Status, bad.Raw)
}

func TestANoisyTenantIsRateLimitedWhileAnotherKeepsWriting(t *testing.T) {
	t.Parallel()
	p := startPlatformWith(t, platformOptions{ackTimeout: 10 * time.Second, writeRPS: 1, burst: 3})
	noisy, quiet := testenv.Name(t, "noisy"), testenv.Name(t, "quiet")
	body := func(tn, v string) map[string]any {
		return map[string]any{"tenant": tn, "service": "s", "env": "prod", "version": v, "url": "https://a.example"}
	}
	var mu sync.Mutex
	statuses := map[int]int{}
	var retryAfter string
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := p.do(t, "POST", "/api/v1/routes", body(noisy, "v"+string(rune('a'+i))))
			mu.Lock()
			defer mu.Unlock()
			statuses[res.Status]++
			if res.Status == http.StatusTooManyRequests {
				retryAfter = res.Header.Get("Retry-After")
				require.Equal(t, "rate_limited", res.Body["error"].(map[string]any)["code"])
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 3, statuses[http.StatusCreated], statuses)
	require.Equal(t, 5, statuses[http.StatusTooManyRequests], statuses)
	require.NotEmpty(t, retryAfter)

	res := p.do(t, "POST", "/api/v1/routes", body(quiet, "v1"))
	require.Equal(t, http.StatusCreated, res.Status, "another tenant's writes are not limited: %s", res.Raw)
}
