package resolver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/auth"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

func TestResolverAuthAdmitsTokensOfTheRoutesTenantOnly(t *testing.T) {
	ctx := context.Background()
	tokens := auth.NewStore(testenv.Postgres(t))
	store := newMemStore()
	store.put(routes.Key{Tenant: "team-a", Service: "payments", Env: "prod", Version: "v2"}, "https://a.example", true)
	r, err := New(Options{Store: store})
	require.NoError(t, err)
	defer r.Close()
	r.MarkReady()
	h := RequireToken(r.Handler(prometheus.NewRegistry()), auth.NewAuthenticator(tokens, zap.NewNop()))

	_, resolverTok, err := tokens.Create(ctx, "edge", auth.RoleResolver, []string{"team-a"})
	require.NoError(t, err)
	_, otherTok, err := tokens.Create(ctx, "other", auth.RoleReader, []string{"team-b"})
	require.NoError(t, err)

	for _, tt := range []struct {
		name, token string
		status      int
		scheme      string
	}{
		{"no token is unauthenticated", "", 401, ""},
		{"an unknown token is unauthenticated", "tm_nope", 401, ""},
		{"a resolver token of the tenant resolves", resolverTok, 200, ""},
		{"a token of another tenant learns nothing", otherTok, 404, ""},
		{"the scheme in lowercase works (RFC 7235)", resolverTok, 200, "bearer"},
		{"the scheme in uppercase works", resolverTok, 200, "BEARER"},
		{"another scheme is unauthenticated", resolverTok, 401, "Basic"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/api/v1/resolve/team-a/payments/prod/v2", nil)
			if tt.scheme == "" {
				tt.scheme = "Bearer"
			}
			if tt.token != "" {
				req.Header.Set("Authorization", tt.scheme+" "+tt.token)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tt.status, rec.Code, rec.Body.String())
		})
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	require.Equal(t, http.StatusOK, rec.Code, "health needs no token")
}
