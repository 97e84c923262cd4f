package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/internal/devstack"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
)

// runCheckCLI runs `trafficmanager check args...` in-process and returns
// its exit code and standard output.
func runCheckCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	cmd := newRootCmd()
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(append([]string{"check"}, args...))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cmd.ExecuteContext(ctx); err != nil {
		return exitCode(err), out.String()
	}
	return 0, out.String()
}

// TestCheckCommandExitCodes sets TM_* variables, so it does not run in
// parallel with other tests of this package.
func TestCheckCommandExitCodes(t *testing.T) {
	ctx := context.Background()
	pool := testenv.Postgres(t)
	db := testenv.Mongo(t)
	tenant := testenv.Name(t, "check")

	// One route at revision 1 with its ledger row and audit document.
	_, err := pool.Exec(ctx, `
WITH t AS (INSERT INTO tenants (name) VALUES ($1) RETURNING id),
     s AS (INSERT INTO services (tenant_id, service_name) SELECT id, 'payments' FROM t RETURNING id),
     e AS (INSERT INTO environments (service_id, env_name) SELECT id, 'prod' FROM s RETURNING id),
     r AS (INSERT INTO endpoints (environment_id, version, url) SELECT id, 'v1', 'https://p.example' FROM e RETURNING id)
INSERT INTO route_ledger (event_id, endpoint_id, tenant, service, env, version, outcome, action, revision, url, is_active)
SELECT 'evt-1', id, $1, 'payments', 'prod', 'v1', 'changed', 'created', 1, 'https://p.example', true FROM r`, tenant)
	require.NoError(t, err)
	coll := db.Collection(audit.CollectionName)
	_, err = coll.InsertOne(ctx, audit.Document{EventID: "evt-1", Action: "created",
		Route: audit.RouteRef{Tenant: tenant, Service: "payments", Env: "prod", Version: "v1"}, Metadata: audit.Metadata{Revision: 1}})
	require.NoError(t, err)

	dsn := pool.Config().ConnString()
	t.Setenv("TM_DATABASE_URL", dsn)
	t.Setenv("TM_MONGO_URI", testenv.MongoURI(t))
	t.Setenv("TM_MONGO_DATABASE", db.Name())

	t.Run("consistent stores exit 0 with a summary line", func(t *testing.T) {
		code, out := runCheckCLI(t)
		require.Equal(t, 0, code, out)
		require.Equal(t, "consistent: checked 1 routes of 1 tenants (1 revisions, 1 ledger rows, 1 audit documents)\n", out)

		code, out = runCheckCLI(t, "--tenant", tenant, "--output", "json")
		require.Equal(t, 0, code, out)
		var rep struct {
			Consistent    bool              `json:"consistent"`
			Routes        int               `json:"routes"`
			Discrepancies []json.RawMessage `json:"discrepancies"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &rep))
		require.True(t, rep.Consistent)
		require.Equal(t, 1, rep.Routes)
		require.NotNil(t, rep.Discrepancies)
		require.Empty(t, rep.Discrepancies)
	})

	t.Run("bad flags exit 2", func(t *testing.T) {
		code, _ := runCheckCLI(t, "--output", "yaml")
		require.Equal(t, exitUsage, code)
	})

	t.Run("a discrepancy exits 1 with one line for it", func(t *testing.T) {
		_, err := coll.DeleteOne(ctx, bson.D{{Key: "event_id", Value: "evt-1"}})
		require.NoError(t, err)
		t.Cleanup(func() {
			_, err := coll.InsertOne(ctx, audit.Document{EventID: "evt-1", Action: "created",
				Route: audit.RouteRef{Tenant: tenant, Service: "payments", Env: "prod", Version: "v1"}, Metadata: audit.Metadata{Revision: 1}})
			require.NoError(t, err)
		})

		code, out := runCheckCLI(t)
		require.Equal(t, 1, code, out)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 2, out)
		require.Regexp(t, `^`+tenant+`:payments:prod:v1\s+1\s+missing_audit\s+no audit document for revision 1$`, lines[0])
		require.True(t, strings.HasPrefix(lines[1], "inconsistent: 1 discrepancies;"), lines[1])

		code, out = runCheckCLI(t, "-o", "json")
		require.Equal(t, 1, code, out)
		var rep struct {
			Consistent    bool             `json:"consistent"`
			Discrepancies []map[string]any `json:"discrepancies"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &rep))
		require.False(t, rep.Consistent)
		require.Len(t, rep.Discrepancies, 1)
		require.Equal(t, map[string]any{"route": tenant + ":payments:prod:v1", "kind": "missing_audit", "revision": 1.0,
			"detail": "no audit document for revision 1"}, rep.Discrepancies[0])
	})

	closed := func(t *testing.T) int {
		port, err := devstack.FreePort()
		require.NoError(t, err)
		return port
	}
	t.Run("an unreachable audit store exits 3 without hanging", func(t *testing.T) {
		t.Setenv("TM_MONGO_URI", fmt.Sprintf("mongodb://127.0.0.1:%d/", closed(t)))
		start := time.Now()
		code, _ := runCheckCLI(t)
		require.Equal(t, exitUnreachable, code)
		require.Less(t, time.Since(start), 15*time.Second)
	})
	t.Run("an unreachable Postgres exits 3 without hanging", func(t *testing.T) {
		t.Setenv("TM_DATABASE_URL", fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", closed(t)))
		start := time.Now()
		code, _ := runCheckCLI(t)
		require.Equal(t, exitUnreachable, code)
		require.Less(t, time.Since(start), 15*time.Second)
	})
}
