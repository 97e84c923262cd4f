package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/console"
	"github.com/trafficmanager/trafficmanager/internal/openapidoc"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/resilience"
	"github.com/trafficmanager/trafficmanager/routes"
)

// RouteReader is what the API reads routes through (routes.Store).
type RouteReader interface {
	Get(ctx context.Context, k routes.Key) (routes.Route, error)
	List(ctx context.Context, f routes.Filter) (routes.Page, error)
	History(ctx context.Context, k routes.Key, limit int, cursor string) (routes.HistoryPage, error)
}

// Ledger reads the recorded outcomes of mutations (routes.Store).
type Ledger interface {
	Recorded(ctx context.Context, eventIDs ...string) ([]routes.Recorded, error)
}

// Pinger checks that Postgres answers (*pgxpool.Pool).
type Pinger interface {
	Ping(ctx context.Context) error
}

// Options configure the API server.
type Options struct {
	Temporal  client.Client
	TaskQueue string
	Routes    RouteReader
	// DB is pinged by /readyz: reads, tokens and every commit need
	// Postgres. nil skips the check.
	DB Pinger
	// Ledger answers a write from the source of truth when its workflow
	// has not answered within AckTimeout, and completes mutation status;
	// nil: 202 as before.
	Ledger     Ledger
	Audit      AuditQuerier // nil: audit endpoints answer 503
	AckTimeout time.Duration
	Metrics    *observability.WriteMetrics
	Registry   *prometheus.Registry
	Log        *zap.Logger
	// Auth authenticates bearer tokens; nil turns authentication off
	// (TM_AUTH=off).
	Auth Authenticator
	// Tokens manages tokens (admin endpoints); nil when auth is off.
	Tokens TokenStore
	// Limiter is the per-tenant write rate limit; nil means unlimited.
	Limiter *TenantLimiter
	// Resilience guards reads (Postgres) and audit queries (MongoDB) with
	// breakers and bulkheads; nil builds a private registry.
	Resilience *resilience.Registry
	// Policies are the tenants' approval policies; nil: no write waits
	// for approval and the policy endpoints answer 503.
	Policies Policies
	// Resolvers reads what the resolvers report (*propagation.Registry on
	// their Redis); nil: GET /api/v1/resolvers answers 503 and writes and
	// mutation statuses carry no propagation.
	Resolvers Resolvers
	// NewID returns fresh ids (event ids, workflow keys); uuid v4 by default.
	NewID func() string
	// Console configures the web console at /ui/ (docs/console.md), which
	// calls this API in process with the signed-in token.
	Console console.Settings
	// Middleware runs first on every request (tracing's otelgin when
	// OTEL_* turns traces on; nil otherwise, so no request pays for it).
	Middleware []gin.HandlerFunc
}

// Server is the REST API.
type Server struct {
	o        Options
	log      *zap.Logger
	draining atomic.Bool
	reads    *resilience.Bulkhead
	writes   *resilience.Bulkhead
}

