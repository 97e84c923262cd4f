// Package routes holds the route model, its validation rules and the
// PostgreSQL store that is the source of truth for every route.
package routes

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Key names one route: tenant, service, environment and version.
type Key struct {
	Tenant  string `json:"tenant"`
	Service string `json:"service"`
	Env     string `json:"env"`
	Version string `json:"version"`
}

// String renders the key as "{tenant}:{service}:{env}:{version}", the Kafka
// message key and the suffix of the Redis cache key.
func (k Key) String() string {
	return k.Tenant + ":" + k.Service + ":" + k.Env + ":" + k.Version
}

// Route is a route as stored in PostgreSQL.
type Route struct {
	Tenant    string    `json:"tenant"`
	Service   string    `json:"service"`
	Env       string    `json:"env"`
	Version   string    `json:"version"`
	URL       string    `json:"url"`
	IsActive  bool      `json:"is_active"`
	Revision  int64     `json:"revision"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Key returns the route's key.
func (r Route) Key() Key {
	return Key{Tenant: r.Tenant, Service: r.Service, Env: r.Env, Version: r.Version}
}

// Action is the kind of change a mutation makes.
type Action string

// The mutation actions. A rollback restores the url and active state of an
// earlier revision (Mutation.RollbackTo) as a new revision.
const (
	ActionCreated     Action = "created"
	ActionUpdated     Action = "updated"
	ActionActivated   Action = "activated"
	ActionDeactivated Action = "deactivated"
	ActionRolledBack  Action = "rolled_back"
	// ActionReverted restores the state before a time-boxed change
	// (revert_after); like a rollback it carries RollbackTo, and its
	// IfRevision is the revision the change produced.
	ActionReverted Action = "reverted"
)

// restores reports whether the action restores an earlier revision
// (RollbackTo): a rollback, or the revert of a time-boxed change.
func (a Action) restores() bool { return a == ActionRolledBack || a == ActionReverted }

// ParseAction returns the action named s, or an invalid-argument error.
func ParseAction(s string) (Action, error) {
	switch a := Action(s); a {
	case ActionCreated, ActionUpdated, ActionActivated, ActionDeactivated, ActionRolledBack, ActionReverted:
		return a, nil
	}
	return "", Invalid("action", "must be one of created, updated, activated, deactivated, rolled_back, reverted")
}

// Mutation is one requested change of one route.
type Mutation struct {
	Action    Action `json:"action"`
	Key       Key    `json:"key"`
	URL       string `json:"url,omitempty"`    // created, updated
	Active    bool   `json:"active,omitempty"` // created: initial state
	ChangedBy string `json:"changed_by,omitempty"`
	// EventID identifies the mutation. Applied again with the same event id
	// (a re-run of its workflow) it reports the outcome the ledger recorded
	// the first time and changes nothing, whatever happened since.
	EventID string `json:"event_id,omitempty"`
	// WorkflowID names the workflow that applies it (recorded in the ledger).
	WorkflowID string `json:"workflow_id,omitempty"`
	// IfRevision, when set, is the revision the route must have when the
	// change applies (HTTP If-Match): checked under the row lock, in the
	// commit's transaction; otherwise the mutation is rejected with
	// ErrPreconditionFailed and changes nothing.
	IfRevision int64 `json:"if_revision,omitempty"`
	// RollbackTo is the revision a rollback or revert restores (rolled_back
	// and reverted only).
	RollbackTo int64 `json:"rollback_to,omitempty"`
}

// Validate checks the mutation's names and URL as API.md's "Names" says.
func (m Mutation) Validate() error {
	if _, err := ParseAction(string(m.Action)); err != nil {
		return err
	}
	if err := m.Key.Validate(); err != nil {
		return err
	}
	if m.Action == ActionCreated || m.Action == ActionUpdated {
		if err := ValidateURL(m.URL); err != nil {
			return err
		}
	}
	if m.Action.restores() != (m.RollbackTo != 0) || m.RollbackTo < 0 {
		if m.Action.restores() {
			return Invalid("revision", "must be a revision of the route (1 or more)")
		}
		return Invalid("rollback_to", "applies only to a rollback")
	}
	if m.IfRevision < 0 {
		return Invalid("if_revision", "must be a revision (1 or more)")
	}
	if m.IfRevision != 0 && m.Action == ActionCreated {
		return Invalid("if_revision", "applies only to a change of an existing route")
	}
	if len(m.ChangedBy) > 256 {
		return Invalid("changed_by", "must be at most 256 bytes")
	}
	return nil
}

// Result is the outcome of an applied mutation.
type Result struct {
	Route Route `json:"route"`
	// Changed is false when the route already was in the requested state.
	Changed bool `json:"changed"`
	// PreviousURL and PreviousState describe the route before the change;
	// both are empty for a created route.
	PreviousURL   string `json:"previous_url"`
	PreviousState string `json:"previous_state"`
}

// State renders an active flag as the audit trail's "active"/"inactive".
func State(active bool) string {
	if active {
		return "active"
	}
	return "inactive"
}

// Domain errors. The store translates database errors into these; the API
// maps them to HTTP statuses in one place.
var (
	ErrNotFound = errors.New("route not found")
	ErrConflict = errors.New("route conflict")
	ErrInvalid  = errors.New("invalid argument")
	// ErrPreconditionFailed says the route's revision was not the one the
	// mutation required (If-Match).
	ErrPreconditionFailed = errors.New("route revision precondition failed")
)

// InvalidError is a validation failure naming the offending field.
type InvalidError struct {
	Field  string
	Reason string
}

func (e *InvalidError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Reason) }

// Is makes errors.Is(err, ErrInvalid) true for every InvalidError.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// Invalid returns an InvalidError for field.
func Invalid(field, reason string) error { return &InvalidError{Field: field, Reason: reason} }

// ConflictError says a route exists with another URL. Reason is written
// for the caller: it names the route when a batch holds several.
type ConflictError struct{ Reason string }

func (e *ConflictError) Error() string { return "route conflict: " + e.Reason }

// Is makes errors.Is(err, ErrConflict) true for every ConflictError.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// PreconditionError says the route's current revision differs from the
// mutation's IfRevision.
type PreconditionError struct{ Reason string }

func (e *PreconditionError) Error() string { return "precondition failed: " + e.Reason }

// Is makes errors.Is(err, ErrPreconditionFailed) true for every PreconditionError.
func (e *PreconditionError) Is(target error) bool { return target == ErrPreconditionFailed }

func conflictf(format string, args ...any) error {
	return &ConflictError{Reason: fmt.Sprintf(format, args...)}
}

func trimmed(s string) bool { return strings.TrimSpace(s) == s }
