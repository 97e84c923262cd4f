// Package activities holds the Temporal activities of a route mutation: the
// Postgres commit and the three side effects (cache invalidation, Kafka
// publish, audit insert). Each one is idempotent, so Temporal may retry it.
package activities

import (
	"context"
	"errors"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/routes"
)

// Error types of the non-retryable application errors a commit returns.
// The API maps them to 400, 404, 409 and 412.
const (
	ErrTypeInvalid            = "InvalidArgument"
	ErrTypeNotFound           = "RouteNotFound"
	ErrTypeConflict           = "Conflict"
	ErrTypePreconditionFailed = "PreconditionFailed"
)

// RouteStore applies a mutation, or creates a batch of routes, in one
// transaction.
type RouteStore interface {
	Apply(ctx context.Context, m routes.Mutation) (routes.Result, error)
	CreateBatch(ctx context.Context, ms []routes.Mutation) ([]routes.Result, error)
}

// Invalidator drops routes' shared cache entries.
type Invalidator interface {
	Invalidate(ctx context.Context, k routes.Key, revision int64) error
	InvalidateMany(ctx context.Context, changes []cache.Invalidation) error
}

// Publisher publishes route events.
type Publisher interface {
	Publish(ctx context.Context, e events.Event) error
	PublishMany(ctx context.Context, es []events.Event) error
}

// AuditWriter inserts one audit document per event id.
type AuditWriter interface {
	Insert(ctx context.Context, doc audit.Document) (bool, error)
	InsertMany(ctx context.Context, docs []audit.Document) (int, error)
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
	m.WorkflowID = workflowID(ctx)
	res, err := a.Routes.Apply(ctx, m)
	return res, commitError(err)
}

// CommitBatch creates a batch of routes in one transaction; errors are
// classified as Commit's are.
func (a *Activities) CommitBatch(ctx context.Context, ms []routes.Mutation) ([]routes.Result, error) {
	if id := workflowID(ctx); id != "" {
		for i := range ms {
			ms[i].WorkflowID = id
		}
	}
	res, err := a.Routes.CreateBatch(ctx, ms)
	return res, commitError(err)
}

// workflowID is the id of the workflow running the activity (recorded in
// the ledger), or "" outside one.
func workflowID(ctx context.Context) string {
	if !activity.IsActivity(ctx) {
		return ""
	}
	return activity.GetInfo(ctx).WorkflowExecution.ID
}

// commitError turns the store's domain errors into non-retryable
// application errors and leaves the rest retryable.
func commitError(err error) error {
	if err == nil {
		return nil
	}
	var inv *routes.InvalidError
	switch {
	case errors.As(err, &inv):
		return temporal.NewNonRetryableApplicationError(inv.Error(), ErrTypeInvalid, nil)
	case errors.Is(err, routes.ErrInvalid):
		return temporal.NewNonRetryableApplicationError("invalid argument", ErrTypeInvalid, nil)
	case errors.Is(err, routes.ErrNotFound):
		return temporal.NewNonRetryableApplicationError("route not found", ErrTypeNotFound, nil)
	case errors.Is(err, routes.ErrPreconditionFailed):
		msg := "route revision does not match If-Match"
		var pe *routes.PreconditionError
		if errors.As(err, &pe) {
			msg = pe.Reason
		}
		return temporal.NewNonRetryableApplicationError(msg, ErrTypePreconditionFailed, nil)
	case errors.Is(err, routes.ErrConflict):
		msg := "route already exists with another url"
		var ce *routes.ConflictError
		if errors.As(err, &ce) {
			msg = ce.Reason // names the route in a batch
		}
		return temporal.NewNonRetryableApplicationError(msg, ErrTypeConflict, nil)
	}
	return err
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

// InvalidateMany drops the cached answers of a batch's changed routes.
func (a *Activities) InvalidateMany(ctx context.Context, changes []cache.Invalidation) error {
	if a.Cache == nil {
		return nil
	}
	return a.Cache.InvalidateMany(ctx, changes)
}

// PublishMany sends a batch's events; a retry re-sends all of them with the
// same event ids.
func (a *Activities) PublishMany(ctx context.Context, es []events.Event) error {
	return a.Events.PublishMany(ctx, es)
}

// AuditMany inserts a batch's audit documents, skipping those already there.
func (a *Activities) AuditMany(ctx context.Context, es []events.Event) error {
	docs := make([]audit.Document, len(es))
	for i, e := range es {
		docs[i] = audit.FromEvent(e, "workflow")
	}
	_, err := a.AuditLog.InsertMany(ctx, docs)
	return err
}
