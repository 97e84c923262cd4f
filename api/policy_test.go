package api_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/api"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/policies"
)

// offlineAPI is the api with authentication and pols, on a Temporal that
// is never reached (a lazy client on a closed port): everything these
// tests ask is decided before a workflow starts.
func offlineAPI(t *testing.T, pols api.Policies) http.Handler {
	t.Helper()
	tc, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1", Logger: nopTemporalLogger{}})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	o := api.Options{
		Temporal: tc, TaskQueue: "offline", Routes: noRoutes{}, AckTimeout: time.Second,
		Metrics: observability.NewWriteMetrics(reg), Registry: reg, Log: zaptest.NewLogger(t),
		Auth: principals("team-a"),
	}
	if pols != nil {
		o.Policies = pols
	}
	return api.New(o).Handler()
}

func TestTenantPolicies(t *testing.T) {
	h := offlineAPI(t, newMemPolicies())
	const path = "/api/v1/tenants/team-a/policy"

	got := call(t, h, "GET", path, "Bearer reader", nil)
	require.Equal(t, http.StatusOK, got.Code, got.Raw)
	require.Equal(t, map[string]any{"envs": []any{}}, got.Body["require_approval"], "a tenant without a policy needs no approval")
	require.Equal(t, "72h0m0s", got.Body["approval_timeout"])

	put := call(t, h, "PUT", path, "Bearer admin", map[string]any{"require_approval": map[string]any{"envs": []string{"prod", "eu-prod", "prod"}}, "approval_timeout": "24h"})
	require.Equal(t, http.StatusOK, put.Code, put.Raw)
	require.Equal(t, []any{"eu-prod", "prod"}, put.Body["require_approval"].(map[string]any)["envs"], "sorted, once each")
	require.Equal(t, "24h0m0s", put.Body["approval_timeout"])
	require.Equal(t, "root", put.Body["updated_by"])
	require.NotEmpty(t, put.Body["updated_at"])

	for _, token := range []string{"writer", "reader", "approver", "admin"} {
		got = call(t, h, "GET", path, "Bearer "+token, nil)
		require.Equal(t, http.StatusOK, got.Code, "%s reads its tenant's policy: %s", token, got.Raw)
		require.Equal(t, "24h0m0s", got.Body["approval_timeout"])
	}
	defaulted := call(t, h, "PUT", path, "Bearer admin", map[string]any{"require_approval": map[string]any{"envs": []string{"prod"}}})
	require.Equal(t, http.StatusOK, defaulted.Code, defaulted.Raw)
	require.Equal(t, "72h0m0s", defaulted.Body["approval_timeout"], "72h when omitted")

	for _, tc := range []struct {
		name, token, path string
		body              any
		status            int
		code              string
	}{
		{"a writer may not set a policy", "writer", path, map[string]any{}, http.StatusForbidden, "permission_denied"},
		{"an approver may not set a policy", "approver", path, map[string]any{}, http.StatusForbidden, "permission_denied"},
		{"another tenant's token may not read it", "other-approver", path, nil, http.StatusForbidden, "permission_denied"},
		{"no token is unauthenticated", "", path, nil, http.StatusUnauthorized, "unauthenticated"},
		{"a bad tenant name", "admin", "/api/v1/tenants/Team_A/policy", map[string]any{}, http.StatusBadRequest, "invalid_argument"},
		{"an env that is not a name", "admin", path, map[string]any{"require_approval": map[string]any{"envs": []string{"Prod!"}}}, http.StatusBadRequest, "invalid_argument"},
		{"an empty env", "admin", path, map[string]any{"require_approval": map[string]any{"envs": []string{""}}}, http.StatusBadRequest, "invalid_argument"},
		{"a timeout under a minute", "admin", path, map[string]any{"approval_timeout": "59s"}, http.StatusBadRequest, "invalid_argument"},
		{"a timeout over 30 days", "admin", path, map[string]any{"approval_timeout": "721h"}, http.StatusBadRequest, "invalid_argument"},
		{"a timeout that is not a duration", "admin", path, map[string]any{"approval_timeout": "3 days"}, http.StatusBadRequest, "invalid_argument"},
		{"a negative timeout", "admin", path, map[string]any{"approval_timeout": "-72h"}, http.StatusBadRequest, "invalid_argument"},
		{"an unknown field", "admin", path, map[string]any{"require_approval": map[string]any{"envs": []string{}}, "colour": "red"}, http.StatusBadRequest, "invalid_argument"},
		{"an unknown field inside require_approval", "admin", path, map[string]any{"require_approval": map[string]any{"env": "prod"}}, http.StatusBadRequest, "invalid_argument"},
		{"envs of the wrong type", "admin", path, map[string]any{"require_approval": map[string]any{"envs": "prod"}}, http.StatusBadRequest, "invalid_argument"},
		{"no body", "admin", path, nil, http.StatusBadRequest, "invalid_argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			authz := ""
			if tc.token != "" {
				authz = "Bearer " + tc.token
			}
			method := "PUT"
			if tc.body == nil && tc.name != "no body" {
				method = "GET"
			}
			a := call(t, h, method, tc.path, authz, tc.body)
			require.Equal(t, tc.status, a.Code, a.Raw)
			require.Equal(t, tc.code, a.errorCode())
		})
	}
}

