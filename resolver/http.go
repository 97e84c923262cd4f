package resolver

import (
	"errors"
	"net/http"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/httperr"
	"github.com/trafficmanager/trafficmanager/internal/openapidoc"
	"github.com/trafficmanager/trafficmanager/routes"
)

// ResolvePrefix is the path prefix of the resolve endpoint.
const ResolvePrefix = "/api/v1/resolve/"

// Shared header values: assigning these slices instead of calling
// Header().Set keeps the hot path free of allocations. net/http only reads them.
var (
	jsonContentType = []string{"application/json; charset=utf-8"}
	xCache          = [...][]string{{"miss"}, {"hit"}, {"negative-hit"}, {"stale"}}
)

// Handler returns the resolver's HTTP service: the resolve endpoint,
// /healthz, /readyz, /health/resilience and /metrics (reg, which must hold
// the Metrics passed in Options). Unknown paths get API.md's error JSON.
// mw, when given, runs first on every request (tracing's otelgin when
// OTEL_* turns traces on; without it the resolve path has no middleware but
// the recovery).
func (r *Resolver) Handler(reg *prometheus.Registry, mw ...gin.HandlerFunc) http.Handler {
	gin.SetMode(gin.ReleaseMode) // no debug route dump on start
	g := gin.New()
	g.RedirectTrailingSlash = false
	g.RedirectFixedPath = false
	g.HandleMethodNotAllowed = true
	if len(mw) > 0 {
		g.Use(mw...)
	}
	g.Use(gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, v any) {
		r.log.Error("panic serving request", zap.Any("panic", v), zap.String("path", c.Request.URL.Path))
		httperr.Write(c, nil, errors.New("panic"))
	}))
	g.GET(ResolvePrefix+"*key", r.serveResolve)
	g.GET(WatchPrefix+":tenant", r.serveWatch)          // watch_http.go
	g.GET(openapidoc.Path, openapidoc.Handler(OpenAPI)) // openapi.go
	g.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	g.GET("/readyz", r.serveReady)
	g.GET("/health/resilience", r.serveResilience)
	if reg != nil {
		g.GET("/metrics", gin.WrapH(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
	}
	g.NoRoute(func(c *gin.Context) {
		httperr.Write(c, nil, &httperr.Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such endpoint"})
	})
	g.NoMethod(func(c *gin.Context) {
		httperr.Write(c, nil, &httperr.Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: "method not allowed"})
	})
	return g
}

// serveResolve answers GET /api/v1/resolve/{tenant}/{service}/{env}/{version}.
// The L1 key is the path suffix itself, so an L1 hit copies nothing.
func (r *Resolver) serveResolve(c *gin.Context) {
	start := time.Now()
	r.m.Requests.Inc()
	defer func() { r.m.Latency.Observe(time.Since(start).Seconds()) }()

	key := c.Param("key")[1:] // the catch-all value starts with '/'
	k := splitKey(key)
	if k.Version == "" && key != "" && key[len(key)-1] != '/' {
		r.serveSplitResolve(c, key, k) // no version: pick one by the split (split_http.go)
		return
	}
	if err := validate(k); err != nil {
		httperr.Write(c, r.log, err)
		return
	}
	a, err := r.resolve(c.Request.Context(), key, k, c.Request)
	if err != nil {
		httperr.Write(c, r.log, httperr.Unavailable("route lookup is unavailable; try again"))
		return
	}
	h := c.Writer.Header()
	h["X-Cache"] = xCache[a.src]
	if !a.Found() {
		httperr.Write(c, nil, httperr.RouteNotFound("route not found"))
		return
	}
	h["Content-Type"] = jsonContentType
	c.Writer.WriteHeader(http.StatusOK)
	_, _ = c.Writer.Write(a.e.body)
}

// validate checks the names in path order, so the error names the first bad field.
func validate(k routes.Key) error {
	if err := routes.ValidateName("tenant", k.Tenant); err != nil {
		return err
	}
	if err := routes.ValidateName("service", k.Service); err != nil {
		return err
	}
	if err := routes.ValidateName("env", k.Env); err != nil {
		return err
	}
	return routes.ValidateVersion(k.Version)
}

func (r *Resolver) serveReady(c *gin.Context) {
	switch {
	case r.draining.Load():
		httperr.Write(c, nil, httperr.Unavailable("draining"))
	case !r.ready.Load():
		httperr.Write(c, nil, httperr.Unavailable("not ready: route event consumer not subscribed yet"))
	default:
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	}
}

// Resilience is the body of /health/resilience.
type Resilience struct {
	CircuitBreakers map[string]BreakerStatus  `json:"circuit_breakers"`
	Bulkheads       map[string]BulkheadStatus `json:"bulkheads"`
	// RetryBudget is null: the read path never retries, it falls back.
	RetryBudget any `json:"retry_budget"`
}

// BreakerStatus is one circuit breaker's state and counts in its current state.
type BreakerStatus struct {
	State      string `json:"state"`
	Executions uint   `json:"executions"`
	Failures   uint   `json:"failures"`
	Successes  uint   `json:"successes"`
}

// BulkheadStatus is the occupancy of one bulkhead.
type BulkheadStatus struct {
	MaxConcurrency int   `json:"max_concurrency"`
	InUse          int64 `json:"in_use"`
}

// Resilience reports the circuit breakers and the Postgres lookup bulkhead.
func (r *Resolver) Resilience() Resilience {
	res := Resilience{
		CircuitBreakers: map[string]BreakerStatus{"postgres": breakerStatus(r.pgCB)},
		Bulkheads: map[string]BulkheadStatus{
			"postgres_lookups": {MaxConcurrency: r.maxInflight, InUse: r.inflight.Load()},
		},
	}
	if r.redis != nil {
		res.CircuitBreakers["redis"] = breakerStatus(r.redisCB)
	}
	return res
}

func breakerStatus(cb circuitbreaker.CircuitBreaker[any]) BreakerStatus {
	m := cb.Metrics()
	return BreakerStatus{State: cb.State().String(), Executions: m.Executions(), Failures: m.Failures(), Successes: m.Successes()}
}

func (r *Resolver) serveResilience(c *gin.Context) { c.JSON(http.StatusOK, r.Resilience()) }
