// Package consistency verifies the exactly-once invariants of route changes
// across the stores: every committed change of a route has exactly one
// revision in the Postgres ledger (route_ledger) and exactly one audit
// document, and the audit documents of a route are revisions 1..current,
// each once, carrying the ledger's event id.
//
// Check reads the stores directly (no api, no Temporal) and only reads. It
// is the oracle of tests that re-run mutations, and the engine of
// `trafficmanager check`.
package consistency

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Kind says what is wrong. The values are stable: scripts read them from
// `trafficmanager check --output json`.
type Kind string

// Ledger (Postgres) discrepancies.
const (
	// A revision between 1 (or the baseline revision) and the route's
	// current revision has no 'changed' ledger row.
	KindMissingRevision Kind = "missing_revision"
	// A revision has more than one 'changed'/'baseline' ledger row.
	KindDuplicateRevision Kind = "duplicate_revision"
	// A ledger row records a revision the route has not reached (or < 1).
	KindExtraRevision Kind = "extra_revision"
	// A 'baseline' row that is not the route's first ledger row.
	KindMisplacedBaseline Kind = "misplaced_baseline"
	// The ledger row of the current revision disagrees with the route's
	// url or is_active.
	KindLedgerStateMismatch Kind = "ledger_state_mismatch"
	// A 'changed'/'baseline' ledger row without a route (endpoint_id NULL).
	KindOrphanLedger Kind = "orphan_ledger"
)

// Audit (MongoDB) discrepancies.
const (
	// A revision of the route has no audit document.
	KindMissingAudit Kind = "missing_audit"
	// A revision of the route has more than one audit document.
	KindDuplicateAudit Kind = "duplicate_audit"
	// An audit document's event_id differs from the ledger's for its revision.
	KindAuditEventMismatch Kind = "audit_event_mismatch"
	// An audit document for a route or revision that does not exist in
	// Postgres (or without a numeric metadata.revision).
	KindOrphanAudit Kind = "orphan_audit"
)

// kindOrder is the order of discrepancies of one route and revision in a
// report: the source of truth first.
var kindOrder = []Kind{
	KindMissingRevision, KindDuplicateRevision, KindExtraRevision, KindMisplacedBaseline, KindLedgerStateMismatch, KindOrphanLedger,
	KindMissingAudit, KindDuplicateAudit, KindAuditEventMismatch, KindOrphanAudit,
}

// Discrepancy is one broken invariant.
type Discrepancy struct {
	Route    string `json:"route"` // tenant:service:env:version
	Kind     Kind   `json:"kind"`
	Revision int64  `json:"revision,omitempty"`
	Detail   string `json:"detail"`
}

func (d Discrepancy) String() string {
	return fmt.Sprintf("%s rev %d %s: %s", d.Route, d.Revision, d.Kind, d.Detail)
}

// Report is the outcome of a check: what was read and what is wrong.
type Report struct {
	Tenants       int           `json:"tenants"`
	Routes        int           `json:"routes"`
	Revisions     int64         `json:"revisions"` // sum of the routes' current revisions
	LedgerRows    int           `json:"ledger_rows"`
	AuditDocs     int           `json:"audit_docs"`
	Discrepancies []Discrepancy `json:"discrepancies"`
}

// Consistent reports whether no discrepancy was found.
func (r Report) Consistent() bool { return len(r.Discrepancies) == 0 }

// Check verifies the invariants for one tenant, or for every tenant found in
// either store when tenant is "". auditColl is the audit collection
// (audit.CollectionName).
//
// It reads the audit documents first, in one pass and projected to event
// id, route and revision (about 100 bytes each in memory), then streams
// each tenant's routes with their ledger rows from Postgres, one query per
// tenant. The order matters: an audit document is only ever written after
// its revision committed, so a mutation racing with the check can at worst
// show as a missing_audit for its new revision (not yet audited), never as
// an orphan. Run it again to tell a lagging audit write from a lost one.
//
// An error means a store could not be read; the report is then incomplete.
func Check(ctx context.Context, pool *pgxpool.Pool, auditColl *mongo.Collection, tenant string) (Report, error) {
	rep := Report{Discrepancies: []Discrepancy{}}
	docs, err := readAudit(ctx, auditColl, tenant)
	if err != nil {
		return rep, err
	}
	pgTenants, err := listTenants(ctx, pool, tenant)
	if err != nil {
		return rep, err
	}
	// Tenants with audit documents only are checked too: their documents
	// are orphans, unless the tenant was created since the list was read.
	tenants := pgTenants
	for t := range docs {
		tenants = append(tenants, t)
	}
	slices.Sort(tenants)
	tenants = slices.Compact(tenants)
	for _, t := range tenants {
		if err := checkTenantRoutes(ctx, pool, t, docs[t], &rep); err != nil {
			return rep, err
		}
		delete(docs, t) // checked: let it go
		rep.Tenants++
	}

	orphans, err := orphanLedgerRows(ctx, pool, tenant)
	if err != nil {
		return rep, err
	}
	rep.Discrepancies = append(rep.Discrepancies, orphans...)
	if err := checkSplits(ctx, pool, auditColl, tenant, &rep); err != nil {
		return rep, err
	}
	slices.SortStableFunc(rep.Discrepancies, func(a, b Discrepancy) int {
		return cmp.Or(cmp.Compare(a.Route, b.Route), cmp.Compare(a.Revision, b.Revision),
			cmp.Compare(slices.Index(kindOrder, a.Kind), slices.Index(kindOrder, b.Kind)), cmp.Compare(a.Detail, b.Detail))
	})
	return rep, nil
}
