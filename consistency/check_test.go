package consistency_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/consistency"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// stores is a fresh Postgres database and audit collection. Rows and
// documents are written directly, as the store and the audit activity
// would, so the check is tested against the data model only.
type stores struct {
	t    *testing.T
	pool *pgxpool.Pool
	coll *mongo.Collection
}

func newStores(t *testing.T) *stores {
	return &stores{t: t, pool: testenv.Postgres(t), coll: testenv.Mongo(t).Collection(audit.CollectionName)}
}

func (s *stores) exec(sql string, args ...any) {
	s.t.Helper()
	_, err := s.pool.Exec(context.Background(), sql, args...)
	require.NoError(s.t, err)
}

// route names a route; ref is "t:s:e:v".
type route struct{ tenant, service, env, version string }

func (r route) ref() string { return r.tenant + ":" + r.service + ":" + r.env + ":" + r.version }

func eventID(r route, rev int64) string { return fmt.Sprintf("evt-%s-%d", r.ref(), rev) }
func urlOf(rev int64) string            { return fmt.Sprintf("https://svc.example/r%d", rev) }

// addRoute creates r at revision rev (url urlOf(rev), active), with a
// 'changed' ledger row per revision from 1, or a baseline row for revision
// from when from > 1, and one audit document per revision 1..rev.
func (s *stores) addRoute(r route, rev, from int64) {
	s.t.Helper()
	ctx := context.Background()
	var id int64
	err := s.pool.QueryRow(ctx, `
WITH t AS (INSERT INTO tenants (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id),
     s AS (INSERT INTO services (tenant_id, service_name) SELECT id, $2 FROM t
           ON CONFLICT (tenant_id, service_name) DO UPDATE SET service_name = EXCLUDED.service_name RETURNING id),
     e AS (INSERT INTO environments (service_id, env_name) SELECT id, $3 FROM s
           ON CONFLICT (service_id, env_name) DO UPDATE SET env_name = EXCLUDED.env_name RETURNING id)
INSERT INTO endpoints (environment_id, version, url, is_active, revision) SELECT id, $4, $5, true, $6 FROM e RETURNING id`,
		r.tenant, r.service, r.env, r.version, urlOf(rev), rev).Scan(&id)
	require.NoError(s.t, err)
	for n := max(from, 1); n <= rev; n++ {
		outcome := "changed"
		if from > 1 && n == from {
			outcome = "baseline"
		}
		s.exec(`INSERT INTO route_ledger (event_id, endpoint_id, tenant, service, env, version, outcome, action, revision, url, is_active)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'updated', $8, $9, true)`, eventID(r, n), id, r.tenant, r.service, r.env, r.version, outcome, n, urlOf(n))
	}
	// Mutations that made no revision: they must not count.
	s.exec(`INSERT INTO route_ledger (event_id, endpoint_id, tenant, service, env, version, outcome, action, revision, url, is_active)
VALUES ($1, $2, $3, $4, $5, $6, 'unchanged', 'activated', $7, $8, true)`, eventID(r, rev)+"-noop", id, r.tenant, r.service, r.env, r.version, rev, urlOf(rev))
	for n := int64(1); n <= rev; n++ {
		s.addAudit(r, n, eventID(r, n))
	}
}

func (s *stores) addAudit(r route, rev int64, event string) {
	s.t.Helper()
	_, err := s.coll.InsertOne(context.Background(), audit.Document{
		EventID: event, EventType: "route_changed", Action: "updated",
		Route: audit.RouteRef{Tenant: r.tenant, Service: r.service, Env: r.env, Version: r.version},
		URL:   urlOf(rev), OccurredAt: time.Now().UTC(), ProcessedAt: time.Now().UTC(),
		Metadata: audit.Metadata{Revision: rev, IsActive: true, Source: "workflow"},
	})
	require.NoError(s.t, err)
}

func (s *stores) check(tenant string) consistency.Report {
	s.t.Helper()
	rep, err := consistency.Check(context.Background(), s.pool, s.coll, tenant)
	require.NoError(s.t, err)
	return rep
}

