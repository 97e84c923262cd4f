package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/routes"
)

// The README's `routes import examples/routes.ndjson` works: the shipped
// file parses, every route is valid, and the import sends one batch per
// tenant and reports what was created.
func TestTheShippedImportExampleImports(t *testing.T) {
	var mu sync.Mutex
	tenants := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/api/v1/routes/batch", r.URL.Path)
		var body struct {
			Routes []importRoute `json:"routes"`
		}
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		for _, rt := range body.Routes {
			k := routes.Key{Tenant: rt.Tenant, Service: rt.Service, Env: rt.Env, Version: rt.Version}
			require.NoError(t, k.Validate(), "%+v", rt)
			require.True(t, strings.HasPrefix(rt.URL, "https://"), rt.URL)
			require.Equal(t, body.Routes[0].Tenant, rt.Tenant, "one tenant per batch")
		}
		mu.Lock()
		tenants[body.Routes[0].Tenant] += len(body.Routes)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"workflow_id": "batch/" + body.Routes[0].Tenant, "tenant": body.Routes[0].Tenant, "created": len(body.Routes)})
	}))
	defer srv.Close()

	out := runRoot(t, "routes", "import", "../../examples/routes.ndjson", "--api-url", srv.URL)
	require.Equal(t, map[string]int{"team-a": 5, "team-b": 3}, tenants)
	require.Regexp(t, `\(all\)\s+8\s+8\s+0`, out)
}
