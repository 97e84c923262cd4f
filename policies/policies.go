// Package policies holds the tenants' approval policies: which envs need a
// second principal's approval before a write applies, and how long such a
// write waits for one. Policies live in Postgres (Store); the write path
// reads them from an in-memory Snapshot refreshed in the background, so a
// write needs no Postgres query (and is accepted while Postgres is away).
package policies

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trafficmanager/trafficmanager/routes"
)

// Bounds of a policy.
const (
	// DefaultApprovalTimeout is the approval timeout of a tenant without a
	// policy, and of a policy that names none.
	DefaultApprovalTimeout = 72 * time.Hour
	MinApprovalTimeout     = time.Minute
	MaxApprovalTimeout     = 30 * 24 * time.Hour
	// MaxEnvs bounds require_approval's env list.
	MaxEnvs = 100
)

// Policy is one tenant's approval policy.
type Policy struct {
	Tenant string
	// RequireApprovalEnvs lists the envs whose writes wait for approval,
	// sorted and without duplicates.
	RequireApprovalEnvs []string
	ApprovalTimeout     time.Duration
	// UpdatedAt and UpdatedBy are zero for a tenant without a stored policy.
	UpdatedAt time.Time
	UpdatedBy string
}

// Default is the policy of a tenant that has none: no approvals.
func Default(tenant string) Policy {
	return Policy{Tenant: tenant, RequireApprovalEnvs: []string{}, ApprovalTimeout: DefaultApprovalTimeout}
}

// RequiresApproval reports whether a write to a route in env waits for
// approval.
func (p Policy) RequiresApproval(env string) bool {
	return slices.Contains(p.RequireApprovalEnvs, env)
}

// Validate checks p and normalizes its env list (sorted, deduplicated); a
// zero timeout becomes DefaultApprovalTimeout.
func (p *Policy) Validate() error {
	if err := routes.ValidateName("tenant", p.Tenant); err != nil {
		return err
	}
	if len(p.RequireApprovalEnvs) > MaxEnvs {
		return routes.Invalid("require_approval.envs", fmt.Sprintf("must list at most %d envs", MaxEnvs))
	}
	for _, env := range p.RequireApprovalEnvs {
		if err := routes.ValidateName("require_approval.envs", env); err != nil {
			return err
		}
	}
	envs := slices.Clone(p.RequireApprovalEnvs)
	slices.Sort(envs)
	p.RequireApprovalEnvs = slices.Compact(envs)
	if p.RequireApprovalEnvs == nil {
		p.RequireApprovalEnvs = []string{}
	}
	if p.ApprovalTimeout == 0 {
		p.ApprovalTimeout = DefaultApprovalTimeout
	}
	if p.ApprovalTimeout < MinApprovalTimeout || p.ApprovalTimeout > MaxApprovalTimeout {
		return routes.Invalid("approval_timeout", "must be from 1m to 720h (30 days)")
	}
	return nil
}

// Store keeps policies in Postgres (table tenant_policies).
type Store struct{ pool *pgxpool.Pool }

// NewStore returns the policy store.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

const columns = `tenant, require_approval_envs, approval_timeout_seconds, updated_at, updated_by`

func scan(row pgx.Row) (Policy, error) {
	var p Policy
	var secs int64
	err := row.Scan(&p.Tenant, &p.RequireApprovalEnvs, &secs, &p.UpdatedAt, &p.UpdatedBy)
	p.ApprovalTimeout = time.Duration(secs) * time.Second
	if p.RequireApprovalEnvs == nil {
		p.RequireApprovalEnvs = []string{}
	}
	return p, err
}

// Get returns tenant's policy, or Default(tenant) when it has none.
func (s *Store) Get(ctx context.Context, tenant string) (Policy, error) {
	p, err := scan(s.pool.QueryRow(ctx, `SELECT `+columns+` FROM tenant_policies WHERE tenant = $1`, tenant))
	if errors.Is(err, pgx.ErrNoRows) {
		return Default(tenant), nil
	}
	if err != nil {
		return Policy{}, fmt.Errorf("get policy of %s: %w", tenant, err)
	}
	return p, nil
}

// Put validates and stores p (replacing the tenant's policy) and returns
// it as stored.
func (s *Store) Put(ctx context.Context, p Policy) (Policy, error) {
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	out, err := scan(s.pool.QueryRow(ctx, `INSERT INTO tenant_policies (`+columns+`)
		VALUES ($1, $2, $3, now(), $4)
		ON CONFLICT (tenant) DO UPDATE SET require_approval_envs = EXCLUDED.require_approval_envs,
			approval_timeout_seconds = EXCLUDED.approval_timeout_seconds,
			updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by
		RETURNING `+columns, p.Tenant, p.RequireApprovalEnvs, int64(p.ApprovalTimeout/time.Second), p.UpdatedBy))
	if err != nil {
		return Policy{}, fmt.Errorf("put policy of %s: %w", p.Tenant, err)
	}
	return out, nil
}

// All returns every stored policy. A database without the table (its
// migration not applied yet) has no policies: writes must not all fail
// because of a feature nobody has used.
func (s *Store) All(ctx context.Context) ([]Policy, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM tenant_policies`)
	if err == nil {
		var all []Policy
		all, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Policy, error) { return scan(r) })
		if err == nil {
			return all, nil
		}
	}
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == undefinedTable {
		return nil, nil
	}
	return nil, fmt.Errorf("list policies: %w", err)
}

// undefinedTable is SQLSTATE 42P01.
const undefinedTable = "42P01"
