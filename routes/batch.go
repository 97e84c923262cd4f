package routes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// MaxBatch is the most routes one batch may create.
const MaxBatch = 1000

// ValidateBatch checks a batch of creations: 1 to MaxBatch routes, all of
// one tenant, no route twice, each one valid. Errors name the offending
// element, as in "routes[3].url".
func ValidateBatch(ms []Mutation) error {
	switch {
	case len(ms) == 0:
		return Invalid("routes", "must hold at least one route")
	case len(ms) > MaxBatch:
		return Invalid("routes", "must hold at most "+strconv.Itoa(MaxBatch)+" routes")
	}
	seen := make(map[Key]int, len(ms))
	for i, m := range ms {
		at := "routes[" + strconv.Itoa(i) + "]"
		if m.Action != ActionCreated {
			return Invalid(at+".action", "a batch only creates routes")
		}
		if err := m.Validate(); err != nil {
			var inv *InvalidError
			if errors.As(err, &inv) {
				return Invalid(at+"."+inv.Field, inv.Reason)
			}
			return err
		}
		if m.Key.Tenant != ms[0].Key.Tenant {
			return Invalid(at+".tenant", "every route of a batch must belong to one tenant ("+ms[0].Key.Tenant+")")
		}
		if j, dup := seen[m.Key]; dup {
			return Invalid(at, "names the same route as routes["+strconv.Itoa(j)+"]")
		}
		seen[m.Key] = i
	}
	return nil
}

// CreateBatch creates every route of ms in one transaction, or none of them.
// Each mutation must carry its own event id. A route that already exists
// with the same URL is left alone (Changed=false), as a single create
// would; one that exists with another URL fails the whole batch with
// ErrConflict. Applying the same batch again (same event ids) reports the
// changes it made, like Apply.
func (s *Store) CreateBatch(ctx context.Context, ms []Mutation) ([]Result, error) {
	if err := ValidateBatch(ms); err != nil {
		return nil, err
	}
	byEvent := make(map[string]int, len(ms))
	for i, m := range ms {
		if m.EventID == "" {
			return nil, Invalid("routes["+strconv.Itoa(i)+"].event_id", "is required in a batch")
		}
		if _, dup := byEvent[m.EventID]; dup {
			return nil, Invalid("routes["+strconv.Itoa(i)+"].event_id", "must be unique in a batch")
		}
		byEvent[m.EventID] = i
	}
	var out []Result
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = createBatch(ctx, tx, ms, byEvent)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create %d routes of tenant %s: %w", len(ms), ms[0].Key.Tenant, translate(err))
	}
	return out, nil
}

// batchColumns are the batch as column arrays, the shape unnest() takes.
type batchColumns struct {
	services, envs, versions, urls, eventIDs []string
	active                                   []bool
}

func columns(ms []Mutation) batchColumns {
	c := batchColumns{
		services: make([]string, len(ms)), envs: make([]string, len(ms)), versions: make([]string, len(ms)),
		urls: make([]string, len(ms)), eventIDs: make([]string, len(ms)), active: make([]bool, len(ms)),
	}
	for i, m := range ms {
		c.services[i], c.envs[i], c.versions[i] = m.Key.Service, m.Key.Env, m.Key.Version
		c.urls[i], c.eventIDs[i], c.active[i] = m.URL, m.EventID, m.Active
	}
	return c
}

// Parents are inserted in sorted order and endpoints in key order, so two
// concurrent batches over the same names wait for each other instead of
// deadlocking.
const (
	batchServicesSQL = `INSERT INTO services (tenant_id, service_name)
		SELECT $1, x FROM unnest($2::text[]) AS x ORDER BY x
		ON CONFLICT (tenant_id, service_name) DO NOTHING`
	batchEnvsSQL = `INSERT INTO environments (service_id, env_name)
		SELECT s.id, x.env FROM unnest($2::text[], $3::text[]) AS x(service, env)
		JOIN services s ON s.tenant_id = $1 AND s.service_name = x.service
		ORDER BY s.id, x.env
		ON CONFLICT (service_id, env_name) DO NOTHING`
	batchInsertSQL = `INSERT INTO endpoints (environment_id, version, url, is_active, last_event_id)
		SELECT en.id, x.version, x.url, x.active, x.event_id
		FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::text[])
			AS x(service, env, version, url, active, event_id)
		JOIN services s ON s.tenant_id = $1 AND s.service_name = x.service
		JOIN environments en ON en.service_id = s.id AND en.env_name = x.env
		ORDER BY en.id, x.version
		ON CONFLICT (environment_id, version) DO NOTHING
		RETURNING last_event_id, url, is_active, revision, created_at, updated_at`
	batchExistingSQL = `SELECT x.ord, e.url, e.is_active, e.revision, e.created_at, e.updated_at,
			e.last_event_id, e.previous_url, e.previous_active
		FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS x(service, env, version, ord)
		JOIN services s ON s.tenant_id = $1 AND s.service_name = x.service
		JOIN environments en ON en.service_id = s.id AND en.env_name = x.env
		JOIN endpoints e ON e.environment_id = en.id AND e.version = x.version
		ORDER BY e.id
		FOR UPDATE OF e`
)

