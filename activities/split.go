package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/routes"
)

// The split activities use the same clients as the route ones: the route
// store, cache and publisher the worker builds (*routes.Store, *cache.Redis,
// *events.Publisher) also implement these, so Activities needs no new
// fields and the worker no new wiring.

// SplitStore applies split mutations (*routes.Store).
type SplitStore interface {
	ApplySplit(ctx context.Context, m routes.SplitMutation) (routes.SplitResult, error)
}

// SplitInvalidator drops a split's shared cache entry (*cache.Redis).
type SplitInvalidator interface {
	InvalidateSplit(ctx context.Context, k routes.SplitKey, revision int64) error
}

// SplitPublisher publishes split events (*events.Publisher).
type SplitPublisher interface {
	PublishSplit(ctx context.Context, e events.SplitEvent) error
}

var (
	_ SplitStore     = (*routes.Store)(nil)
	_ SplitPublisher = (*events.Publisher)(nil)
)

// CommitSplit applies a split mutation in Postgres, exactly once (the
// split ledger). Errors are classified as Commit's: a missing split is
// ErrTypeNotFound (the split API answers it as split_not_found), unknown
// or inactive versions ErrTypeInvalid, a failed If-Match
// ErrTypePreconditionFailed; anything else is retried.
func (a *Activities) CommitSplit(ctx context.Context, m routes.SplitMutation) (routes.SplitResult, error) {
	st, ok := a.Routes.(SplitStore)
	if !ok {
		return routes.SplitResult{}, temporal.NewNonRetryableApplicationError("the worker's route store cannot apply splits", "SplitsUnsupported", nil)
	}
	m.WorkflowID = workflowID(ctx)
	res, err := st.ApplySplit(ctx, m)
	if errors.Is(err, routes.ErrSplitNotFound) {
		return res, temporal.NewNonRetryableApplicationError("split not found", ErrTypeNotFound, nil)
	}
	return res, commitError(err)
}

// InvalidateSplit deletes the split's Redis entry and raises its floor.
func (a *Activities) InvalidateSplit(ctx context.Context, k routes.SplitKey, revision int64) error {
	if a.Cache == nil {
		return nil
	}
	inv, ok := a.Cache.(SplitInvalidator)
	if !ok {
		return nil // a cache without splits holds none
	}
	return inv.InvalidateSplit(ctx, k, revision)
}

// PublishSplit sends the split event to the route-events topic.
func (a *Activities) PublishSplit(ctx context.Context, e events.SplitEvent) error {
	p, ok := a.Events.(SplitPublisher)
	if !ok {
		return fmt.Errorf("publish split event %s: the publisher cannot publish split events", e.EventID)
	}
	return p.PublishSplit(ctx, e)
}

// AuditSplit inserts the split event's audit document; a duplicate is success.
func (a *Activities) AuditSplit(ctx context.Context, e events.SplitEvent) error {
	_, err := a.AuditLog.Insert(ctx, audit.FromSplitEvent(e, "workflow"))
	return err
}

// SplitReader reads a split's current state (*routes.Store).
type SplitReader interface {
	SplitState(ctx context.Context, k routes.SplitKey) (routes.Split, bool, error)
}

// CurrentSplit is ReadSplit's answer: the split's weights and revision, or
// Found false (Revision is then the last revision the split had, 0 when it
// never had one).
type CurrentSplit struct {
	Found    bool           `json:"found"`
	Weights  routes.Weights `json:"weights,omitempty"`
	Revision int64          `json:"revision"`
}

// ReadSplit reads the current split of k from Postgres: what a rollout
// records before its first step, to restore it on abort (a SplitMutation
// with IfRevision set to the revision the rollout wrote last, or a
// split_deleted when Found was false).
func (a *Activities) ReadSplit(ctx context.Context, k routes.SplitKey) (CurrentSplit, error) {
	rd, ok := a.Routes.(SplitReader)
	if !ok {
		return CurrentSplit{}, temporal.NewNonRetryableApplicationError("the worker's route store cannot read splits", "SplitsUnsupported", nil)
	}
	sp, found, err := rd.SplitState(ctx, k)
	if err != nil {
		return CurrentSplit{}, err
	}
	out := CurrentSplit{Found: found, Revision: sp.Revision}
	if found {
		out.Weights = sp.Weights
	}
	return out, nil
}
