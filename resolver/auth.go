package resolver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/trafficmanager/trafficmanager/auth"
	"github.com/trafficmanager/trafficmanager/httperr"
)

// Authenticator resolves a bearer secret to a principal (auth.Authenticator).
type Authenticator interface {
	Authenticate(ctx context.Context, secret string) (*auth.Principal, error)
}

// RequireToken protects the resolve endpoint and the watch stream when
// TM_RESOLVER_AUTH=on (a watch of another tenant is 403): a
// token of any role whose tenants include the route's tenant (admin: all).
// A token that may not resolve a tenant gets 404 like a missing route, so
// existence does not leak. Health and metrics stay open. Token lookups are
// cached by the authenticator, so the hot path adds no Postgres query.
func RequireToken(next http.Handler, a Authenticator) http.Handler {
	const prefix = "/api/v1/resolve/"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, ok := strings.CutPrefix(r.URL.Path, prefix)
		watch := false
		if !ok {
			path, watch = strings.CutPrefix(r.URL.Path, WatchPrefix) // the watch stream (watch_http.go)
		}
		if !ok && !watch {
			next.ServeHTTP(w, r)
			return
		}
		secret, ok := auth.BearerSecret(r.Header.Get("Authorization"))
		if !ok {
			writeAuthError(w, httperr.Unauthenticated("a bearer token is required"))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		p, err := a.Authenticate(ctx, secret)
		cancel()
		switch {
		case errors.Is(err, auth.ErrUnknownToken):
			writeAuthError(w, httperr.Unauthenticated("unknown or revoked token"))
			return
		case err != nil:
			writeAuthError(w, httperr.Unavailable("cannot check the token right now"))
			return
		}
		tenant, _, _ := strings.Cut(path, "/")
		switch {
		case !p.Resolves(tenant) && watch:
			writeAuthError(w, httperr.PermissionDenied("this token may not watch this tenant"))
			return
		case !p.Resolves(tenant):
			writeAuthError(w, httperr.RouteNotFound("route not found"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writeAuthError writes e in httperr's JSON shape. This middleware wraps the
// whole handler in plain net/http, outside Gin, so it cannot use httperr.Write.
func writeAuthError(w http.ResponseWriter, e *httperr.Error) {
	w.Header().Set("Content-Type", "application/json")
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="trafficmanager"`)
	}
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(e.Body())
}
