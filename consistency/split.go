package consistency

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// splitEventType is the event_type of split audit documents
// (events.TypeSplitChanged); route checks skip them, checkSplits reads them.
const splitEventType = "split_changed"

// checkSplits verifies the splits' invariants, as for routes: every
// revision in split_ledger (changed rows, deletes included) has exactly
// one audit document with its event id, and no split audit document names
// a revision the ledger lacks. Discrepancies name the split as
// "split:{tenant}:{service}:{env}".
func checkSplits(ctx context.Context, pool *pgxpool.Pool, coll *mongo.Collection, tenant string, rep *Report) error {
	filter := bson.D{{Key: "event_type", Value: splitEventType}}
	if tenant != "" {
		filter = append(filter, bson.E{Key: "route.tenant", Value: tenant})
	}
	cur, err := coll.Find(ctx, filter, options.Find().SetProjection(bson.D{
		{Key: "_id", Value: 0}, {Key: "event_id", Value: 1}, {Key: "route", Value: 1}, {Key: "metadata.revision", Value: 1}}))
	if err != nil {
		return fmt.Errorf("read split audit documents: %w", err)
	}
	defer cur.Close(context.Background()) //nolint:errcheck
	type rev struct {
		split string
		rev   int64
	}
	docs := map[rev][]string{}
	for cur.Next(ctx) {
		var d auditDoc
		if err := cur.Decode(&d); err != nil {
			return fmt.Errorf("decode split audit document: %w", err)
		}
		r, _ := d.Metadata.Revision.AsInt64OK()
		k := rev{"split:" + d.Route.Tenant + ":" + d.Route.Service + ":" + d.Route.Env, r}
		docs[k] = append(docs[k], d.EventID)
		rep.AuditDocs++
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("read split audit documents: %w", err)
	}
	q := `SELECT tenant, service, env, revision, event_id FROM split_ledger WHERE outcome = 'changed'`
	args := []any{}
	if tenant != "" {
		q += ` AND tenant = $1`
		args = append(args, tenant)
	}
	rows, err := pool.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read split ledger: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t, s, e, eventID string
		var r int64
		if err := rows.Scan(&t, &s, &e, &r, &eventID); err != nil {
			return fmt.Errorf("read split ledger: %w", err)
		}
		rep.LedgerRows++
		k := rev{"split:" + t + ":" + s + ":" + e, r}
		ids := docs[k]
		delete(docs, k)
		switch {
		case len(ids) == 0:
			rep.Discrepancies = append(rep.Discrepancies, Discrepancy{Route: k.split, Kind: KindMissingAudit, Revision: r,
				Detail: "no audit document for event " + eventID})
		case len(ids) > 1:
			rep.Discrepancies = append(rep.Discrepancies, Discrepancy{Route: k.split, Kind: KindDuplicateAudit, Revision: r,
				Detail: strconv.Itoa(len(ids)) + " audit documents"})
		case ids[0] != eventID:
			rep.Discrepancies = append(rep.Discrepancies, Discrepancy{Route: k.split, Kind: KindAuditEventMismatch, Revision: r,
				Detail: "audit event " + ids[0] + ", ledger event " + eventID})
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read split ledger: %w", err)
	}
	for k := range docs {
		rep.Discrepancies = append(rep.Discrepancies, Discrepancy{Route: k.split, Kind: KindOrphanAudit, Revision: k.rev,
			Detail: "audit document of a split revision the ledger does not have"})
	}
	return nil
}
