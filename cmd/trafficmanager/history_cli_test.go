package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/api"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/routes"
)

// `routes history` prints a route's revisions newest first from the api
// (which reads them from Postgres); `routes rollback` needs --to.
func TestRoutesHistoryListsRevisionsAndRollbackNeedsARevision(t *testing.T) {
	bin := buildBinary(t)
	pool := testenv.Postgres(t)
	tc, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1", Logger: quietTemporalLogger{}})
	require.NoError(t, err)
	defer tc.Close()
	reg := observability.NewRegistry()
	store := routes.NewStore(pool)
	ts := httptest.NewServer(api.New(api.Options{
		Temporal: tc, TaskQueue: testenv.Name(t, "tq"), Routes: store,
		Metrics: observability.NewWriteMetrics(reg), Registry: reg, Log: zaptest.NewLogger(t),
	}).Handler())
	defer ts.Close()

	k := routes.Key{Tenant: testenv.Name(t, "team"), Service: "payments", Env: "prod", Version: "v1"}
	for _, m := range []routes.Mutation{
		{Action: routes.ActionCreated, URL: "https://a.example", Active: true, ChangedBy: "alice"},
		{Action: routes.ActionUpdated, URL: "https://b.example", ChangedBy: "bob"},
		{Action: routes.ActionRolledBack, RollbackTo: 1, ChangedBy: "oncall"},
	} {
		m.Key = k
		_, err := store.Apply(context.Background(), m)
		require.NoError(t, err)
	}
	key := []string{"--api-url", ts.URL, "--tenant", k.Tenant, "--service", "payments", "--env", "prod", "--version", "v1"}

	res := runCLI(t, bin, nil, append([]string{"routes", "history"}, key...)...)
	require.Equal(t, 0, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	require.Len(t, lines, 4, res.stdout)
	for _, col := range []string{"REVISION", "ACTION", "URL", "ACTIVE", "WHO", "WHEN"} {
		require.Contains(t, lines[0], col)
	}
	require.Regexp(t, `^3\s+rolled_back \(to 1\)\s+https://a\.example\s+true\s+oncall`, lines[1])
	require.Regexp(t, `^2\s+updated\s+https://b\.example\s+true\s+bob`, lines[2])
	require.Regexp(t, `^1\s+created\s+https://a\.example\s+true\s+alice`, lines[3])

	res = runCLI(t, bin, nil, append([]string{"routes", "history", "--limit", "1"}, key...)...)
	require.Equal(t, 0, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	require.Len(t, strings.Split(strings.TrimSpace(res.stdout), "\n"), 2, res.stdout)

	res = runCLI(t, bin, nil, append([]string{"routes", "rollback"}, key...)...)
	require.Equal(t, 2, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	require.Contains(t, res.stderr, "--to")

	res = runCLI(t, bin, nil, append([]string{"routes", "update", "--url", "https://c.example", "--if-match", "x"}, key...)...)
	require.Equal(t, 1, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	require.Contains(t, res.stderr, "invalid_argument")
}