func createBatch(ctx context.Context, tx pgx.Tx, ms []Mutation, byEvent map[string]int) ([]Result, error) {
	var tenantID int64
	if err := tx.QueryRow(ctx, `INSERT INTO tenants (name) VALUES ($1)
		ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id`, ms[0].Key.Tenant).Scan(&tenantID); err != nil {
		return nil, err
	}
	c := columns(ms)
	if _, err := tx.Exec(ctx, batchServicesSQL, tenantID, distinct(c.services)); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, batchEnvsSQL, tenantID, c.services, c.envs); err != nil {
		return nil, err
	}

	out := make([]Result, len(ms))
	done := make([]bool, len(ms))
	route := func(i int) Route {
		k := ms[i].Key
		return Route{Tenant: k.Tenant, Service: k.Service, Env: k.Env, Version: k.Version}
	}
	rows, err := tx.Query(ctx, batchInsertSQL, tenantID, c.services, c.envs, c.versions, c.urls, c.active, c.eventIDs)
	if err != nil {
		return nil, err
	}
	var eventID string
	var r Route
	_, err = pgx.ForEachRow(rows, []any{&eventID, &r.URL, &r.IsActive, &r.Revision, &r.CreatedAt, &r.UpdatedAt}, func() error {
		i, ok := byEvent[eventID]
		if !ok {
			return fmt.Errorf("batch insert returned unknown event id %q", eventID)
		}
		got := route(i)
		got.URL, got.IsActive, got.Revision, got.CreatedAt, got.UpdatedAt = r.URL, r.IsActive, r.Revision, r.CreatedAt, r.UpdatedAt
		out[i], done[i] = Result{Route: got, Changed: true}, true
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !slices.Contains(done, false) {
		return out, nil
	}

	// The routes that already existed: lock them and decide as a single
	// create would (replay, no-op or conflict).
	rows, err = tx.Query(ctx, batchExistingSQL, tenantID, c.services, c.envs, c.versions)
	if err != nil {
		return nil, err
	}
	var ord int
	var last lastChange
	_, err = pgx.ForEachRow(rows, []any{&ord, &r.URL, &r.IsActive, &r.Revision, &r.CreatedAt, &r.UpdatedAt,
		&last.eventID, &last.previousURL, &last.previousActive}, func() error {
		i := ord - 1
		if done[i] {
			return nil // inserted above
		}
		m := ms[i]
		existing := route(i)
		existing.URL, existing.IsActive, existing.Revision, existing.CreatedAt, existing.UpdatedAt = r.URL, r.IsActive, r.Revision, r.CreatedAt, r.UpdatedAt
		switch {
		case last.replays(m):
			out[i] = last.result(existing)
		case existing.URL != m.URL:
			return conflictf("routes[%d] (%s) exists with another url", i, m.Key)
		default:
			out[i] = Result{Route: existing, PreviousURL: existing.URL, PreviousState: State(existing.IsActive)}
		}
		done[i] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	if i := slices.Index(done, false); i >= 0 {
		// Neither inserted nor found: only possible if a parent row
		// vanished, which nothing does; retry rather than guess.
		return nil, fmt.Errorf("routes[%d] (%s) was neither created nor found", i, ms[i].Key)
	}
	return out, nil
}

func distinct(xs []string) []string {
	out := slices.Clone(xs)
	slices.Sort(out)
	return slices.Compact(out)
}
