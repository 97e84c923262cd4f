package resolver

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/routes"
)

// ChangeFeed is what the watch needs from the source of truth.
type ChangeFeed interface {
	// Changes returns up to limit of tenant's committed changes after
	// cursor (the limit taken in cursor order; the result in each route's
	// revision order with its resume points marked, see inRevisionOrder)
	// and settled: the cursor up to which every change of every tenant is
	// final. When fewer than limit come back, the caller has read
	// everything up to settled and may continue from there.
	Changes(ctx context.Context, tenant string, after Cursor, limit int) (cs []Change, settled Cursor, err error)
	// Touched returns the tenants with settled changes after cursor (up to
	// limit changes read, in cursor order), the cursor to continue from,
	// and whether there may be more. It is the sweep that covers a missed
	// wake-up: one query per instance, not one per tenant.
	Touched(ctx context.Context, after Cursor, limit int) (tenants []string, next Cursor, more bool, err error)
	// Head is where a stream of tenant that starts now begins: the settled
	// cursor, and the changes after it that have already committed (a
	// transaction older than them still runs), which the stream skips.
	Head(ctx context.Context, tenant string) (Cursor, []Cursor, error)
}

// LedgerFeed reads changes from route_ledger.
type LedgerFeed struct{ pool *pgxpool.Pool }

// NewLedgerFeed returns the ChangeFeed of the ledger behind pool.
func NewLedgerFeed(pool *pgxpool.Pool) *LedgerFeed { return &LedgerFeed{pool: pool} }

var _ ChangeFeed = (*LedgerFeed)(nil)

const xminSQL = `SELECT pg_snapshot_xmin(pg_current_snapshot())::text`

// changesSQL reads changed rows only: unchanged and rejected mutations
// changed nothing, and baseline rows stand for state from before the
// ledger, not for a change. The ledger row carries the previous url and
// state the event had (written with it in the same statement), so no
// window over the previous revision is needed. Index: 00006_watch.sql.
const changesSQL = `SELECT xid::text, seq, event_id, action, service, env, version, url, previous_url,
	previous_state, is_active, revision, changed_by, occurred_at, workflow_id, coalesce(rollback_to, 0)
	FROM route_ledger
	WHERE tenant = $1 AND outcome = 'changed' AND (xid, seq) > ($2::text::xid8, $3::bigint) AND xid < $4::text::xid8
	ORDER BY xid, seq LIMIT $5`

// Changes implements ChangeFeed. The xmin is read first, by a statement of
// its own: every transaction below it has ended, so by the time the second
// statement takes its snapshot each of their rows is visible or gone.
func (f *LedgerFeed) Changes(ctx context.Context, tenant string, after Cursor, limit int) ([]Change, Cursor, error) {
	var xmin string
	var cs []Change
	if err := f.pool.QueryRow(ctx, xminSQL).Scan(&xmin); err != nil {
		return nil, Cursor{}, fmt.Errorf("watch: read xmin: %w", err)
	}
	settled, err := parseXmin(xmin)
	if err != nil {
		return nil, Cursor{}, err
	}
	rows, err := f.pool.Query(ctx, changesSQL, tenant, strconv.FormatUint(after.Xid, 10), after.Seq, xmin, limit)
	if err != nil {
		return nil, Cursor{}, fmt.Errorf("watch: read changes of %s: %w", tenant, err)
	}
	defer rows.Close()
	for rows.Next() {
		var c Change
		var xid string
		var action string
		e := &c.Event
		if err := rows.Scan(&xid, &c.Cursor.Seq, &e.EventID, &action, &e.Service, &e.Env, &e.Version, &e.URL,
			&e.PreviousURL, &e.PreviousState, &e.IsActive, &e.Revision, &e.ChangedBy, &e.OccurredAt,
			&e.WorkflowID, &e.RollbackTo); err != nil {
			return nil, Cursor{}, fmt.Errorf("watch: read changes of %s: %w", tenant, err)
		}
		if c.Cursor.Xid, err = strconv.ParseUint(xid, 10, 64); err != nil {
			return nil, Cursor{}, fmt.Errorf("watch: xid %q: %w", xid, err)
		}
		e.EventType = events.TypeRouteChanged
		e.Action = routes.Action(action)
		e.Tenant = tenant
		e.OccurredAt = e.OccurredAt.UTC()
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, Cursor{}, fmt.Errorf("watch: read changes of %s: %w", tenant, err)
	}
	inRevisionOrder(cs)
	return cs, settled, nil
}