func TestAWriteBeforeThePoliciesEverLoadedIs503(t *testing.T) {
	pols := newMemPolicies()
	pols.loaded = false
	h := offlineAPI(t, pols)
	a := call(t, h, "PUT", "/api/v1/routes/team-a/payments/prod/v2", "Bearer writer", map[string]any{"url": "https://v3.example"})
	require.Equal(t, http.StatusServiceUnavailable, a.Code, a.Raw)
	require.Equal(t, "unavailable", a.errorCode())
	require.Contains(t, a.errorMessage(), "policies")
}

func TestRevertAfterOnACreateIs400(t *testing.T) {
	h := offlineAPI(t, newMemPolicies())
	route := map[string]any{"tenant": "team-a", "service": "payments", "env": "prod", "version": "v2", "url": "https://p.example"}
	withRevert := map[string]any{"revert_after": "1h"}
	for k, v := range route {
		withRevert[k] = v
	}
	for _, tc := range []struct {
		name, path string
		body       any
		message    string
	}{
		{"a create has no previous state", "/api/v1/routes", withRevert, "revert_after needs a previous state: a create has none"},
		{"a batch creates", "/api/v1/routes/batch", map[string]any{"routes": []any{route}, "revert_after": "1h"}, "revert_after needs a previous state: a create has none"},
		{"an unparsable revert_after", "/api/v1/routes/team-a/payments/prod/v2/activate", map[string]any{"revert_after": "an hour"}, "revert_after"},
		{"a revert_after beyond 30 days", "/api/v1/routes/team-a/payments/prod/v2/rollback", map[string]any{"revision": 1, "revert_after": "721h"}, "revert_after"},
		{"a batch's not_before beyond 90 days", "/api/v1/routes/batch", map[string]any{"routes": []any{route}, "not_before": time.Now().Add(91 * 24 * time.Hour).Format(time.RFC3339)}, "not_before"},
		{"a batch's unparsable not_before", "/api/v1/routes/batch", map[string]any{"routes": []any{route}, "not_before": "tonight"}, "not_before"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, h, "POST", tc.path, "Bearer writer", tc.body)
			require.Equal(t, http.StatusBadRequest, a.Code, a.Raw)
			require.Equal(t, "invalid_argument", a.errorCode())
			require.Contains(t, a.errorMessage(), tc.message)
		})
	}
}

