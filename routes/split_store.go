package routes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// rejectSplitNotFound is the ledger's error type of a change of a split
// that does not exist.
const rejectSplitNotFound = "split_not_found"

// ApplySplit applies m atomically and exactly once, as Apply does for
// routes: under a transaction-scoped advisory lock of the split, it looks
// m's event id up in split_ledger (a recorded mutation returns its recorded
// outcome and changes nothing), checks If-Match, checks that every version
// is an existing, active route of the env (FOR SHARE: a concurrent
// deactivate waits for this commit and then sees the split), writes the
// split with the next revision and records the outcome in the same
// transaction. Rejections (not found, precondition, invalid versions) are
// recorded too, so a re-run is rejected the same way.
func (s *Store) ApplySplit(ctx context.Context, m SplitMutation) (SplitResult, error) {
	if err := m.Validate(); err != nil {
		return SplitResult{}, err
	}
	if m.EventID == "" {
		m.EventID = uuid.NewString()
	}
	var res SplitResult
	var rejection error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('split:' || $1, 0))`, m.Key.String()); err != nil {
			return err
		}
		rec, found, err := lookupSplit(ctx, tx, m.EventID)
		if err != nil {
			return err
		}
		if found {
			res, rejection = rec.Result, rec.Err
			return nil
		}
		res, err = applySplit(ctx, tx, m)
		var rej rejected
		if errors.As(err, &rej) {
			rejection = rej.err
			return recordSplit(ctx, tx, m, OutcomeRejected, SplitResult{}, rej.err)
		}
		return err
	})
	if err == nil {
		err = rejection
	}
	if err != nil {
		return SplitResult{}, fmt.Errorf("%s %s: %w", m.Action, m.Key, translate(err))
	}
	return res, nil
}

func applySplit(ctx context.Context, tx pgx.Tx, m SplitMutation) (SplitResult, error) {
	cur, exists, err := currentSplit(ctx, tx, m.Key)
	if err != nil {
		return SplitResult{}, err
	}
	if m.IfRevision != 0 && (!exists || cur.Revision != m.IfRevision) {
		reason := fmt.Sprintf("split is at revision %d, not %d", cur.Revision, m.IfRevision)
		if !exists {
			reason = fmt.Sprintf("the env has no split, not revision %d", m.IfRevision)
		}
		return SplitResult{}, rejected{err: &PreconditionError{Reason: reason}}
	}
	res := SplitResult{Split: cur}
	if exists {
		res.PreviousWeights = cur.Weights
	}
	if m.Action == ActionSplitDeleted {
		if !exists {
			return SplitResult{}, rejected{err: ErrSplitNotFound}
		}
		var at time.Time
		if err := tx.QueryRow(ctx, `DELETE FROM route_splits WHERE tenant = $1 AND service = $2 AND env = $3 RETURNING now()`,
			m.Key.Tenant, m.Key.Service, m.Key.Env).Scan(&at); err != nil {
			return SplitResult{}, err
		}
		res.Split = Split{Tenant: m.Key.Tenant, Service: m.Key.Service, Env: m.Key.Env, Revision: cur.Revision + 1,
			CreatedAt: cur.CreatedAt, UpdatedAt: at}
		res.Changed = true
		return res, recordSplit(ctx, tx, m, OutcomeChanged, res, nil)
	}
	if exists && cur.Weights.Equal(m.Weights) {
		return res, recordSplit(ctx, tx, m, OutcomeUnchanged, res, nil)
	}
	if err := checkActiveVersions(ctx, tx, m.Key, m.Weights); err != nil {
		return SplitResult{}, err
	}
	w, _ := json.Marshal(m.Weights) // a map of string to int always encodes
	next := cur.Revision + 1        // cur.Revision is the ledger's last revision when there is no split
	slots := RebalanceSlots(cur.Slots, cur.Weights.Versions(), m.Weights)
	err = tx.QueryRow(ctx, `INSERT INTO route_splits (tenant, service, env, weights, revision, slots)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (tenant, service, env) DO UPDATE SET weights = EXCLUDED.weights, revision = EXCLUDED.revision,
			slots = EXCLUDED.slots, updated_at = now()
		RETURNING created_at, updated_at`, m.Key.Tenant, m.Key.Service, m.Key.Env, w, next, slots).
		Scan(&res.Split.CreatedAt, &res.Split.UpdatedAt)
	if err != nil {
		return SplitResult{}, err
	}
	res.Split.Tenant, res.Split.Service, res.Split.Env = m.Key.Tenant, m.Key.Service, m.Key.Env
	res.Split.Weights, res.Split.Revision, res.Split.Slots, res.Changed = m.Weights, next, slots, true
	return res, recordSplit(ctx, tx, m, OutcomeChanged, res, nil)
}

// checkActiveVersions rejects weights naming a version that is not an
// existing, active route of the env (400 invalid_argument: the request
// names something that cannot receive traffic). The rows are locked FOR
// SHARE until commit, so a deactivate of one of them waits and then finds
// this split.
func checkActiveVersions(ctx context.Context, tx pgx.Tx, k SplitKey, w Weights) error {
	versions := w.Versions()
	rows, err := tx.Query(ctx, `SELECT e.version, e.is_active FROM `+routeJoin+`
		WHERE t.name = $1 AND s.service_name = $2 AND en.env_name = $3 AND e.version = ANY($4)
		FOR SHARE OF e`, k.Tenant, k.Service, k.Env, versions)
	if err != nil {
		return err
	}
	active := map[string]bool{}
	for rows.Next() {
		var v string
		var a bool
		if err := rows.Scan(&v, &a); err != nil {
			rows.Close()
			return err
		}
		active[v] = a
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var unknown, inactive []string
	for _, v := range versions {
		a, ok := active[v]
		switch {
		case !ok:
			unknown = append(unknown, v)
		case !a:
			inactive = append(inactive, v)
		}
	}
	switch {
	case len(unknown) > 0:
		return rejected{err: Invalid("weights", fmt.Sprintf("no route %s in %s/%s/%s: a split's versions must be existing, active routes",
			strings.Join(unknown, ", "), k.Tenant, k.Service, k.Env))}
	case len(inactive) > 0:
		return rejected{err: Invalid("weights", fmt.Sprintf("route %s of %s/%s/%s is inactive: a split's versions must be active routes",
			strings.Join(inactive, ", "), k.Tenant, k.Service, k.Env))}
	}
	return nil
}

// currentSplit returns the split of k; without one, exists is false and
// Revision is the last revision the ledger recorded (a deleted split's),
// so revisions keep growing across a delete.
func currentSplit(ctx context.Context, q pgx.Tx, k SplitKey) (Split, bool, error) {
	sp := Split{Tenant: k.Tenant, Service: k.Service, Env: k.Env}
	var raw []byte
	err := q.QueryRow(ctx, `SELECT weights, revision, slots, created_at, updated_at FROM route_splits
		WHERE tenant = $1 AND service = $2 AND env = $3`, k.Tenant, k.Service, k.Env).
		Scan(&raw, &sp.Revision, &sp.Slots, &sp.CreatedAt, &sp.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		err = q.QueryRow(ctx, `SELECT coalesce(max(revision), 0) FROM split_ledger
			WHERE tenant = $1 AND service = $2 AND env = $3 AND outcome = 'changed'`, k.Tenant, k.Service, k.Env).Scan(&sp.Revision)
		return sp, false, err
	}
	if err != nil {
		return Split{}, false, err
	}
	return sp, true, json.Unmarshal(raw, &sp.Weights)
}

// recordSplit writes m's outcome to split_ledger.
func recordSplit(ctx context.Context, tx pgx.Tx, m SplitMutation, outcome Outcome, res SplitResult, rejection error) error {
	var errType, msg string
	if rejection != nil {
		errType, msg = splitRejectionFields(rejection)
	}
	var w, prev []byte
	if res.Split.Weights != nil {
		w, _ = json.Marshal(res.Split.Weights)
	}
	if res.PreviousWeights != nil {
		prev, _ = json.Marshal(res.PreviousWeights)
	}
	var at *time.Time
	if outcome != OutcomeRejected {
		at = &res.Split.UpdatedAt
	}
	_, err := tx.Exec(ctx, `INSERT INTO split_ledger (event_id, tenant, service, env, outcome, action, revision, weights,
		previous_weights, changed_by, workflow_id, error_type, error_message, occurred_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, coalesce($14, now()))`,
		m.EventID, m.Key.Tenant, m.Key.Service, m.Key.Env, outcome, m.Action, res.Split.Revision, w, prev,
		m.ChangedBy, m.WorkflowID, errType, msg, at)
	return err
}

func splitRejectionFields(rejection error) (string, string) {
	if errors.Is(rejection, ErrSplitNotFound) {
		return rejectSplitNotFound, rejection.Error()
	}
	return rejectionFields(rejection)
}

const splitLedgerColumns = `event_id, tenant, service, env, outcome, revision, weights, previous_weights, error_type, error_message, occurred_at`

func scanSplitRecorded(row pgx.Row) (SplitRecorded, error) {
	var rec SplitRecorded
	var sp Split
	var outcome, errType, errMsg string
	var w, prev []byte
	err := row.Scan(&rec.EventID, &sp.Tenant, &sp.Service, &sp.Env, &outcome, &sp.Revision, &w, &prev, &errType, &errMsg, &sp.UpdatedAt)
	if err != nil {
		return SplitRecorded{}, err
	}
	rec.Outcome = Outcome(outcome)
	if rec.Outcome == OutcomeRejected {
		if errType == rejectSplitNotFound {
			rec.Err = ErrSplitNotFound
		} else {
			rec.Err = recordedError(errType, errMsg)
		}
		return rec, nil
	}
	if w != nil {
		if err := json.Unmarshal(w, &sp.Weights); err != nil {
			return SplitRecorded{}, err
		}
	}
	if prev != nil {
		if err := json.Unmarshal(prev, &rec.Result.PreviousWeights); err != nil {
			return SplitRecorded{}, err
		}
	}
	rec.Result.Split = sp
	rec.Result.Changed = rec.Outcome == OutcomeChanged
	return rec, nil
}

func lookupSplit(ctx context.Context, tx pgx.Tx, eventID string) (SplitRecorded, bool, error) {
	rec, err := scanSplitRecorded(tx.QueryRow(ctx, `SELECT `+splitLedgerColumns+` FROM split_ledger WHERE event_id = $1`, eventID))
	if errors.Is(err, pgx.ErrNoRows) {
		return SplitRecorded{}, false, nil
	}
	return rec, err == nil, err
}

// RecordedSplits returns split_ledger's records of the given event ids
// (unknown ids are left out): the API's answer when a workflow is slow.
func (s *Store) RecordedSplits(ctx context.Context, eventIDs ...string) ([]SplitRecorded, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+splitLedgerColumns+` FROM split_ledger WHERE event_id = ANY($1)`, eventIDs)
	if err != nil {
		return nil, fmt.Errorf("read split ledger: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (SplitRecorded, error) { return scanSplitRecorded(row) })
	if err != nil {
		return nil, fmt.Errorf("read split ledger: %w", translate(err))
	}
	return out, nil
}

// GetSplit returns the split of k, or ErrSplitNotFound.
func (s *Store) GetSplit(ctx context.Context, k SplitKey) (Split, error) {
	sp, found, err := s.SplitState(ctx, k)
	if err != nil {
		return Split{}, err
	}
	if !found {
		return Split{}, fmt.Errorf("get split %s: %w", k, ErrSplitNotFound)
	}
	return sp, nil
}

// SplitState returns the split of k; without one, found is false and the
// revision is the last one recorded (0 when it never had one). The
// resolver caches both answers under that revision.
func (s *Store) SplitState(ctx context.Context, k SplitKey) (Split, bool, error) {
	var sp Split
	var found bool
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		sp, found, err = currentSplit(ctx, tx, k)
		return err
	})
	if err != nil {
		return Split{}, false, fmt.Errorf("split %s: %w", k, translate(err))
	}
	return sp, found, nil
}

// ActiveVersions returns the names of the env's active routes, in name
// order (the resolver serves the only one when the env has no split).
func (s *Store) ActiveVersions(ctx context.Context, k SplitKey) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT e.version FROM `+routeJoin+`
		WHERE t.name = $1 AND s.service_name = $2 AND en.env_name = $3 AND e.is_active ORDER BY e.version LIMIT 2`,
		k.Tenant, k.Service, k.Env)
	if err != nil {
		return nil, fmt.Errorf("active versions of %s: %w", k, translate(err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("active versions of %s: %w", k, translate(err))
	}
	return out, nil
}

// SplitHistory returns the split's revisions, newest first, at most limit
// (default 100), from its ledger (deletes included, with no weights).
func (s *Store) SplitHistory(ctx context.Context, k SplitKey, limit int) ([]SplitRevision, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT revision, action, weights, changed_by, event_id, workflow_id, occurred_at
		FROM split_ledger WHERE tenant = $1 AND service = $2 AND env = $3 AND outcome = 'changed'
		ORDER BY revision DESC LIMIT $4`, k.Tenant, k.Service, k.Env, limit)
	if err != nil {
		return nil, fmt.Errorf("history of split %s: %w", k, translate(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (SplitRevision, error) {
		var r SplitRevision
		var w []byte
		if err := row.Scan(&r.Revision, &r.Action, &w, &r.ChangedBy, &r.EventID, &r.WorkflowID, &r.OccurredAt); err != nil {
			return r, err
		}
		r.Weights = Weights{} // a delete's
		if w != nil {
			return r, json.Unmarshal(w, &r.Weights)
		}
		return r, nil
	})
	if err != nil {
		return nil, fmt.Errorf("history of split %s: %w", k, translate(err))
	}
	return out, nil
}

// splitsUsing returns the env's split that names version k.Version, if
// any ("" otherwise). The route store calls it under the route's row lock
// before a change that leaves the route inactive.
func splitsUsing(ctx context.Context, tx pgx.Tx, k Key) (string, int, error) {
	var w int
	err := tx.QueryRow(ctx, `SELECT (weights ->> $4)::int FROM route_splits
		WHERE tenant = $1 AND service = $2 AND env = $3 AND weights ? $4`, k.Tenant, k.Service, k.Env, k.Version).Scan(&w)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	return k.Tenant + "/" + k.Service + "/" + k.Env, w, nil
}
