package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/api"
	"github.com/trafficmanager/trafficmanager/auth"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/observability"
)

// tokenAPI is the api with authentication on a fresh database and an admin
// token; Temporal is a lazy client on a closed port (token management and
// authentication never reach it).
func tokenAPI(t *testing.T) (http.Handler, string) {
	t.Helper()
	pool := testenv.Postgres(t)
	tokens := auth.NewStore(pool)
	admin := auth.NewSecret()
	require.NoError(t, tokens.Ensure(context.Background(), "root", admin))
	tc, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1", Logger: nopTemporalLogger{}})
	require.NoError(t, err)
	log := zaptest.NewLogger(t)
	reg := prometheus.NewRegistry()
	h := api.New(api.Options{
		Temporal: tc, TaskQueue: "tokens", Routes: noRoutes{}, AckTimeout: time.Second,
		Metrics: observability.NewWriteMetrics(reg), Registry: reg, Log: log,
		Auth: auth.NewAuthenticator(tokens, log), Tokens: tokens,
	}).Handler()
	return h, admin
}

type apiAnswer struct {
	Code int
	Body map[string]any
	Raw  string
}

func (a apiAnswer) errorCode() string {
	e, _ := a.Body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (a apiAnswer) errorMessage() string {
	e, _ := a.Body["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

func call(t *testing.T, h http.Handler, method, path, authorization string, body any) apiAnswer {
	t.Helper()
	var r *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		r = bytes.NewReader(b)
	} else {
		r = bytes.NewReader(nil)
	}
	req := httptest.NewRequest(method, path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	out := apiAnswer{Code: rec.Code, Raw: rec.Body.String()}
	_ = json.Unmarshal(rec.Body.Bytes(), &out.Body)
	return out
}

func TestTokenNamesWithControlCharactersOrTooLongAreRejectedWith400(t *testing.T) {
	h, admin := tokenAPI(t)
	for _, tt := range []struct {
		name, tokenName string
	}{
		{"a NUL byte", "a\u0000b"},
		{"a newline", "ci\nadmin"},
		{"an escape character", "ci\u001b[31m"},
		{"a C1 control character", "ci\u009b"},
		{"129 characters", strings.Repeat("n", 129)},
		{"an empty name", ""},
	} {
		t.Run(tt.name+" is an invalid argument naming the field", func(t *testing.T) {
			a := call(t, h, "POST", "/api/v1/tokens", "Bearer "+admin, map[string]any{"name": tt.tokenName, "role": "writer", "tenants": []string{"team-a"}})
			require.Equal(t, http.StatusBadRequest, a.Code, a.Raw)
			require.Equal(t, "invalid_argument", a.errorCode())
			require.Contains(t, a.errorMessage(), "name")
		})
	}
	a := call(t, h, "POST", "/api/v1/tokens", "Bearer "+admin, map[string]any{"name": strings.Repeat("ü", 128), "role": "writer", "tenants": []string{"team-a"}})
	require.Equal(t, http.StatusCreated, a.Code, "128 characters are fine: %s", a.Raw)
}

func TestAnAdminTokenWithTenantsIsRejectedNotSilentlyGlobal(t *testing.T) {
	h, admin := tokenAPI(t)
	a := call(t, h, "POST", "/api/v1/tokens", "Bearer "+admin, map[string]any{"name": "ops", "role": "admin", "tenants": []string{"a"}})
	require.Equal(t, http.StatusBadRequest, a.Code, a.Raw)
	require.Equal(t, "invalid_argument", a.errorCode())
	require.Contains(t, a.errorMessage(), "admin tokens are not tenant-scoped; omit tenants")

	a = call(t, h, "POST", "/api/v1/tokens", "Bearer "+admin, map[string]any{"name": "ops", "role": "admin"})
	require.Equal(t, http.StatusCreated, a.Code, a.Raw)
}

func TestTheBearerSchemeIsMatchedCaseInsensitively(t *testing.T) {
	h, admin := tokenAPI(t)
	for _, tt := range []struct {
		authorization string
		status        int
	}{
		{"Bearer " + admin, http.StatusOK},
		{"bearer " + admin, http.StatusOK},
		{"BEARER " + admin, http.StatusOK},
		{"Bearer   " + admin, http.StatusOK},
		{"Basic " + admin, http.StatusUnauthorized},
		{"Bearer" + admin, http.StatusUnauthorized},
		{"bearer ", http.StatusUnauthorized},
	} {
		scheme, _, _ := strings.Cut(tt.authorization, " ")
		t.Run(scheme, func(t *testing.T) {
			a := call(t, h, "GET", "/api/v1/tokens", tt.authorization, nil)
			require.Equal(t, tt.status, a.Code, a.Raw)
		})
	}
}
