// Package auth is tenant-scoped bearer-token authentication: tokens stored
// hashed in Postgres, roles, tenant scopes, and a short-lived in-process
// cache so the hot path makes no Postgres query per request.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trafficmanager/trafficmanager/routes"
)

// Role is what a token may do.
type Role string

// Roles, from most to least powerful.
const (
	RoleAdmin    Role = "admin"    // every tenant, token management
	RoleWriter   Role = "writer"   // mutations and reads for its tenants
	RoleReader   Role = "reader"   // reads and audit for its tenants
	RoleApprover Role = "approver" // reads, audit and approve/reject for its tenants
	RoleResolver Role = "resolver" // resolve only (TM_RESOLVER_AUTH=on)
)

// ParseRole validates a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleAdmin, RoleWriter, RoleReader, RoleApprover, RoleResolver:
		return r, nil
	}
	return "", routes.Invalid("role", "must be admin, writer, reader, approver or resolver")
}

// Principal is an authenticated token.
type Principal struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Role       Role       `json:"role"`
	TenantList []string   `json:"tenants"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// Allows reports whether the principal may read (write=false) or mutate
// (write=true) tenant's routes.
func (p *Principal) Allows(tenant string, write bool) bool {
	switch p.Role {
	case RoleAdmin:
		return true
	case RoleWriter:
		return slices.Contains(p.TenantList, tenant)
	case RoleReader, RoleApprover:
		return !write && slices.Contains(p.TenantList, tenant)
	}
	return false // a resolver token only resolves (see Resolves)
}

// Approves reports whether the principal may approve or reject tenant's
// mutations that wait for approval: an admin, or an approver of the
// tenant. A writer never approves, not even its own tenant's changes (four
// eyes: whoever may change a route alone is not the second pair).
func (p *Principal) Approves(tenant string) bool {
	switch p.Role {
	case RoleAdmin:
		return true
	case RoleApprover:
		return slices.Contains(p.TenantList, tenant)
	}
	return false
}

// Resolves reports whether the principal may resolve tenant's routes on a
// resolver started with TM_RESOLVER_AUTH=on.
func (p *Principal) Resolves(tenant string) bool {
	return p.Role == RoleAdmin || slices.Contains(p.TenantList, tenant)
}

// Tenants returns the tenants the principal sees through the api; nil
// means all (admin).
func (p *Principal) Tenants() []string {
	switch p.Role {
	case RoleAdmin:
		return nil
	case RoleResolver:
		return []string{}
	}
	return p.TenantList
}

// Errors of token lookups.
var (
	ErrUnknownToken = errors.New("unknown or revoked token")
	ErrNoToken      = errors.New("token not found")
)

// Hash returns the stored form of a secret.
func Hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// NewSecret returns a high-entropy token: "tm_" and 32 random bytes in hex.
func NewSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return "tm_" + hex.EncodeToString(b)
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "tok_" + hex.EncodeToString(b)
}

// MaxNameLen is the longest token name, in characters.
const MaxNameLen = 128

// ValidateName checks a token name: 1–MaxNameLen characters of valid UTF-8
// without control characters. The name becomes changed_by in events, audit
// documents and logs, and Postgres refuses NUL in text (SQLSTATE 22021), so
// it is checked here rather than failing as a 500 at the insert.
func ValidateName(name string) error {
	if name == "" {
		return routes.Invalid("name", "is required")
	}
	if !utf8.ValidString(name) {
		return routes.Invalid("name", "must be valid UTF-8")
	}
	if utf8.RuneCountInString(name) > MaxNameLen {
		return routes.Invalid("name", fmt.Sprintf("must be at most %d characters", MaxNameLen))
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return routes.Invalid("name", "must not contain control characters")
		}
	}
	return nil
}

// Store keeps tokens in Postgres.
type Store struct{ pool *pgxpool.Pool }

// NewStore returns the token store.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

const principalColumns = `id, name, role, tenants, created_at, last_used_at, revoked_at`

func scanPrincipal(row pgx.Row) (*Principal, error) {
	var p Principal
	err := row.Scan(&p.ID, &p.Name, &p.Role, &p.TenantList, &p.CreatedAt, &p.LastUsedAt, &p.RevokedAt)
	if p.TenantList == nil {
		p.TenantList = []string{}
	}
	return &p, err
}

// Create stores a new token and returns it with its secret, which is never
// retrievable again.
func (s *Store) Create(ctx context.Context, name string, role Role, tenants []string) (*Principal, string, error) {
	secret := NewSecret()
	p, err := s.insert(ctx, name, role, tenants, secret)
	return p, secret, err
}

func (s *Store) insert(ctx context.Context, name string, role Role, tenants []string, secret string) (*Principal, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return nil, err
	}
	if role != RoleAdmin && len(tenants) == 0 {
		return nil, routes.Invalid("tenants", "a non-admin token needs at least one tenant")
	}
	if role == RoleAdmin && len(tenants) > 0 {
		// Allows ignores an admin's tenants: storing them would promise a
		// scope that is not enforced.
		return nil, routes.Invalid("tenants", "admin tokens are not tenant-scoped; omit tenants")
	}
	for _, t := range tenants {
		if err := routes.ValidateName("tenants", t); err != nil {
			return nil, err
		}
	}
	if tenants == nil {
		tenants = []string{}
	}
	p, err := scanPrincipal(s.pool.QueryRow(ctx, `INSERT INTO api_tokens (id, name, role, tenants, token_hash)
		VALUES ($1, $2, $3, $4, $5) RETURNING `+principalColumns, newID(), name, role, tenants, Hash(secret)))
	if err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}
	return p, nil
}

// Ensure makes sure an admin token with this secret exists (the bootstrap
// token), creating it when missing.
func (s *Store) Ensure(ctx context.Context, name, secret string) error {
	if len(secret) < 16 {
		return errors.New("TM_BOOTSTRAP_ADMIN_TOKEN must be at least 16 characters")
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM api_tokens WHERE token_hash = $1)`, Hash(secret)).Scan(&exists); err != nil {
		return fmt.Errorf("bootstrap token: %w", err)
	}
	if exists {
		return nil
	}
	_, err := s.insert(ctx, name, RoleAdmin, nil, secret)
	return err
}

// List returns every token (never secrets), newest first; tenant-scoped
// callers are filtered by the API.
func (s *Store) List(ctx context.Context) ([]*Principal, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+principalColumns+` FROM api_tokens ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Principal, error) { return scanPrincipal(r) })
}

// Revoke marks a token revoked; revoking twice is fine.
func (s *Store) Revoke(ctx context.Context, id string) (*Principal, error) {
	p, err := scanPrincipal(s.pool.QueryRow(ctx, `UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, now())
		WHERE id = $1 RETURNING `+principalColumns, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNoToken
	}
	if err != nil {
		return nil, fmt.Errorf("revoke token: %w", err)
	}
	return p, nil
}

// Lookup returns the active token with this secret.
func (s *Store) Lookup(ctx context.Context, secret string) (*Principal, error) {
	p, err := scanPrincipal(s.pool.QueryRow(ctx, `SELECT `+principalColumns+` FROM api_tokens
		WHERE token_hash = $1 AND revoked_at IS NULL`, Hash(secret)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrUnknownToken
	}
	if err != nil {
		return nil, fmt.Errorf("look up token: %w", err)
	}
	return p, nil
}

// Touch records that a token was used.
func (s *Store) Touch(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `UPDATE api_tokens SET last_used_at = now() WHERE id = $1`, id)
	return err
}
