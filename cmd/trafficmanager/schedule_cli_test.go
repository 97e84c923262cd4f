package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNotBeforeValue(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ name, in, want string }{
		{"an RFC 3339 time is sent as is", "2026-12-02T09:00:00+01:00", "2026-12-02T09:00:00+01:00"},
		{"a duration is from now", "2h", "2026-12-01T11:00:00Z"},
		{"anything else is a usage error", "tomorrow", ""},
		{"a negative duration is a usage error", "-2h", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := notBeforeValue(tc.in, now)
			if tc.want == "" {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// `routes update --not-before` sends not_before and prints the scheduled
// answer; `mutations cancel` posts to the mutation's cancel endpoint.
func TestScheduledWriteAndCancelCommands(t *testing.T) {
	bin := buildBinary(t)
	var mu sync.Mutex
	var paths []string
	var bodies []map[string]any
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		paths = append(paths, r.Method+" "+r.URL.EscapedPath())
		var b map[string]any
		_ = json.NewDecoder(r.Body).Decode(&b)
		bodies = append(bodies, b)
		w.Header().Set("Content-Type", "application/json")
		if r.Method == "PUT" {
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte(`{"workflow_id":"route/team-a/payments/prod/v1/updated/k1","run_id":"r1","status":"scheduled","not_before":"2026-12-02T09:00:00Z"}`))
			return
		}
		_, _ = w.Write([]byte(`{"workflow_id":"route/team-a/payments/prod/v1/updated/k1","run_id":"r1","status":"cancelled","action":"updated","not_before":"2026-12-02T09:00:00Z","steps":{}}`))
	}))
	defer ts.Close()

	res := runCLI(t, bin, nil, "routes", "update", "--api-url", ts.URL, "--tenant", "team-a", "--service", "payments", "--env", "prod", "--version", "v1",
		"--url", "https://b.example", "--not-before", "2026-12-02T09:00:00Z")
	require.Equal(t, 0, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	require.Contains(t, res.stdout, "scheduled")
	require.Contains(t, res.stdout, "2026-12-02T09:00:00Z")

	res = runCLI(t, bin, nil, "mutations", "cancel", "--api-url", ts.URL, "route/team-a/payments/prod/v1/updated/k1")
	require.Equal(t, 0, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	require.Contains(t, res.stdout, "cancelled")

	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{
		"PUT /api/v1/routes/team-a/payments/prod/v1",
		"POST /api/v1/mutations/route/team-a/payments/prod/v1/updated/k1/cancel",
	}, paths)
	require.Equal(t, "2026-12-02T09:00:00Z", bodies[0]["not_before"])
}
