package worker

import (
	"net/http"
	"sync/atomic"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	sdkworker "go.temporal.io/sdk/worker"
)

// Process is a started worker and its health: ready while it polls its task
// queue, not ready from the moment Drain begins, so an orchestrator sees the
// drain (and does not count the instance as serving) while running
// activities finish.
type Process struct {
	w        sdkworker.Worker
	draining atomic.Bool
}

// Started wraps a worker whose Start has succeeded.
func Started(w sdkworker.Worker) *Process { return &Process{w: w} }

// Drain turns /readyz to 503, then stops polling and waits for running
// tasks (up to Options.StopTimeout). Calling it twice is safe: the second
// call waits for the first (the SDK's Stop is idempotent).
func (p *Process) Drain() {
	p.draining.Store(true)
	p.w.Stop()
}

// Ready reports whether the worker polls and is not draining.
func (p *Process) Ready() bool { return !p.draining.Load() }

// HealthHandler serves /healthz, /readyz, /health/resilience and, with reg,
// /metrics.
func (p *Process) HealthHandler(reg *prometheus.Registry) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	h := gin.New()
	h.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	h.GET("/readyz", func(c *gin.Context) {
		if !p.Ready() {
			c.JSON(http.StatusServiceUnavailable, gin.H{"error": gin.H{"code": "unavailable", "message": "draining"}})
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	})
	// The worker makes no calls outside Temporal's retries: its resilience is
	// the activity retry policies (docs/temporal.md) and the task slots.
	h.GET("/health/resilience", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{
			"circuit_breakers": gin.H{},
			"retry_budget":     nil,
			"bulkheads":        gin.H{"workflow_tasks": gin.H{"max_concurrency": 1000}, "local_activities": gin.H{"max_concurrency": 1000}},
			"retry_policies":   "docs/temporal.md: commit 100ms×2 up to 5s, side effects 200ms×2 up to 10s, unlimited attempts",
		})
	})
	if reg != nil {
		h.GET("/metrics", gin.WrapH(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	}
	return h
}
