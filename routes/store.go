package routes

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store is the PostgreSQL store of routes.
type Store struct {
	pool *pgxpool.Pool
}

// NewStore returns a store over pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Pool returns the pool the store uses.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

const routeColumns = `t.name, s.service_name, en.env_name, e.version, e.url, e.is_active, e.revision, e.created_at, e.updated_at`

const routeJoin = `endpoints e
	JOIN environments en ON en.id = e.environment_id
	JOIN services s ON s.id = en.service_id
	JOIN tenants t ON t.id = s.tenant_id`

func scanRoute(row pgx.Row) (Route, error) {
	var r Route
	err := row.Scan(&r.Tenant, &r.Service, &r.Env, &r.Version, &r.URL, &r.IsActive, &r.Revision, &r.CreatedAt, &r.UpdatedAt)
	return r, err
}

// Apply applies m atomically and exactly once: it looks m's event id up
// in the ledger first and, when found, returns the outcome recorded then
// and changes nothing, whatever committed since. Otherwise it creates the
// tenant, service and environment when needed (create only), locks the
// route row, applies the change (bumping the revision) and records the
// outcome in the ledger in the same transaction. A change to a state the
// route already has returns Changed=false; not found, conflict and a
// failed If-Match (IfRevision, checked under the row lock) are recorded
// too, so a re-run is rejected the same way.
func (s *Store) Apply(ctx context.Context, m Mutation) (Result, error) {
	if err := m.Validate(); err != nil {
		return Result{}, err
	}
	if m.EventID == "" {
		m.EventID = uuid.NewString() // a caller that never re-runs
	}
	var res Result
	var err error
	for range 3 {
		if m.Action == ActionCreated {
			res, err = s.create(ctx, m)
		} else {
			res, err = s.change(ctx, m)
		}
		if !isLedgerDuplicate(err) {
			break
		}
		err = errRerunRace // the next attempt finds the other run's record
	}
	if err != nil {
		return Result{}, fmt.Errorf("%s route %s: %w", m.Action, m.Key, translate(err))
	}
	return res, nil
}

// createSQL creates the route and any missing parent, and records it in
// the ledger, in one statement: one round trip and one commit on the write
// path's hot spot. It does nothing when the ledger already knows the event
// id (a re-run) or the route exists; the caller then decides in a
// transaction. The parents' "DO UPDATE" is a no-op write that makes
// RETURNING yield an existing id and locks the parent row until commit, so
// concurrent creators of one tenant serialize instead of racing.
const createSQL = `
WITH t AS (
	INSERT INTO tenants (name) SELECT $1
	WHERE NOT EXISTS (SELECT 1 FROM route_ledger WHERE event_id = $7)
	ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id
), s AS (
	INSERT INTO services (tenant_id, service_name) SELECT id, $2 FROM t
	ON CONFLICT (tenant_id, service_name) DO UPDATE SET service_name = EXCLUDED.service_name RETURNING id
), en AS (
	INSERT INTO environments (service_id, env_name) SELECT id, $3 FROM s
	ON CONFLICT (service_id, env_name) DO UPDATE SET env_name = EXCLUDED.env_name RETURNING id
), ep AS (
	INSERT INTO endpoints (environment_id, version, url, is_active)
	SELECT id, $4, $5, $6 FROM en
	ON CONFLICT (environment_id, version) DO NOTHING
	RETURNING id, url, is_active, revision, created_at, updated_at
), l AS (
	INSERT INTO route_ledger (event_id, endpoint_id, tenant, service, env, version, outcome, action,
		revision, url, is_active, changed_by, workflow_id, occurred_at)
	SELECT $7, id, $1, $2, $3, $4, 'changed', 'created', revision, url, is_active, $8, $9, updated_at FROM ep
)
SELECT url, is_active, revision, created_at, updated_at FROM ep`

