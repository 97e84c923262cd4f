package routes

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// Splits: which share of an env's unversioned resolves each version gets.
// A split is changed by mutations with the same exactly-once rules as
// routes (SplitMutation, split_ledger) and is stored next to the routes
// because its versions must be active routes: both sides check that under
// the routes' row locks (see docs/splits.md, "Deactivating a version").

// MaxSplitVersions is the most versions one split may name.
const MaxSplitVersions = 10

// The actions of split mutations.
const (
	ActionSplitUpdated Action = "split_updated"
	ActionSplitDeleted Action = "split_deleted"
)

// ErrSplitNotFound says the env has no split (GET, DELETE, or a resolve
// that needs one). It is not ErrNotFound: the API answers split_not_found.
var ErrSplitNotFound = errors.New("split not found")

// SplitKey names the split of one env.
type SplitKey struct {
	Tenant  string `json:"tenant"`
	Service string `json:"service"`
	Env     string `json:"env"`
}

// String renders the key as "{tenant}:{service}:{env}".
func (k SplitKey) String() string { return k.Tenant + ":" + k.Service + ":" + k.Env }

// Route returns the key of version v in the split's env.
func (k SplitKey) Route(v string) Key {
	return Key{Tenant: k.Tenant, Service: k.Service, Env: k.Env, Version: v}
}

// Validate checks the names as routes' names are checked.
func (k SplitKey) Validate() error {
	if err := ValidateName("tenant", k.Tenant); err != nil {
		return err
	}
	if err := ValidateName("service", k.Service); err != nil {
		return err
	}
	return ValidateName("env", k.Env)
}

// Weights maps a version to its integer percent of the traffic.
type Weights map[string]int

// Versions returns the split's versions in name order (the deterministic
// order every consumer of a split iterates in).
func (w Weights) Versions() []string { return slices.Sorted(maps.Keys(w)) }

// Equal reports whether w and o assign the same weights.
func (w Weights) Equal(o Weights) bool { return maps.Equal(w, o) }

// ValidateWeights checks a split's weights: 1 to MaxSplitVersions valid
// version names, each weight an integer from 0 to 100, summing to 100.
func ValidateWeights(w Weights) error {
	switch {
	case len(w) == 0:
		return Invalid("weights", "must name at least one version")
	case len(w) > MaxSplitVersions:
		return Invalid("weights", "must name at most "+strconv.Itoa(MaxSplitVersions)+" versions")
	}
	sum := 0
	for _, v := range w.Versions() {
		if err := ValidateVersion(v); err != nil {
			return Invalid("weights", fmt.Sprintf("version %q: %s", truncateName(v), err.(*InvalidError).Reason))
		}
		n := w[v]
		if n < 0 || n > 100 {
			return Invalid("weights", fmt.Sprintf("weight of %s must be an integer from 0 to 100", v))
		}
		sum += n
	}
	if sum != 100 {
		return Invalid("weights", fmt.Sprintf("must sum to 100, not %d", sum))
	}
	return nil
}

func truncateName(s string) string {
	if len(s) > 70 {
		return s[:70] + "..."
	}
	return s
}

// Split is a split as stored in PostgreSQL.
type Split struct {
	Tenant   string  `json:"tenant"`
	Service  string  `json:"service"`
	Env      string  `json:"env"`
	Weights  Weights `json:"weights"`
	Revision int64   `json:"revision"`
	// Slots is the slot table (RebalanceSlots); not part of the API.
	Slots     []byte    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Key returns the split's key.
func (s Split) Key() SplitKey { return SplitKey{Tenant: s.Tenant, Service: s.Service, Env: s.Env} }

// SplitMutation is one requested change of one split: set its weights
// (ActionSplitUpdated, creating it when missing) or delete it.
type SplitMutation struct {
	Action    Action   `json:"action"`
	Key       SplitKey `json:"key"`
	Weights   Weights  `json:"weights,omitempty"` // split_updated
	ChangedBy string   `json:"changed_by,omitempty"`
	// EventID identifies the mutation; applied again with the same id it
	// reports the outcome recorded the first time and changes nothing.
	EventID    string `json:"event_id,omitempty"`
	WorkflowID string `json:"workflow_id,omitempty"`
	// IfRevision, when set, is the revision the split must have (If-Match),
	// checked in the commit's transaction.
	IfRevision int64 `json:"if_revision,omitempty"`
}

// Validate checks the mutation's names and weights.
func (m SplitMutation) Validate() error {
	switch m.Action {
	case ActionSplitUpdated:
		if err := ValidateWeights(m.Weights); err != nil {
			return err
		}
	case ActionSplitDeleted:
		if len(m.Weights) > 0 {
			return Invalid("weights", "a delete takes no weights")
		}
	default:
		return Invalid("action", "must be split_updated or split_deleted")
	}
	if err := m.Key.Validate(); err != nil {
		return err
	}
	if m.IfRevision < 0 {
		return Invalid("if_revision", "must be a revision (1 or more)")
	}
	if len(m.ChangedBy) > 256 {
		return Invalid("changed_by", "must be at most 256 bytes")
	}
	return nil
}

// SplitResult is the outcome of an applied split mutation. After a delete
// Split holds the key, no weights, and the revision the delete made.
type SplitResult struct {
	Split   Split `json:"split"`
	Changed bool  `json:"changed"`
	// PreviousWeights are the weights before the change (nil: no split).
	PreviousWeights Weights `json:"previous_weights,omitempty"`
}

// SplitRevision is one revision of a split as its ledger recorded it.
type SplitRevision struct {
	Revision   int64     `json:"revision"`
	Action     Action    `json:"action"`
	Weights    Weights   `json:"weights"`
	ChangedBy  string    `json:"changed_by"`
	EventID    string    `json:"event_id"`
	WorkflowID string    `json:"workflow_id"`
	OccurredAt time.Time `json:"occurred_at"`
}

// SplitRecorded is a split mutation's outcome as the ledger recorded it.
type SplitRecorded struct {
	EventID string
	Outcome Outcome
	Result  SplitResult
	// Err is the recorded rejection, nil otherwise.
	Err error
}
