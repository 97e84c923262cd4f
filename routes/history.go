package routes

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Revision is one revision of a route as the ledger recorded it: the
// route's state after the change that made it.
type Revision struct {
	Revision   int64     `json:"revision"`
	Action     Action    `json:"action"`
	URL        string    `json:"url"`
	IsActive   bool      `json:"is_active"`
	ChangedBy  string    `json:"changed_by"`
	EventID    string    `json:"event_id"`
	WorkflowID string    `json:"workflow_id"`
	OccurredAt time.Time `json:"occurred_at"`
	// RollbackTo is the revision a rollback restored.
	RollbackTo int64 `json:"rollback_to,omitempty"`
}

// HistoryPage is one page of a route's history, newest first.
type HistoryPage struct {
	Revisions  []Revision `json:"revisions"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// encodeRevisionCursor and decodeRevisionCursor turn the last revision of a
// history page into an opaque cursor and back.
func encodeRevisionCursor(rev int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("rev:" + strconv.FormatInt(rev, 10)))
}

func decodeRevisionCursor(c string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	var rev int64
	if err == nil && len(b) > 4 && string(b[:4]) == "rev:" {
		rev, err = strconv.ParseInt(string(b[4:]), 10, 64)
	} else if err == nil {
		err = errors.New("no revision")
	}
	if err != nil || rev < 1 {
		return 0, Invalid("cursor", "is not a cursor returned by this API")
	}
	return rev, nil
}

// History returns the revisions of the route named k, newest first, at
// most limit (default 100) per page, from the ledger: the rows that made a
// revision (changed, and the baseline of routes older than the ledger).
// An unknown route is ErrNotFound.
func (s *Store) History(ctx context.Context, k Key, limit int, cursor string) (HistoryPage, error) {
	if limit <= 0 {
		limit = 100
	}
	before := int64(1<<63 - 1)
	if cursor != "" {
		var err error
		if before, err = decodeRevisionCursor(cursor); err != nil {
			return HistoryPage{}, err
		}
	}
	var id int64
	err := s.pool.QueryRow(ctx, `SELECT e.id FROM `+routeJoin+`
		WHERE t.name = $1 AND s.service_name = $2 AND en.env_name = $3 AND e.version = $4`,
		k.Tenant, k.Service, k.Env, k.Version).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return HistoryPage{}, fmt.Errorf("history of route %s: %w", k, ErrNotFound)
	}
	if err != nil {
		return HistoryPage{}, fmt.Errorf("history of route %s: %w", k, translate(err))
	}
	rows, err := s.pool.Query(ctx, `SELECT `+revisionColumns+` FROM route_ledger l
		WHERE l.endpoint_id = $1 AND l.outcome IN ('changed', 'baseline') AND l.revision < $2
		ORDER BY l.revision DESC LIMIT $3`, id, before, limit+1)
	if err != nil {
		return HistoryPage{}, fmt.Errorf("history of route %s: %w", k, translate(err))
	}
	revs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Revision, error) { return scanRevision(row) })
	if err != nil {
		return HistoryPage{}, fmt.Errorf("history of route %s: %w", k, translate(err))
	}
	p := HistoryPage{Revisions: revs}
	if len(revs) > limit {
		p.Revisions = revs[:limit]
		p.NextCursor = encodeRevisionCursor(p.Revisions[limit-1].Revision)
	}
	if p.Revisions == nil {
		p.Revisions = []Revision{}
	}
	return p, nil
}

const revisionColumns = `l.revision, l.action, l.url, l.is_active, l.changed_by, l.event_id, l.workflow_id, l.occurred_at, coalesce(l.rollback_to, 0)`

func scanRevision(row pgx.Row) (Revision, error) {
	var r Revision
	err := row.Scan(&r.Revision, &r.Action, &r.URL, &r.IsActive, &r.ChangedBy, &r.EventID, &r.WorkflowID, &r.OccurredAt, &r.RollbackTo)
	return r, err
}