func (s *Store) create(ctx context.Context, m Mutation) (Result, error) {
	r := Route{Tenant: m.Key.Tenant, Service: m.Key.Service, Env: m.Key.Env, Version: m.Key.Version}
	err := s.pool.QueryRow(ctx, createSQL, m.Key.Tenant, m.Key.Service, m.Key.Env, m.Key.Version, m.URL, m.Active,
		m.EventID, m.ChangedBy, m.WorkflowID).
		Scan(&r.URL, &r.IsActive, &r.Revision, &r.CreatedAt, &r.UpdatedAt)
	if err == nil {
		return Result{Route: r, Changed: true}, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return Result{}, err
	}
	// A re-run, or the route exists: creating it again is a no-op when the
	// URL matches, else a conflict.
	return s.decide(ctx, m, func(ctx context.Context, tx pgx.Tx) (Result, error) {
		existing, id, err := lockRoute(ctx, tx, m.Key)
		if errors.Is(err, ErrNotFound) {
			return Result{}, errRerunRace // created and gone: nothing deletes routes, so retry
		}
		if err != nil {
			return Result{}, err
		}
		if existing.URL != m.URL {
			c := conflictf("route already exists with another url")
			return Result{}, rejected{c, &id}
		}
		res := Result{Route: existing, PreviousURL: existing.URL, PreviousState: State(existing.IsActive)}
		return res, recordUnchanged(ctx, tx, m, id, existing)
	})
}

// rejected carries a decided rejection out of a transaction that records
// it (and must commit).
type rejected struct {
	err        error
	endpointID *int64
}

func (r rejected) Error() string { return r.err.Error() }

// decide runs apply in a transaction after looking m up in the ledger: a
// recorded mutation returns its recorded outcome. A rejection that apply
// returns as rejected is recorded and committed, then returned.
func (s *Store) decide(ctx context.Context, m Mutation, apply func(context.Context, pgx.Tx) (Result, error)) (Result, error) {
	var res Result
	var rejection error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rec, found, err := lookup(ctx, tx, m.EventID)
		if err != nil {
			return err
		}
		if found {
			res, rejection = rec.replay()
			return nil
		}
		res, err = apply(ctx, tx)
		var rej rejected
		if errors.As(err, &rej) {
			rejection = rej.err
			return recordRejection(ctx, tx, m, rej.endpointID, rej.err)
		}
		return err
	})
	if err != nil {
		return Result{}, err
	}
	return res, rejection
}

func lockRoute(ctx context.Context, tx pgx.Tx, k Key) (Route, int64, error) {
	var r Route
	var id int64
	err := tx.QueryRow(ctx, `SELECT `+routeColumns+`, e.id FROM `+routeJoin+`
		WHERE t.name = $1 AND s.service_name = $2 AND en.env_name = $3 AND e.version = $4
		FOR UPDATE OF e`, k.Tenant, k.Service, k.Env, k.Version).Scan(
		&r.Tenant, &r.Service, &r.Env, &r.Version, &r.URL, &r.IsActive, &r.Revision, &r.CreatedAt, &r.UpdatedAt, &id)
	if errors.Is(err, pgx.ErrNoRows) {
		return Route{}, 0, ErrNotFound
	}
	return r, id, err
}

// changeSQL applies a change to a locked route and records it in the
// ledger, in one statement.
const changeSQL = `
WITH up AS (
	UPDATE endpoints SET url = $2, is_active = $3, revision = revision + 1, updated_at = now()
	WHERE id = $1
	RETURNING id, url, is_active, revision, updated_at
), l AS (
	INSERT INTO route_ledger (event_id, endpoint_id, tenant, service, env, version, outcome, action,
		revision, url, is_active, previous_url, previous_state, changed_by, workflow_id, occurred_at, rollback_to)
	SELECT $4, id, $5, $6, $7, $8, 'changed', $9, revision, url, is_active, $10, $11, $12, $13, updated_at,
		NULLIF($14::bigint, 0) FROM up
)
SELECT url, is_active, revision, updated_at FROM up`

