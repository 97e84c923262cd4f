package e2e

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/api"
	"github.com/trafficmanager/trafficmanager/internal/openapitest"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/resolver"
)

// openapiGet sends GET url with headers (name, value pairs) through the
// validating transport; a mismatch with the documents fails t.
func openapiGet(t *testing.T, ctx context.Context, u string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(openapitest.WithReporter(ctx, t), http.MethodGet, u, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	if strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		return res, nil
	}
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, body
}

// The endpoints the other tests do not reach (documents, health, the
// resolvers list, audit by time, the watch stream) answer as the OpenAPI
// documents say; the documents are served without a token.
func TestTheOpenAPIDocumentsAreServedAndTheEndpointsOtherTestsSkipMatchThem(t *testing.T) {
	t.Parallel()
	p := startPlatformWith(t, platformOptions{ackTimeout: 10 * time.Second, auth: true, propagationPrefix: testenv.Name(t, "tm") + ":"})
	rURL := startResolver(t, p)
	serves(rURL, resolver.OpenAPI)
	ctx := context.Background()

	for base, want := range map[string][]byte{p.api.URL: api.OpenAPI, rURL: resolver.OpenAPI} {
		res, body := openapiGet(t, ctx, base+"/api/v1/openapi.json")
		require.Equal(t, http.StatusOK, res.StatusCode, base)
		require.JSONEq(t, string(want), string(body), base)
	}

	admin := "Bearer " + p.admin
	tenant := testenv.Name(t, "team")
	created := p.do(t, "POST", "/api/v1/routes", map[string]any{"tenant": tenant, "service": "payments", "env": "prod", "version": "v1", "url": "https://v1.internal"}, "Authorization", admin)
	require.Equal(t, http.StatusCreated, created.Status, created.Raw)

	start, end := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for _, path := range []string{
		"/", "/healthz", "/readyz", "/health/resilience", "/api/v1/resolvers",
		"/api/v1/audit/time-range?start=" + url.QueryEscape(start) + "&end=" + url.QueryEscape(end),
		"/api/v1/audit/recent?days=1", "/api/v1/audit/action?action=created&limit=5",
	} {
		r := p.do(t, "GET", path, nil, "Authorization", admin)
		require.Less(t, r.Status, 500, "%s: %s", path, r.Raw)
	}
	res, _ := openapiGet(t, ctx, p.api.URL+"/", "Accept", "text/html")
	require.Equal(t, http.StatusOK, res.StatusCode) // after the 303 to the console

	for _, path := range []string{"/healthz", "/readyz", "/health/resilience", "/metrics",
		"/api/v1/resolve/" + tenant + "/payments/prod/v1", "/api/v1/resolve/" + tenant + "/payments/prod"} {
		res, _ := openapiGet(t, ctx, rURL+path)
		require.Equal(t, http.StatusOK, res.StatusCode, path)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	res, _ = openapiGet(t, wctx, rURL+"/api/v1/watch/"+tenant)
	require.Contains(t, []int{http.StatusOK, http.StatusServiceUnavailable}, res.StatusCode)
}

// A rollout promoted through the API (the CLI test promotes through a child
// process, which the validating transport does not see).
func TestARolloutPromotedThroughTheAPIMatchesTheDocument(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	e := newRolloutEnv(t, p)
	started := e.start(t, testenv.Name(t, "k"), []map[string]any{step(10, "1h"), step(100, "")}, nil)
	require.Equal(t, http.StatusCreated, started.Status, started.Raw)
	id := started.Body["id"].(string)
	e.await(t, id, 20*time.Second, func(b map[string]any) bool { return b["weight"] == float64(10) }, "first step applied")
	promoted := p.do(t, "POST", "/api/v1/rollouts/"+id+"/promote", nil)
	require.Equal(t, http.StatusOK, promoted.Status, promoted.Raw)
	e.await(t, id, 20*time.Second, statusIs("completed"), "promoted rollout completes")
}
