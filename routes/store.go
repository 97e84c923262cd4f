package routes

import (
	"context"
	"errors"
	"fmt"

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

// Apply applies m atomically: it creates the tenant, service and
// environment when needed (create only), locks the route row and applies
// the change, bumping the revision. An already-applied change returns
// Changed=false and writes nothing.
func (s *Store) Apply(ctx context.Context, m Mutation) (Result, error) {
	if err := m.Validate(); err != nil {
		return Result{}, err
	}
	var res Result
	var err error
	if m.Action == ActionCreated {
		res, err = s.create(ctx, m)
	} else {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			res, err = change(ctx, tx, m)
			return err
		})
	}
	if err != nil {
		return Result{}, fmt.Errorf("%s route %s: %w", m.Action, m.Key, translate(err))
	}
	return res, nil
}

// createSQL creates the route and any missing parent in one statement: one
// round trip and one commit on the write path's hot spot. The parents'
// "DO UPDATE" is a no-op write that makes RETURNING yield an existing id
// and locks the parent row until commit, so concurrent creators of one
// tenant serialize instead of racing.
const createSQL = `
WITH t AS (
	INSERT INTO tenants (name) VALUES ($1)
	ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id
), s AS (
	INSERT INTO services (tenant_id, service_name) SELECT id, $2 FROM t
	ON CONFLICT (tenant_id, service_name) DO UPDATE SET service_name = EXCLUDED.service_name RETURNING id
), en AS (
	INSERT INTO environments (service_id, env_name) SELECT id, $3 FROM s
	ON CONFLICT (service_id, env_name) DO UPDATE SET env_name = EXCLUDED.env_name RETURNING id
)
INSERT INTO endpoints (environment_id, version, url, is_active, last_event_id)
SELECT id, $4, $5, $6, $7 FROM en
ON CONFLICT (environment_id, version) DO NOTHING
RETURNING url, is_active, revision, created_at, updated_at`

func (s *Store) create(ctx context.Context, m Mutation) (Result, error) {
	r := Route{Tenant: m.Key.Tenant, Service: m.Key.Service, Env: m.Key.Env, Version: m.Key.Version}
	err := s.pool.QueryRow(ctx, createSQL, m.Key.Tenant, m.Key.Service, m.Key.Env, m.Key.Version, m.URL, m.Active, m.EventID).
		Scan(&r.URL, &r.IsActive, &r.Revision, &r.CreatedAt, &r.UpdatedAt)
	if err == nil {
		return Result{Route: r, Changed: true}, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return Result{}, err
	}
	// The route exists: creating it again is a no-op when the URL matches.
	var res Result
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		existing, last, err := lockRoute(ctx, tx, m.Key)
		switch {
		case err != nil:
			return err
		case last.replays(m):
			res = last.result(existing)
		case existing.URL != m.URL:
			return conflictf("route already exists with another url")
		default:
			res = Result{Route: existing, PreviousURL: existing.URL, PreviousState: State(existing.IsActive)}
		}
		return nil
	})
	return res, err
}

// lastChange is what the row remembers of the change that made it.
type lastChange struct {
	eventID        string
	previousURL    string
	previousActive *bool
}

// replays reports whether m is the mutation that made the route's current
// state (same event id), so applying it again must report that change.
func (l lastChange) replays(m Mutation) bool {
	return m.EventID != "" && l.eventID == m.EventID
}

func (l lastChange) result(r Route) Result {
	res := Result{Route: r, Changed: true}
	if l.previousActive != nil {
		res.PreviousURL, res.PreviousState = l.previousURL, State(*l.previousActive)
	}
	return res
}

func lockRoute(ctx context.Context, tx pgx.Tx, k Key) (Route, lastChange, error) {
	var r Route
	var l lastChange
	err := tx.QueryRow(ctx, `SELECT `+routeColumns+`, e.last_event_id, e.previous_url, e.previous_active FROM `+routeJoin+`
		WHERE t.name = $1 AND s.service_name = $2 AND en.env_name = $3 AND e.version = $4
		FOR UPDATE OF e`, k.Tenant, k.Service, k.Env, k.Version).Scan(
		&r.Tenant, &r.Service, &r.Env, &r.Version, &r.URL, &r.IsActive, &r.Revision, &r.CreatedAt, &r.UpdatedAt,
		&l.eventID, &l.previousURL, &l.previousActive)
	if errors.Is(err, pgx.ErrNoRows) {
		return Route{}, l, ErrNotFound
	}
	return r, l, err
}

func change(ctx context.Context, tx pgx.Tx, m Mutation) (Result, error) {
	before, last, err := lockRoute(ctx, tx, m.Key)
	if err != nil {
		return Result{}, err
	}
	if last.replays(m) {
		return last.result(before), nil
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
	}
	if url == before.URL && active == before.IsActive {
		return res, nil
	}
	err = tx.QueryRow(ctx, `
		UPDATE endpoints e SET url = $5, is_active = $6, revision = e.revision + 1, updated_at = now(),
			last_event_id = $7, previous_url = $8, previous_active = $9
		FROM environments en, services s, tenants t
		WHERE en.id = e.environment_id AND s.id = en.service_id AND t.id = s.tenant_id
		  AND t.name = $1 AND s.service_name = $2 AND en.env_name = $3 AND e.version = $4
		RETURNING e.url, e.is_active, e.revision, e.updated_at`,
		m.Key.Tenant, m.Key.Service, m.Key.Env, m.Key.Version, url, active,
		m.EventID, before.URL, before.IsActive,
	).Scan(&res.Route.URL, &res.Route.IsActive, &res.Route.Revision, &res.Route.UpdatedAt)
	if err != nil {
		return Result{}, err
	}
	res.Changed = true
	return res, nil
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