func (s *Store) change(ctx context.Context, m Mutation) (Result, error) {
	return s.decide(ctx, m, func(ctx context.Context, tx pgx.Tx) (Result, error) {
		before, id, err := lockRoute(ctx, tx, m.Key)
		if errors.Is(err, ErrNotFound) {
			return Result{}, rejected{err: ErrNotFound}
		}
		if err != nil {
			return Result{}, err
		}
		if m.IfRevision != 0 && m.IfRevision != before.Revision {
			p := &PreconditionError{Reason: fmt.Sprintf("route is at revision %d, not %d", before.Revision, m.IfRevision)}
			return Result{}, rejected{p, &id}
		}
		res := Result{Route: before, PreviousURL: before.URL, PreviousState: State(before.IsActive)}
		url, active := before.URL, before.IsActive
		switch m.Action {
		case ActionUpdated:
			url = m.URL
		case ActionActivated:
			active = true
		case ActionDeactivated:
			active = false
		case ActionRolledBack, ActionReverted:
			var found bool
			url, active, found, err = revisionState(ctx, tx, id, m.RollbackTo)
			if err != nil {
				return Result{}, err
			}
			if !found {
				inv := Invalid("revision", fmt.Sprintf("the route has no revision %d", m.RollbackTo))
				return Result{}, rejected{inv, &id}
			}
		}
		if url == before.URL && active == before.IsActive {
			return res, recordUnchanged(ctx, tx, m, id, before)
		}
		if before.IsActive && !active {
			// A split must never point at an inactive version (split_store.go).
			if split, w, err := splitsUsing(ctx, tx, m.Key); err != nil {
				return Result{}, err
			} else if split != "" {
				c := conflictf("version %s is in the split of %s (weight %d): change the split first", m.Key.Version, split, w)
				return Result{}, rejected{c, &id}
			}
		}
		err = tx.QueryRow(ctx, changeSQL, id, url, active,
			m.EventID, m.Key.Tenant, m.Key.Service, m.Key.Env, m.Key.Version, m.Action,
			before.URL, State(before.IsActive), m.ChangedBy, m.WorkflowID, m.RollbackTo,
		).Scan(&res.Route.URL, &res.Route.IsActive, &res.Route.Revision, &res.Route.UpdatedAt)
		if err != nil {
			return Result{}, err
		}
		res.Changed = true
		return res, nil
	})
}

// revisionState returns the url and active state of the route's revision
// rev, as the ledger recorded it; found is false when it has no such
// revision.
func revisionState(ctx context.Context, tx pgx.Tx, endpointID, rev int64) (url string, active, found bool, err error) {
	err = tx.QueryRow(ctx, `SELECT url, is_active FROM route_ledger
		WHERE endpoint_id = $1 AND revision = $2 AND outcome IN ('changed', 'baseline')`, endpointID, rev).Scan(&url, &active)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, false, nil
	}
	return url, active, err == nil, err
}

// Get returns the route named k, active or not.
func (s *Store) Get(ctx context.Context, k Key) (Route, error) {
	r, err := scanRoute(s.pool.QueryRow(ctx, `SELECT `+routeColumns+` FROM `+routeJoin+`
		WHERE t.name = $1 AND s.service_name = $2 AND en.env_name = $3 AND e.version = $4`,
		k.Tenant, k.Service, k.Env, k.Version))
	if errors.Is(err, pgx.ErrNoRows) {
		return Route{}, ErrNotFound
	}
	if err != nil {
		return Route{}, fmt.Errorf("get route %s: %w", k, translate(err))
	}
	return r, nil
}

// Recent returns up to n active routes, most recently changed first (cache warming).
func (s *Store) Recent(ctx context.Context, n int) ([]Route, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+routeColumns+` FROM `+routeJoin+`
		WHERE e.is_active ORDER BY e.updated_at DESC LIMIT $1`, n)
	if err != nil {
		return nil, fmt.Errorf("recent routes: %w", translate(err))
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Route, error) { return scanRoute(row) })
}

// translate maps PostgreSQL errors to domain errors by SQLSTATE so nothing
// above the store needs to know about pgconn. Anything else (connection
// failures, timeouts) is returned as is and treated as retryable.
func translate(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch {
	case pgErr.Code == "23505": // unique_violation
		return fmt.Errorf("%w: %s", ErrConflict, pgErr.ConstraintName)
	case pgErr.Code == "23503": // foreign_key_violation
		return fmt.Errorf("%w: %s", ErrConflict, pgErr.ConstraintName)
	case len(pgErr.Code) == 5 && pgErr.Code[:2] == "22": // data exception
		return fmt.Errorf("%w: %s", ErrInvalid, pgErr.Message)
	}
	return err
}