// touchedSQL reads the tenants of every settled change after a cursor
// (index route_ledger_watch_all_idx, 00006_watch.sql).
const touchedSQL = `SELECT tenant, xid::text, seq FROM route_ledger
	WHERE outcome = 'changed' AND (xid, seq) > ($1::text::xid8, $2::bigint) AND xid < $3::text::xid8
	ORDER BY xid, seq LIMIT $4`

// Touched implements ChangeFeed.
func (f *LedgerFeed) Touched(ctx context.Context, after Cursor, limit int) ([]string, Cursor, bool, error) {
	var xmin string
	if err := f.pool.QueryRow(ctx, xminSQL).Scan(&xmin); err != nil {
		return nil, Cursor{}, false, fmt.Errorf("watch: read xmin: %w", err)
	}
	settled, err := parseXmin(xmin)
	if err != nil {
		return nil, Cursor{}, false, err
	}
	rows, err := f.pool.Query(ctx, touchedSQL, strconv.FormatUint(after.Xid, 10), after.Seq, xmin, limit)
	if err != nil {
		return nil, Cursor{}, false, fmt.Errorf("watch: sweep: %w", err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	var tenants []string
	next, n := after, 0
	for rows.Next() {
		var tenant, xid string
		if err := rows.Scan(&tenant, &xid, &next.Seq); err != nil {
			return nil, Cursor{}, false, fmt.Errorf("watch: sweep: %w", err)
		}
		if next.Xid, err = strconv.ParseUint(xid, 10, 64); err != nil {
			return nil, Cursor{}, false, fmt.Errorf("watch: xid %q: %w", xid, err)
		}
		if !seen[tenant] {
			seen[tenant] = true
			tenants = append(tenants, tenant)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return nil, Cursor{}, false, fmt.Errorf("watch: sweep: %w", err)
	}
	if n == limit {
		return tenants, next, true, nil
	}
	if next.Less(settled) {
		next = settled
	}
	return tenants, next, false, nil
}

// headSQL reads the settled cursor and, in the same snapshot, the tenant's
// changes above it that are visible, hence committed before now.
const headSQL = `WITH s AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),
	l AS (SELECT xid, seq FROM route_ledger, s WHERE tenant = $1 AND outcome = 'changed' AND xid >= s.xmin)
	SELECT s.xmin::text, ARRAY(SELECT xid::text FROM l ORDER BY xid, seq), ARRAY(SELECT seq FROM l ORDER BY xid, seq) FROM s`

// Head implements ChangeFeed.
func (f *LedgerFeed) Head(ctx context.Context, tenant string) (Cursor, []Cursor, error) {
	var xmin string
	var xids []string
	var seqs []int64
	if err := f.pool.QueryRow(ctx, headSQL, tenant).Scan(&xmin, &xids, &seqs); err != nil {
		return Cursor{}, nil, fmt.Errorf("watch: read the head: %w", err)
	}
	head, err := parseXmin(xmin)
	if err != nil {
		return Cursor{}, nil, err
	}
	var skip []Cursor
	for i, x := range xids {
		if x == "" || i >= len(seqs) {
			continue
		}
		xid, err := strconv.ParseUint(x, 10, 64)
		if err != nil {
			return Cursor{}, nil, fmt.Errorf("watch: xid %q: %w", x, err)
		}
		skip = append(skip, Cursor{Xid: xid, Seq: seqs[i]})
	}
	return head, skip, nil
}

// parseXmin is the settled cursor of a snapshot's xmin: every row of a
// transaction below it sorts before (xmin, 0), every later one after.
func parseXmin(s string) (Cursor, error) {
	x, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return Cursor{}, fmt.Errorf("watch: xmin %q: %w", s, err)
	}
	return Cursor{Xid: x}, nil
}
