package api

import (
	"context"
	"time"

	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/resilience"
	"github.com/trafficmanager/trafficmanager/routes"
)

// guardedAudit runs audit queries in their own bulkhead behind the MongoDB
// breaker, so a slow or down audit store cannot starve route reads.
type guardedAudit struct {
	q   AuditQuerier
	res *resilience.Registry
	bh  *resilience.Bulkhead
}

func (g guardedAudit) do(ctx context.Context, fn func(context.Context) (audit.Result, error)) (audit.Result, error) {
	return resilience.Do(ctx, g.res, resilience.Call{Dependency: "mongodb", Bulkhead: g.bh, Timeout: 5 * time.Second}, fn)
}

func (g guardedAudit) ByRoute(ctx context.Context, r audit.RouteRef, p audit.Page) (audit.Result, error) {
	return g.do(ctx, func(ctx context.Context) (audit.Result, error) { return g.q.ByRoute(ctx, r, p) })
}

func (g guardedAudit) Recent(ctx context.Context, days int, p audit.Page) (audit.Result, error) {
	return g.do(ctx, func(ctx context.Context) (audit.Result, error) { return g.q.Recent(ctx, days, p) })
}

func (g guardedAudit) ByAction(ctx context.Context, a routes.Action, p audit.Page) (audit.Result, error) {
	return g.do(ctx, func(ctx context.Context) (audit.Result, error) { return g.q.ByAction(ctx, a, p) })
}

func (g guardedAudit) TimeRange(ctx context.Context, start, end time.Time, p audit.Page) (audit.Result, error) {
	return g.do(ctx, func(ctx context.Context) (audit.Result, error) { return g.q.TimeRange(ctx, start, end, p) })
}
