// Package activities holds the Temporal activities of a route mutation: the
// Postgres commit and the three side effects (cache invalidation, Kafka
// publish, audit insert). Each one is idempotent, so Temporal may retry it.
package activities

import (
	"context"
	"errors"

	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/routes"
)

// Error types of the non-retryable application errors a commit returns.
// The API maps them to 400, 404 and 409.
const (
	ErrTypeInvalid  = "InvalidArgument"
	ErrTypeNotFound = "RouteNotFound"
	ErrTypeConflict = "Conflict"
)

// RouteStore applies a mutation in one transaction.
type RouteStore interface {
	Apply(ctx context.Context, m routes.Mutation) (routes.Result, error)
}

// Invalidator drops a route's shared cache entry.
type Invalidator interface {
	Invalidate(ctx context.Context, k routes.Key, revision int64) error
}

// Publisher publishes a route event.
type Publisher interface {
	Publish(ctx context.Context, e events.Event) error
}

// AuditWriter inserts one audit document per event id.
type AuditWriter interface {
	Insert(ctx context.Context, doc audit.Document) (bool, error)
}

// Activities holds the clients the activities use. Built in worker/; a nil
// Cache means no shared cache is configured and invalidation is a no-op.
type Activities struct {
	Routes   RouteStore
	Cache    Invalidator
	Events   Publisher
	AuditLog AuditWriter
	Log      *zap.Logger
}

// Commit applies the mutation in Postgres. Validation, not-found and conflict
// are permanent: returned as non-retryable errors so the caller gets a 4xx
// at once. Anything else (Postgres unreachable, serialization failures) is
// retried by the workflow's policy.
func (a *Activities) Commit(ctx context.Context, m routes.Mutation) (routes.Result, error) {
	res, err := a.Routes.Apply(ctx, m)
	if err == nil {
		return res, nil
	}
	var inv *routes.InvalidError
	switch {
	case errors.As(err, &inv):
		return res, temporal.NewNonRetryableApplicationError(inv.Error(), ErrTypeInvalid, nil)
	case errors.Is(err, routes.ErrInvalid):
		return res, temporal.NewNonRetryableApplicationError("invalid argument", ErrTypeInvalid, nil)
	case errors.Is(err, routes.ErrNotFound):
		return res, temporal.NewNonRetryableApplicationError("route not found", ErrTypeNotFound, nil)
	case errors.Is(err, routes.ErrConflict):
		return res, temporal.NewNonRetryableApplicationError("route already exists with another url", ErrTypeConflict, nil)
	}
	return res, err
}

// Invalidate deletes the route's Redis entry (positive or negative) and
// raises its revision floor.
func (a *Activities) Invalidate(ctx context.Context, k routes.Key, revision int64) error {
	if a.Cache == nil {
		return nil
	}
	return a.Cache.Invalidate(ctx, k, revision)
}

// Publish sends the event to the route-events topic. A retry re-sends the
// same event id; consumers are idempotent.
func (a *Activities) Publish(ctx context.Context, e events.Event) error {
	return a.Events.Publish(ctx, e)
}

// Audit inserts the event's audit document; a duplicate is success.
func (a *Activities) Audit(ctx context.Context, e events.Event) error {
	_, err := a.AuditLog.Insert(ctx, audit.FromEvent(e, "workflow"))
	return err
}
