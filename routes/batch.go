package routes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

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

// CreateBatch creates every route of ms in one transaction, or none of them,
// exactly once. Each mutation must carry its own event id. A route that
// already exists with the same URL is left alone (Changed=false), as a
// single create would; one that exists with another URL fails the whole
// batch with ErrConflict. Every element's outcome (or the batch's
// rejection) is recorded in the ledger in the same transaction, so applying
// the same batch again (same event ids) returns the recorded outcomes and
// changes nothing, like Apply.
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
	var err error
	for range 3 {
		out, err = s.createBatchOnce(ctx, ms, byEvent)
		if !isLedgerDuplicate(err) {
			break
		}
		err = errRerunRace
	}
	if err != nil {
		return nil, fmt.Errorf("create %d routes of tenant %s: %w", len(ms), ms[0].Key.Tenant, translate(err))
	}
	return out, nil
}

func (s *Store) createBatchOnce(ctx context.Context, ms []Mutation, byEvent map[string]int) ([]Result, error) {
	var out []Result
	var rejection error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		var found bool
		out, found, rejection, err = recordedBatch(ctx, tx, ms, byEvent)
		if err != nil || found {
			return err
		}
		// The inserts run in a savepoint so that a conflict can undo them
		// and still commit its record in the ledger.
		sp, err := tx.Begin(ctx)
		if err != nil {
			return err
		}
		var ids []int64
		out, ids, err = createBatch(ctx, sp, ms)
		var rej rejected
		if errors.As(err, &rej) {
			if err := sp.Rollback(ctx); err != nil {
				return err
			}
			out, rejection = nil, rej.err
			return recordBatchRejection(ctx, tx, ms, rej.err)
		}
		if err != nil {
			return err
		}
		if err := sp.Commit(ctx); err != nil {
			return err
		}
		return recordBatch(ctx, tx, ms, out, ids)
	})
	if err != nil {
		return nil, err
	}
	return out, rejection
}

// recordedBatch returns the ledger's outcomes of a batch that applied (or
// was rejected) before; found is false for a batch the ledger does not know.
func recordedBatch(ctx context.Context, tx pgx.Tx, ms []Mutation, byEvent map[string]int) (out []Result, found bool, rejection error, err error) {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.EventID
	}
	rows, err := tx.Query(ctx, `SELECT `+ledgerColumns+` FROM `+ledgerFrom+` WHERE l.event_id = ANY($1)`, ids)
	if err != nil {
		return nil, false, nil, err
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Recorded, error) { return scanRecorded(row) })
	if err != nil || len(recs) == 0 {
		return nil, false, nil, err
	}
	out = make([]Result, len(ms))
	for _, rec := range recs {
		if rec.Err != nil {
			return nil, true, rec.Err, nil
		}
		out[byEvent[rec.EventID]] = rec.Result
	}
	if len(recs) != len(ms) {
		// One transaction records all of a batch: a partial record means
		// the event ids were reused by another batch.
		return nil, true, nil, fmt.Errorf("the ledger holds %d of this batch's %d event ids", len(recs), len(ms))
	}
	return out, true, nil, nil
}

// batchColumns are the batch as column arrays, the shape unnest() takes.
type batchColumns struct {
	services, envs, versions, urls []string
	active                         []bool
}

