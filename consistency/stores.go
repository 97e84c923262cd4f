package consistency

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// listTenants returns the tenants in Postgres, or just tenant when one is
// asked for.
func listTenants(ctx context.Context, pool *pgxpool.Pool, tenant string) ([]string, error) {
	if tenant != "" {
		return []string{tenant}, nil
	}
	rows, err := pool.Query(ctx, `SELECT name FROM tenants`)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return names, nil
}

// tenantRoutesSQL streams a tenant's routes, each followed by its revision
// rows in the ledger. Every join follows a unique index, and the ledger side
// the partial index route_ledger_revision_idx.
const tenantRoutesSQL = `
SELECT e.id, s.service_name, en.env_name, e.version, e.revision, e.url, e.is_active,
       l.revision, l.event_id, l.outcome, l.url, l.is_active
FROM tenants t
JOIN services s ON s.tenant_id = t.id
JOIN environments en ON en.service_id = s.id
JOIN endpoints e ON e.environment_id = en.id
LEFT JOIN route_ledger l ON l.endpoint_id = e.id AND l.outcome IN ('changed', 'baseline')
WHERE t.name = $1
ORDER BY e.id, l.revision, l.seq`

// checkTenantRoutes checks every route of tenant against its ledger rows
// and audit documents, then reports the documents left over (routes that
// do not exist) as orphans.
func checkTenantRoutes(ctx context.Context, pool *pgxpool.Pool, tenant string, audit tenantAudit, rep *Report) error {
	// audit's entries are deleted as their routes are checked.
	rows, err := pool.Query(ctx, tenantRoutesSQL, tenant)
	if err != nil {
		return fmt.Errorf("read routes of tenant %s: %w", tenant, err)
	}
	defer rows.Close()

	var (
		cur    routeState
		curID  int64 = -1
		curKey routeKey
		ledger []ledgerRow
		flush  = func() {
			if curID < 0 {
				return
			}
			docs := audit[curKey]
			delete(audit, curKey)
			rep.Routes++
			rep.Revisions += cur.revision
			rep.LedgerRows += len(ledger)
			rep.AuditDocs += len(docs)
			rep.Discrepancies = append(rep.Discrepancies, checkRoute(cur, ledger, docs)...)
		}
	)
	for rows.Next() {
		var (
			id                 int64
			k                  routeKey
			r                  routeState
			lRev               *int64
			lEvent, lOut, lURL *string
			lActive            *bool
		)
		if err := rows.Scan(&id, &k.service, &k.env, &k.version, &r.revision, &r.url, &r.active,
			&lRev, &lEvent, &lOut, &lURL, &lActive); err != nil {
			return fmt.Errorf("read routes of tenant %s: %w", tenant, err)
		}
		if id != curID {
			flush()
			r.key = strings.Join([]string{tenant, k.service, k.env, k.version}, ":")
			cur, curID, curKey, ledger = r, id, k, ledger[:0]
		}
		if lRev != nil {
			ledger = append(ledger, ledgerRow{revision: *lRev, eventID: *lEvent, outcome: *lOut, url: *lURL, active: *lActive})
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read routes of tenant %s: %w", tenant, err)
	}
	flush()

	for k, ds := range audit {
		rep.AuditDocs += len(ds)
		rep.Discrepancies = append(rep.Discrepancies, orphanAudit(strings.Join([]string{tenant, k.service, k.env, k.version}, ":"), ds)...)
	}
	return nil
}

// orphanLedgerRows finds revision rows that lost their route. The schema
// allows a NULL endpoint_id only for rejected mutations of unknown routes.
func orphanLedgerRows(ctx context.Context, pool *pgxpool.Pool, tenant string) ([]Discrepancy, error) {
	rows, err := pool.Query(ctx, `
SELECT tenant, service, env, version, revision, event_id, outcome FROM route_ledger
WHERE endpoint_id IS NULL AND outcome IN ('changed', 'baseline') AND ($1 = '' OR tenant = $1)`, tenant)
	if err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	defer rows.Close()
	var out []Discrepancy
	for rows.Next() {
		var t, s, e, v, eventID, outcome string
		var rev int64
		if err := rows.Scan(&t, &s, &e, &v, &rev, &eventID, &outcome); err != nil {
			return nil, fmt.Errorf("read ledger: %w", err)
		}
		out = append(out, Discrepancy{Route: strings.Join([]string{t, s, e, v}, ":"), Kind: KindOrphanLedger, Revision: rev,
			Detail: fmt.Sprintf("ledger row %s (%s) has no route", eventID, outcome)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	return out, nil
}

// routeKey names a route within its tenant.
type routeKey struct{ service, env, version string }

// tenantAudit is one tenant's audit documents by route.
type tenantAudit map[routeKey][]auditEntry

// auditDoc is the projection of an audit document (audit.Document's stored
// field names) that the check reads.
type auditDoc struct {
	EventID string `bson:"event_id"`
	Route   struct {
		Tenant  string `bson:"tenant"`
		Service string `bson:"service"`
		Env     string `bson:"env"`
		Version string `bson:"version"`
	} `bson:"route"`
	Metadata struct {
		Revision bson.RawValue `bson:"revision"`
	} `bson:"metadata"`
}

// readAudit reads the audit documents of tenant (every tenant when "") in
// one pass, in natural order, keeping only route, revision and event id.
//
// The collection is not sorted by the server: MongoDB would need an index
// covering the sort, and FerretDB (dev, tests) sorts in memory at several
// KB per document (250 MB for 40k documents), which would land in the
// `dev` process. Holding ~100 bytes per document here is cheaper.
func readAudit(ctx context.Context, coll *mongo.Collection, tenant string) (map[string]tenantAudit, error) {
	// Split documents are checked against the split ledger (split.go).
	filter := bson.D{{Key: "event_type", Value: bson.D{{Key: "$ne", Value: splitEventType}}}}
	if tenant != "" {
		filter = append(filter, bson.E{Key: "route.tenant", Value: tenant})
	}
	opts := options.Find().
		SetProjection(bson.D{{Key: "_id", Value: 0}, {Key: "event_id", Value: 1}, {Key: "route", Value: 1}, {Key: "metadata.revision", Value: 1}}).
		SetBatchSize(2000)
	cur, err := coll.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("read audit documents: %w", err)
	}
	defer cur.Close(context.Background()) //nolint:errcheck
	byTenant := map[string]tenantAudit{}
	for cur.Next(ctx) {
		var d auditDoc
		if err := cur.Decode(&d); err != nil {
			return nil, fmt.Errorf("decode audit document: %w", err)
		}
		routes := byTenant[d.Route.Tenant]
		if routes == nil {
			routes = tenantAudit{}
			byTenant[d.Route.Tenant] = routes
		}
		e := auditEntry{eventID: d.EventID}
		if rev, ok := d.Metadata.Revision.AsInt64OK(); ok {
			e.revision = rev
		} else {
			e.badRevision = true
		}
		k := routeKey{d.Route.Service, d.Route.Env, d.Route.Version}
		routes[k] = append(routes[k], e)
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("read audit documents: %w", err)
	}
	return byTenant, nil
}
