package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/routes"
)

// runRoot runs the CLI in this process against args and returns stdout.
func runRoot(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	require.NoError(t, root.Execute(), out.String())
	return out.String()
}

// Table output shows what the next step needs: a write's workflow id (for
// `mutations status`) and a list's next cursor (for --cursor).
func TestTableOutputShowsTheWorkflowOfAWriteAndTheNextCursor(t *testing.T) {
	const wf = "route/team-a/payments/prod/v3/created/k1"
	route := routes.Route{Tenant: "team-a", Service: "payments", Env: "prod", Version: "v3", URL: "https://p.example/v3",
		IsActive: true, Revision: 1, UpdatedAt: time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)}
	var cursors []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == "POST" && r.URL.Path == "/api/v1/routes":
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(map[string]any{"route": route, "action": "created", "changed": true, "event_id": "e1", "workflow_id": wf, "run_id": "r1"})
		case r.Method == "GET" && r.URL.Path == "/api/v1/routes":
			cursors = append(cursors, r.URL.Query().Get("cursor"))
			_ = json.NewEncoder(w).Encode(routes.Page{Routes: []routes.Route{route}, NextCursor: "c2"})
		case r.Method == "GET" && r.URL.Path == "/api/v1/audit/recent":
			_ = json.NewEncoder(w).Encode(map[string]any{"events": []any{map[string]any{"event_id": "e1", "action": "created"}}, "next_cursor": "a2"})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	api := []string{"--api-url", srv.URL}

	out := runRoot(t, append([]string{"routes", "create", "--tenant", "team-a", "--service", "payments", "--env", "prod", "--version", "v3", "--url", "https://p.example/v3"}, api...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, out)
	require.Contains(t, lines[0], "WORKFLOW")
	require.True(t, strings.HasSuffix(lines[1], wf), out)

	out = runRoot(t, append([]string{"routes", "list", "--tenant", "team-a", "--limit", "1"}, api...)...)
	require.Contains(t, out, "next cursor: c2", out)
	runRoot(t, append([]string{"routes", "list", "--tenant", "team-a", "--limit", "1", "--cursor", "c2"}, api...)...)
	require.Equal(t, []string{"", "c2"}, cursors, "--cursor continues there")

	out = runRoot(t, append([]string{"routes", "list", "--tenant", "team-a", "--limit", "1", "-o", "json"}, api...)...)
	var page routes.Page
	require.NoError(t, json.Unmarshal([]byte(out), &page), out)
	require.Equal(t, "c2", page.NextCursor, "JSON keeps next_cursor")

	out = runRoot(t, append([]string{"audit", "recent", "--limit", "1"}, api...)...)
	require.Contains(t, out, "next cursor: a2", out)
}