// found is a discrepancy without its detail text.
type found struct {
	Route    string
	Kind     consistency.Kind
	Revision int64
}

func foundIn(t *testing.T, rep consistency.Report) []found {
	t.Helper()
	out := []found{}
	for _, d := range rep.Discrepancies {
		require.NotEmpty(t, d.Detail)
		out = append(out, found{d.Route, d.Kind, d.Revision})
	}
	return out
}

var (
	a1 = route{"team-a", "payments", "prod", "v1"}
	a2 = route{"team-a", "payments", "prod", "v2"}
	aB = route{"team-a", "search", "dev", "1.0"} // predates the ledger: baseline at revision 3
	b1 = route{"team-b", "payments", "prod", "v1"}
)

// consistentSetup is two tenants, four routes, one of them with a baseline,
// plus a rejected mutation of an unknown route (no endpoint, no revision).
func consistentSetup(t *testing.T) *stores {
	s := newStores(t)
	s.addRoute(a1, 3, 1)
	s.addRoute(a2, 1, 1)
	s.addRoute(aB, 4, 3)
	s.addRoute(b1, 2, 1)
	s.exec(`INSERT INTO route_ledger (event_id, tenant, service, env, version, outcome, action, error_type)
VALUES ('evt-rejected', 'team-a', 'payments', 'prod', 'v9', 'rejected', 'activated', 'not_found')`)
	return s
}

func TestCheckFindsNothingWhenStoresAgree(t *testing.T) {
	t.Parallel()
	s := consistentSetup(t)
	rep := s.check("")
	require.Equal(t, []found{}, foundIn(t, rep))
	require.True(t, rep.Consistent())
	require.Equal(t, 2, rep.Tenants)
	require.Equal(t, 4, rep.Routes)
	require.EqualValues(t, 3+1+4+2, rep.Revisions)
	require.Equal(t, 3+1+2+2, rep.LedgerRows) // aB: baseline 3 and changed 4
	require.Equal(t, 10, rep.AuditDocs)
}

