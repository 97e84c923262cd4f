package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/config"
)

// --seed-demo after the README's "Try it" (team-a/payments/prod/v2 at
// another URL) or after an earlier --seed-demo loads what is missing and
// leaves what is there: no 409 stops it before team-b.
func TestSeedDemoSkipsRoutesThatExistAndLoadsTheRest(t *testing.T) {
	var mu sync.Mutex
	exists := map[string]bool{"team-a/payments/prod/v2": true} // created by "Try it" at another URL
	var posted []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.Method {
		case "GET":
			if exists[strings.TrimPrefix(r.URL.Path, "/api/v1/routes/")] {
				w.WriteHeader(http.StatusOK)
				return
			}
			w.WriteHeader(http.StatusNotFound)
		case "POST":
			var b map[string]any
			require.NoError(t, json.NewDecoder(r.Body).Decode(&b))
			name := b["tenant"].(string) + "/" + b["service"].(string) + "/" + b["env"].(string) + "/" + b["version"].(string)
			require.NotEmpty(t, r.Header.Get("Idempotency-Key"))
			if exists[name] {
				w.WriteHeader(http.StatusConflict)
				return
			}
			exists[name] = true
			posted = append(posted, name)
			w.WriteHeader(http.StatusCreated)
		}
	}))
	defer srv.Close()
	cfg := config.Config{APIAddr: strings.TrimPrefix(srv.URL, "http://")}

	var out bytes.Buffer
	require.NoError(t, seedDemoRoutes(context.Background(), cfg, &out))
	require.Len(t, posted, len(demoRoutes)-1)
	require.Contains(t, posted, "team-b/search/prod/2024.1")
	require.Contains(t, out.String(), "5 demo routes for team-a and team-b created, 1 already there")

	out.Reset()
	require.NoError(t, seedDemoRoutes(context.Background(), cfg, &out), "a second run")
	require.Len(t, posted, len(demoRoutes)-1, "creates nothing")
	require.Contains(t, out.String(), "0 demo routes for team-a and team-b created, 6 already there")
}