func columns(ms []Mutation) batchColumns {
	c := batchColumns{
		services: make([]string, len(ms)), envs: make([]string, len(ms)), versions: make([]string, len(ms)),
		urls: make([]string, len(ms)), active: make([]bool, len(ms)),
	}
	for i, m := range ms {
		c.services[i], c.envs[i], c.versions[i] = m.Key.Service, m.Key.Env, m.Key.Version
		c.urls[i], c.active[i] = m.URL, m.Active
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
	batchInsertSQL = `WITH src AS (
			SELECT x.ord, en.id AS env_id, x.version, x.url, x.active
			FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bool[])
				WITH ORDINALITY AS x(service, env, version, url, active, ord)
			JOIN services s ON s.tenant_id = $1 AND s.service_name = x.service
			JOIN environments en ON en.service_id = s.id AND en.env_name = x.env
		), ins AS (
			INSERT INTO endpoints (environment_id, version, url, is_active)
			SELECT env_id, version, url, active FROM src ORDER BY env_id, version
			ON CONFLICT (environment_id, version) DO NOTHING
			RETURNING id, environment_id, version, url, is_active, revision, created_at, updated_at
		)
		SELECT src.ord, ins.id, ins.url, ins.is_active, ins.revision, ins.created_at, ins.updated_at
		FROM ins JOIN src ON src.env_id = ins.environment_id AND src.version = ins.version`
	batchExistingSQL = `SELECT x.ord, e.id, e.url, e.is_active, e.revision, e.created_at, e.updated_at
		FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS x(service, env, version, ord)
		JOIN services s ON s.tenant_id = $1 AND s.service_name = x.service
		JOIN environments en ON en.service_id = s.id AND en.env_name = x.env
		JOIN endpoints e ON e.environment_id = en.id AND e.version = x.version
		ORDER BY e.id
		FOR UPDATE OF e`
	batchLedgerSQL = `INSERT INTO route_ledger (event_id, endpoint_id, tenant, service, env, version, outcome, action,
			revision, url, is_active, previous_url, previous_state, changed_by, workflow_id, occurred_at)
		SELECT x.event_id, x.endpoint_id, $1, x.service, x.env, x.version, x.outcome, 'created',
			x.revision, x.url, x.active, x.previous_url, x.previous_state, x.changed_by, x.workflow_id, x.at
		FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[],
			$9::text[], $10::bool[], $11::text[], $12::text[], $13::text[], $14::text[], $15::timestamptz[])
			AS x(event_id, endpoint_id, service, env, version, outcome, revision, url, active,
				previous_url, previous_state, changed_by, workflow_id, at)`
	batchRejectionSQL = `INSERT INTO route_ledger (event_id, tenant, service, env, version, outcome, action,
			changed_by, workflow_id, error_type, error_message)
		SELECT x.event_id, $1, x.service, x.env, x.version, 'rejected', 'created', x.changed_by, w.workflow_id, $7, $8
		FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
			AS x(event_id, service, env, version, changed_by)
		CROSS JOIN (SELECT $9::text AS workflow_id) w`
)

// createBatch inserts the batch's routes and decides the existing ones as a
// single create would; it returns each element's result and route row id.
func createBatch(ctx context.Context, tx pgx.Tx, ms []Mutation) ([]Result, []int64, error) {
	var tenantID int64
	if err := tx.QueryRow(ctx, `INSERT INTO tenants (name) VALUES ($1)
		ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id`, ms[0].Key.Tenant).Scan(&tenantID); err != nil {
		return nil, nil, err
	}
	c := columns(ms)
	if _, err := tx.Exec(ctx, batchServicesSQL, tenantID, distinct(c.services)); err != nil {
		return nil, nil, err
	}
	if _, err := tx.Exec(ctx, batchEnvsSQL, tenantID, c.services, c.envs); err != nil {
		return nil, nil, err
	}

	out := make([]Result, len(ms))
	ids := make([]int64, len(ms))
	done := make([]bool, len(ms))
	route := func(i int) Route {
		k := ms[i].Key
		return Route{Tenant: k.Tenant, Service: k.Service, Env: k.Env, Version: k.Version}
	}
	rows, err := tx.Query(ctx, batchInsertSQL, tenantID, c.services, c.envs, c.versions, c.urls, c.active)
	if err != nil {
		return nil, nil, err
	}
	var ord int
	var id int64
	var r Route
	_, err = pgx.ForEachRow(rows, []any{&ord, &id, &r.URL, &r.IsActive, &r.Revision, &r.CreatedAt, &r.UpdatedAt}, func() error {
		i := ord - 1
		got := route(i)
		got.URL, got.IsActive, got.Revision, got.CreatedAt, got.UpdatedAt = r.URL, r.IsActive, r.Revision, r.CreatedAt, r.UpdatedAt
		out[i], ids[i], done[i] = Result{Route: got, Changed: true}, id, true
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if !slices.Contains(done, false) {
		return out, ids, nil
	}

	// The routes that already existed: lock them and decide as a single
	// create would (no-op or conflict).
	rows, err = tx.Query(ctx, batchExistingSQL, tenantID, c.services, c.envs, c.versions)
	if err != nil {
		return nil, nil, err
	}
	_, err = pgx.ForEachRow(rows, []any{&ord, &id, &r.URL, &r.IsActive, &r.Revision, &r.CreatedAt, &r.UpdatedAt}, func() error {
		i := ord - 1
		if done[i] {
			return nil // inserted above
		}
		m := ms[i]
		existing := route(i)
		existing.URL, existing.IsActive, existing.Revision, existing.CreatedAt, existing.UpdatedAt = r.URL, r.IsActive, r.Revision, r.CreatedAt, r.UpdatedAt
		if existing.URL != m.URL {
			return rejected{err: conflictf("routes[%d] (%s) exists with another url", i, m.Key)}
		}
		out[i], ids[i], done[i] = Result{Route: existing, PreviousURL: existing.URL, PreviousState: State(existing.IsActive)}, id, true
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if i := slices.Index(done, false); i >= 0 {
		// Neither inserted nor found: only possible if a parent row
		// vanished, which nothing does; retry rather than guess.
		return nil, nil, fmt.Errorf("routes[%d] (%s) was neither created nor found", i, ms[i].Key)
	}
	return out, ids, nil
}

// recordBatch records every element's outcome in the ledger, in one
// statement.
func recordBatch(ctx context.Context, tx pgx.Tx, ms []Mutation, out []Result, ids []int64) error {
	n := len(ms)
	eventIDs, services, envs, versions := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	outcomes, urls, prevURLs, prevStates := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	changedBy, workflowIDs := make([]string, n), make([]string, n)
	revisions, active, at := make([]int64, n), make([]bool, n), make([]time.Time, n)
	for i, m := range ms {
		r := out[i]
		eventIDs[i], services[i], envs[i], versions[i] = m.EventID, m.Key.Service, m.Key.Env, m.Key.Version
		outcomes[i] = string(OutcomeUnchanged)
		if r.Changed {
			outcomes[i] = string(OutcomeChanged)
		}
		// A changed row's time is its commit's; an unchanged one keeps the
		// time of the state it found, so a replay reports the same route.
		revisions[i], urls[i], active[i], at[i] = r.Route.Revision, r.Route.URL, r.Route.IsActive, r.Route.UpdatedAt
		prevURLs[i], prevStates[i], changedBy[i], workflowIDs[i] = r.PreviousURL, r.PreviousState, m.ChangedBy, m.WorkflowID
	}
	_, err := tx.Exec(ctx, batchLedgerSQL, ms[0].Key.Tenant, eventIDs, ids, services, envs, versions, outcomes,
		revisions, urls, active, prevURLs, prevStates, changedBy, workflowIDs, at)
	return err
}

// recordBatchRejection records the batch's rejection for every element, so
// a re-run of the batch is rejected the same way.
func recordBatchRejection(ctx context.Context, tx pgx.Tx, ms []Mutation, rejection error) error {
	n := len(ms)
	eventIDs, services, envs, versions, changedBy := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, m := range ms {
		eventIDs[i], services[i], envs[i], versions[i], changedBy[i] = m.EventID, m.Key.Service, m.Key.Env, m.Key.Version, m.ChangedBy
	}
	errType, msg := rejectionFields(rejection)
	_, err := tx.Exec(ctx, batchRejectionSQL, ms[0].Key.Tenant, eventIDs, services, envs, versions, changedBy,
		errType, msg, ms[0].WorkflowID)
	return err
}

func distinct(xs []string) []string {
	out := slices.Clone(xs)
	slices.Sort(out)
	return slices.Compact(out)
}