func TestCheckFindsEachKindOfDiscrepancy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name  string
		spoil func(s *stores)
		want  []found
	}{
		{"an audit document lost for a revision is missing_audit", func(s *stores) {
			_, err := s.coll.DeleteOne(ctx, bson.D{{Key: "event_id", Value: eventID(a1, 2)}})
			require.NoError(t, err)
		}, []found{{a1.ref(), consistency.KindMissingAudit, 2}}},
		{"a second document for a revision is duplicate_audit and, with another event id, audit_event_mismatch", func(s *stores) {
			s.addAudit(a1, 2, "evt-replayed-with-a-new-id")
		}, []found{{a1.ref(), consistency.KindDuplicateAudit, 2}, {a1.ref(), consistency.KindAuditEventMismatch, 2}}},
		{"a document whose event id is not the ledger's is audit_event_mismatch", func(s *stores) {
			_, err := s.coll.UpdateOne(ctx, bson.D{{Key: "event_id", Value: eventID(b1, 1)}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "event_id", Value: "evt-other"}}}})
			require.NoError(t, err)
		}, []found{{b1.ref(), consistency.KindAuditEventMismatch, 1}}},
		{"a gap in the ledger is missing_revision", func(s *stores) {
			s.exec(`DELETE FROM route_ledger WHERE event_id = $1`, eventID(a1, 2))
		}, []found{{a1.ref(), consistency.KindMissingRevision, 2}}},
		{"a route whose state is not its newest ledger row's is ledger_state_mismatch", func(s *stores) {
			s.exec(`UPDATE endpoints SET is_active = false WHERE version = 'v2'`)
		}, []found{{a2.ref(), consistency.KindLedgerStateMismatch, 1}}},
		{"a revision made without a ledger row is missing_revision and missing_audit", func(s *stores) {
			s.exec(`UPDATE endpoints SET revision = 4, url = 'https://elsewhere.example' WHERE version = 'v1' AND url = $1`, urlOf(2))
		}, []found{{b1.ref(), consistency.KindMissingRevision, 3}, {b1.ref(), consistency.KindMissingAudit, 3},
			{b1.ref(), consistency.KindMissingRevision, 4}, {b1.ref(), consistency.KindMissingAudit, 4}}},
		{"a document for a revision the route never reached is orphan_audit", func(s *stores) {
			s.addAudit(a2, 2, "evt-uncommitted")
		}, []found{{a2.ref(), consistency.KindOrphanAudit, 2}}},
		{"a document for a route that does not exist is orphan_audit, also in a tenant Postgres does not know", func(s *stores) {
			s.addAudit(route{"team-a", "payments", "prod", "v9"}, 1, "evt-ghost")
			s.addAudit(route{"team-z", "payments", "prod", "v1"}, 1, "evt-ghost-tenant")
		}, []found{{"team-a:payments:prod:v9", consistency.KindOrphanAudit, 1}, {"team-z:payments:prod:v1", consistency.KindOrphanAudit, 1}}},
		{"two ledger rows for one revision are duplicate_revision", func(s *stores) {
			s.exec(`DROP INDEX route_ledger_revision_idx`) // the schema forbids it; the check must not rely on that
			s.exec(`INSERT INTO route_ledger (event_id, endpoint_id, tenant, service, env, version, outcome, action, revision, url, is_active, seq)
SELECT 'evt-twice', endpoint_id, tenant, service, env, version, 'changed', action, revision, url, is_active, 0 FROM route_ledger WHERE event_id = $1`, eventID(a1, 1))
		}, []found{{a1.ref(), consistency.KindDuplicateRevision, 1}}},
		{"a ledger row ahead of its route is extra_revision", func(s *stores) {
			s.exec(`INSERT INTO route_ledger (event_id, endpoint_id, tenant, service, env, version, outcome, action, revision, url, is_active)
SELECT 'evt-ahead', endpoint_id, tenant, service, env, version, 'changed', action, 2, url, is_active FROM route_ledger WHERE event_id = $1`, eventID(a2, 1))
		}, []found{{a2.ref(), consistency.KindExtraRevision, 2}}},
		{"a revision row without a route is orphan_ledger", func(s *stores) {
			s.exec(`INSERT INTO route_ledger (event_id, tenant, service, env, version, outcome, action, revision)
VALUES ('evt-lost', 'team-b', 'gone', 'prod', 'v1', 'changed', 'created', 1)`)
		}, []found{{"team-b:gone:prod:v1", consistency.KindOrphanLedger, 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := consistentSetup(t)
			tc.spoil(s)
			rep := s.check("")
			require.Equal(t, tc.want, foundIn(t, rep))
			require.False(t, rep.Consistent())
		})
	}
}

func TestCheckOfOneTenantLooksOnlyAtThatTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := consistentSetup(t)
	_, err := s.coll.DeleteOne(ctx, bson.D{{Key: "event_id", Value: eventID(b1, 2)}})
	require.NoError(t, err)
	s.addAudit(route{"team-c", "x", "prod", "v1"}, 1, "evt-team-c")

	repA := s.check("team-a")
	require.Equal(t, []found{}, foundIn(t, repA))
	require.Equal(t, 1, repA.Tenants)
	require.Equal(t, 3, repA.Routes)
	require.Equal(t, 8, repA.AuditDocs)

	repB := s.check("team-b")
	require.Equal(t, []found{{b1.ref(), consistency.KindMissingAudit, 2}}, foundIn(t, repB))
	require.Equal(t, 1, repB.Routes)

	repC := s.check("team-c")
	require.Equal(t, []found{{"team-c:x:prod:v1", consistency.KindOrphanAudit, 1}}, foundIn(t, repC))

	require.Equal(t, []found{{b1.ref(), consistency.KindMissingAudit, 2}, {"team-c:x:prod:v1", consistency.KindOrphanAudit, 1}},
		foundIn(t, s.check("")))
	require.Equal(t, []found{}, foundIn(t, s.check("no-such-tenant")))
}
