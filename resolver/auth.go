package resolver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/trafficmanager/trafficmanager/auth"
)

// Authenticator resolves a bearer secret to a principal (auth.Authenticator).
type Authenticator interface {
	Authenticate(ctx context.Context, secret string) (*auth.Principal, error)
}

// RequireToken protects the resolve endpoint when TM_RESOLVER_AUTH=on: a
// token of any role whose tenants include the route's tenant (admin: all).
// A token that may not resolve a tenant gets 404 like a missing route, so
// existence does not leak. Health and metrics stay open. Token lookups are
// cached by the authenticator, so the hot path adds no Postgres query.
func RequireToken(next http.Handler, a Authenticator) http.Handler {
	const prefix = "/api/v1/resolve/"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, prefix) {
			next.ServeHTTP(w, r)
			return
		}
		secret, ok := auth.BearerSecret(r.Header.Get("Authorization"))
		if !ok {
			writeAuthError(w, http.StatusUnauthorized, "unauthenticated", "a bearer token is required")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		p, err := a.Authenticate(ctx, secret)
		cancel()
		switch {
		case errors.Is(err, auth.ErrUnknownToken):
			writeAuthError(w, http.StatusUnauthorized, "unauthenticated", "unknown or revoked token")
			return
		case err != nil:
			writeAuthError(w, http.StatusServiceUnavailable, "unavailable", "cannot check the token right now")
			return
		}
		tenant, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, prefix), "/")
		if !p.Resolves(tenant) {
			writeAuthError(w, http.StatusNotFound, "route_not_found", "route not found")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeAuthError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="trafficmanager"`)
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