func TestListingMutationsValidatesItsQuery(t *testing.T) {
	h := offlineAPI(t, newMemPolicies())
	for _, tc := range []struct {
		name, token, query string
		status             int
	}{
		{"an unknown status", "reader", "status=pending", http.StatusBadRequest},
		{"a status in capitals", "reader", "status=Running", http.StatusBadRequest},
		{"a limit of 0", "reader", "limit=0", http.StatusBadRequest},
		{"a limit over 200", "reader", "limit=201", http.StatusBadRequest},
		{"a limit that is not a number", "reader", "limit=ten", http.StatusBadRequest},
		{"a cursor that is not base64url", "reader", "cursor=" + strings.Repeat("%21", 4), http.StatusBadRequest},
		{"a tenant that is not a name", "reader", "tenant=Team_A", http.StatusBadRequest},
		{"another tenant", "reader", "tenant=team-b", http.StatusForbidden},
		{"another tenant, for an approver", "approver", "tenant=team-b&status=awaiting_approval", http.StatusForbidden},
		{"no token", "", "status=running", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			authz := ""
			if tc.token != "" {
				authz = "Bearer " + tc.token
			}
			a := call(t, h, "GET", "/api/v1/mutations?"+tc.query, authz, nil)
			require.Equal(t, tc.status, a.Code, a.Raw)
		})
	}
}

func TestDecisionsNeedAnApproverOfTheTenant(t *testing.T) {
	h := offlineAPI(t, newMemPolicies())
	const mut = "/api/v1/mutations/route/team-a/payments/prod/v2/updated/k1"
	for _, tc := range []struct {
		name, token, path string
		body              any
		status            int
		code              string
	}{
		{"a writer may not approve", "writer", mut + "/approve", nil, http.StatusForbidden, "permission_denied"},
		{"a reader may not reject", "reader", mut + "/reject", nil, http.StatusForbidden, "permission_denied"},
		{"another tenant's approver gets not found", "other-approver", mut + "/approve", nil, http.StatusNotFound, "mutation_not_found"},
		{"another tenant's writer gets not found for a batch", "other-writer", "/api/v1/mutations/batch/team-a/created/k1/cancel", nil, http.StatusNotFound, "mutation_not_found"},
		{"an approver may not cancel", "approver", mut + "/cancel", nil, http.StatusForbidden, "permission_denied"},
		{"an oversized comment", "approver", mut + "/approve", map[string]any{"comment": strings.Repeat("é", 513)}, http.StatusBadRequest, "invalid_argument"},
		{"a comment with a NUL", "approver", mut + "/reject", map[string]any{"comment": "a\u0000b"}, http.StatusBadRequest, "invalid_argument"},
		{"an unknown field", "approver", mut + "/reject", map[string]any{"reason": "no"}, http.StatusBadRequest, "invalid_argument"},
		{"an unknown decision", "admin", mut + "/veto", nil, http.StatusNotFound, "mutation_not_found"},
		{"a workflow id that is not a mutation's", "admin", "/api/v1/mutations/other/x/approve", nil, http.StatusNotFound, "mutation_not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, h, "POST", tc.path, "Bearer "+tc.token, tc.body)
			require.Equal(t, tc.status, a.Code, a.Raw)
			require.Equal(t, tc.code, a.errorCode())
		})
	}
}

// downPolicies is a policy store whose Postgres is down; the snapshot it
// loaded before still answers the write path.
type downPolicies struct{ *memPolicies }

func (downPolicies) Get(context.Context, string) (policies.Policy, error) {
	return policies.Policy{}, errors.New("dial tcp 127.0.0.1:5432: connection refused")
}

func (downPolicies) Put(context.Context, policies.Policy) (policies.Policy, error) {
	return policies.Policy{}, errors.New("dial tcp 127.0.0.1:5432: connection refused")
}

func TestPoliciesWhilePostgresIsDownAre503NotInternal(t *testing.T) {
	h := offlineAPI(t, downPolicies{newMemPolicies()})
	const path = "/api/v1/tenants/team-a/policy"
	a := call(t, h, "GET", path, "Bearer admin", nil)
	require.Equal(t, http.StatusServiceUnavailable, a.Code, a.Raw)
	require.Equal(t, "unavailable", a.errorCode())
	a = call(t, h, "PUT", path, "Bearer admin", map[string]any{"require_approval": map[string]any{"envs": []string{"prod"}}})
	require.Equal(t, http.StatusServiceUnavailable, a.Code, a.Raw)
	a = call(t, h, "PUT", path, "Bearer admin", map[string]any{"approval_timeout": "1s"})
	require.Equal(t, http.StatusBadRequest, a.Code, "validation comes first: %s", a.Raw)
}
