// Package observability builds the zap logger, the Prometheus registry and the
// metric sets every process exposes under the seed's names.
package observability

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// NewLogger returns a JSON (production) or console (dev) logger at level.
func NewLogger(level, format string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	cfg := zap.NewProductionConfig()
	if format == "console" {
		cfg = zap.NewDevelopmentConfig()
		cfg.DisableStacktrace = true
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	return cfg.Build()
}

// NewRegistry returns a registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// WriteMetrics are the write path's metrics, labelled by action.
type WriteMetrics struct {
	Requests *prometheus.CounterVec
	Success  *prometheus.CounterVec
	Failure  *prometheus.CounterVec // labels: action, code
	Latency  *prometheus.HistogramVec
}

// NewWriteMetrics registers the write metrics on reg.
func NewWriteMetrics(reg prometheus.Registerer) *WriteMetrics {
	m := &WriteMetrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "write_requests_total", Help: "Route mutation requests received."}, []string{"action"}),
		Success:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "write_success_total", Help: "Route mutations acknowledged (committed, no-op or accepted)."}, []string{"action"}),
		Failure:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "write_failure_total", Help: "Route mutations that failed, by error code."}, []string{"action", "code"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "write_latency_seconds", Help: "Time from request to commit acknowledgement.",
			Buckets: []float64{.005, .01, .02, .03, .05, .075, .1, .2, .5, 1, 2, 5, 10},
		}, []string{"action"}),
	}
	reg.MustRegister(m.Requests, m.Success, m.Failure, m.Latency)
	return m
}

// ResolveMetrics are the read path's metrics.
type ResolveMetrics struct {
	Requests         prometheus.Counter
	CacheHit         prometheus.Counter
	CacheMiss        prometheus.Counter
	NegativeCacheHit prometheus.Counter
	Stale            prometheus.Counter
	TierHits         *prometheus.CounterVec // tier: l1, redis
	Latency          prometheus.Histogram
	DBQueries        prometheus.Counter
	Invalidations    prometheus.Counter
	Rejected         prometheus.Counter
}

// NewResolveMetrics registers the read metrics on reg.
func NewResolveMetrics(reg prometheus.Registerer) *ResolveMetrics {
	m := &ResolveMetrics{
		Requests:         prometheus.NewCounter(prometheus.CounterOpts{Name: "resolve_requests_total", Help: "Resolve requests."}),
		CacheHit:         prometheus.NewCounter(prometheus.CounterOpts{Name: "resolve_cache_hit_total", Help: "Resolves answered positively from a cache tier."}),
		CacheMiss:        prometheus.NewCounter(prometheus.CounterOpts{Name: "resolve_cache_miss_total", Help: "Resolves that reached Postgres."}),
		NegativeCacheHit: prometheus.NewCounter(prometheus.CounterOpts{Name: "resolve_negative_cache_hit_total", Help: "Resolves answered 404 from a negative cache entry."}),
		Stale:            prometheus.NewCounter(prometheus.CounterOpts{Name: "resolve_stale_total", Help: "Resolves served past their TTL because Postgres was unreachable."}),
		TierHits:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "resolve_tier_hit_total", Help: "Cache hits (positive or negative) per tier."}, []string{"tier"}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "resolve_latency_seconds", Help: "Resolve latency.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5},
		}),
		DBQueries:     prometheus.NewCounter(prometheus.CounterOpts{Name: "resolve_db_queries_total", Help: "Postgres lookups made by the resolver."}),
		Invalidations: prometheus.NewCounter(prometheus.CounterOpts{Name: "resolve_invalidations_total", Help: "Route events applied to the caches."}),
		Rejected:      prometheus.NewCounter(prometheus.CounterOpts{Name: "resolve_rejected_total", Help: "Resolves refused with 503 because the lookup bulkhead was full."}),
	}
	reg.MustRegister(m.Requests, m.CacheHit, m.CacheMiss, m.NegativeCacheHit, m.Stale, m.TierHits, m.Latency, m.DBQueries, m.Invalidations, m.Rejected)
	return m
}