// New returns a server; call Handler to serve it.
func New(o Options) *Server {
	if o.NewID == nil {
		o.NewID = uuid.NewString
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Resilience == nil {
		o.Resilience = resilience.New(prometheus.NewRegistry(), resilience.Options{IsFailure: IsFailure, Log: o.Log})
	}
	s := &Server{o: o, log: o.Log}
	// Separate bulkheads: a slow audit query or a burst of writes cannot
	// take the permits route reads need.
	s.reads = o.Resilience.Bulkhead("read", 64, 100*time.Millisecond)
	s.writes = o.Resilience.Bulkhead("write", 256, 100*time.Millisecond)
	if o.Audit != nil {
		s.o.Audit = guardedAudit{q: o.Audit, res: o.Resilience, bh: o.Resilience.Bulkhead("audit", 16, 100*time.Millisecond)}
	}
	return s
}

// IsFailure says which errors count against a breaker: infrastructure
// failures, not domain answers or a client that went away.
func IsFailure(err error) bool {
	var apiErr *Error
	switch {
	case err == nil, errors.Is(err, context.Canceled),
		errors.Is(err, routes.ErrNotFound), errors.Is(err, routes.ErrInvalid), errors.Is(err, routes.ErrConflict),
		errors.Is(err, routes.ErrPreconditionFailed):
		return false
	case errors.As(err, &apiErr):
		return apiErr.Status >= 500
	}
	return true
}

// read runs a Postgres read in the read bulkhead, behind the breaker.
func read[T any](ctx context.Context, s *Server, fn func(context.Context) (T, error)) (T, error) {
	return resilience.Do(ctx, s.o.Resilience, resilience.Call{Dependency: "postgres", Bulkhead: s.reads, Timeout: 3 * time.Second, Retries: 1}, fn)
}

// SetDraining makes /readyz answer 503 so load balancers stop sending work.
func (s *Server) SetDraining() { s.draining.Store(true) }

// maxBody is the largest request body accepted.
const maxBody = 64 << 10

// Handler returns the Gin engine with every endpoint of API.md.
func (s *Server) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if len(s.o.Middleware) > 0 {
		r.Use(s.o.Middleware...)
	}
	r.Use(gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, rec any) {
		s.log.Error("panic in handler", zap.Any("panic", rec), zap.String("path", c.Request.URL.Path))
		WriteError(c, nil, &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"})
	}))
	r.HandleMethodNotAllowed = true
	// Route on the escaped path so "v%2F1" stays one segment and is then
	// rejected by validation (400) instead of matching no route (404).
	r.UseRawPath = true
	r.UnescapePathValues = true
	r.NoRoute(func(c *gin.Context) {
		WriteError(c, nil, &Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such endpoint"})
	})
	r.NoMethod(func(c *gin.Context) {
		WriteError(c, nil, &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: "method not allowed on this endpoint"})
	})

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.ready)
	r.GET("/health/resilience", func(c *gin.Context) { c.JSON(http.StatusOK, s.o.Resilience.Status()) })
	if s.o.Registry != nil {
		r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.o.Registry, promhttp.HandlerOpts{})))
	}

	r.GET(openapidoc.Path, openapidoc.Handler(OpenAPI)) // no token: openapi.go
	v1 := r.Group("/api/v1")
	if s.o.Auth != nil {
		v1.Use(RequireToken(s.o.Auth, s.log))
	}
	s.registerTokens(v1)
	s.registerPolicies(v1)
	s.registerSplits(v1)
	s.registerRollouts(v1)
	v1.POST("/routes", s.createRoute)
	v1.POST("/routes/batch", s.createBatch)
	v1.GET("/routes", s.listRoutes)
	v1.GET("/routes/:tenant/:service/:env/:version", s.getRoute)
	v1.GET("/routes/:tenant/:service/:env/:version/history", s.routeHistory)
	v1.PUT("/routes/:tenant/:service/:env/:version", s.updateRoute)
	v1.POST("/routes/:tenant/:service/:env/:version/activate", s.activateRoute)
	v1.POST("/routes/:tenant/:service/:env/:version/deactivate", s.deactivateRoute)
	v1.POST("/routes/:tenant/:service/:env/:version/rollback", s.rollbackRoute)
	v1.GET("/mutations", s.listMutations)
	v1.GET("/resolvers", s.listResolvers)
	v1.GET("/mutations/*id", s.getMutation)
	v1.POST("/mutations/*id", s.decideMutation)
	RegisterAudit(v1, s.o.Audit, s.log)
	var auth console.Authenticator
	if s.o.Auth != nil {
		auth = s.o.Auth
	}
	console.New(console.Options{Settings: s.o.Console, API: r, Auth: auth, Log: s.log.Named("console")}).Register(r)
	// "/" sends a browser to the console; API clients keep the JSON 404.
	r.GET("/", func(c *gin.Context) {
		if strings.Contains(c.GetHeader("Accept"), "text/html") {
			c.Redirect(http.StatusSeeOther, "/ui/")
			return
		}
		WriteError(c, nil, &Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such endpoint"})
	})
	return r
}

// readyTimeout bounds each dependency check of /readyz; both run at once,
// so a probe gets its answer within it.
const readyTimeout = 2 * time.Second

// ready is /readyz: 503 while draining or while Temporal or Postgres does
// not answer within readyTimeout.
func (s *Server) ready(c *gin.Context) {
	if s.draining.Load() {
		WriteError(c, nil, Unavailable("draining"))
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
	defer cancel()
	pinged := make(chan error, 1)
	go func() {
		if s.o.DB == nil {
			pinged <- nil
			return
		}
		pinged <- s.o.DB.Ping(ctx)
	}()
	_, terr := s.o.Temporal.CheckHealth(ctx, &client.CheckHealthRequest{})
	perr := <-pinged
	switch {
	case terr != nil:
		s.log.Debug("not ready: temporal", zap.Error(terr))
		WriteError(c, nil, Unavailable("temporal unreachable"))
	case perr != nil:
		s.log.Debug("not ready: postgres", zap.Error(perr))
		WriteError(c, nil, Unavailable("postgres unreachable"))
	default:
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	}
}
