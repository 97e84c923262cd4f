package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/activities"
	"github.com/trafficmanager/trafficmanager/api"
	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/auth"
	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/config"
	"github.com/trafficmanager/trafficmanager/console"
	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/policies"
	"github.com/trafficmanager/trafficmanager/propagation"
	"github.com/trafficmanager/trafficmanager/resilience"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/schema"
	"github.com/trafficmanager/trafficmanager/tracing"
	"github.com/trafficmanager/trafficmanager/worker"
)

func newMigrateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply the schema migrations to TM_DATABASE_URL and exit",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig()
			if err == nil {
				err = cfg.Require("TM_DATABASE_URL")
			}
			if err != nil {
				return err
			}
			pool, err := pgxpool.New(cmd.Context(), cfg.DatabaseURL)
			if err != nil {
				return fmt.Errorf("TM_DATABASE_URL: %w", err)
			}
			defer pool.Close()
			v, err := schema.Migrate(cmd.Context(), pool)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "schema at version %d\n", v)
			return nil
		},
	}
}

func newAPICmd() *cobra.Command {
	var insecureNoAuth bool
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Run the REST API (route writes, reads, mutations, audit)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig()
			if err == nil {
				err = cfg.Require("TM_DATABASE_URL", "TM_TEMPORAL_ADDRESS")
			}
			if err != nil {
				return err
			}
			if !cfg.Auth && !insecureNoAuth {
				return errors.New("TM_AUTH=off leaves every tenant's routes open to anyone who can reach the api; pass --insecure-no-auth to run like that anyway")
			}
			log, err := newLogger(cfg)
			if err != nil {
				return err
			}
			defer log.Sync() //nolint:errcheck
			ctx := cmd.Context()
			stopTracing, err := startTracing(ctx, "trafficmanager-api", log)
			if err != nil {
				return err
			}
			defer stopTracing()
			reg := observability.NewRegistry()
			c, err := openClients(ctx, cfg, log, need{temporal: true, mongo: true, metrics: reg})
			if err != nil {
				return err
			}
			defer c.close()
			return runAPI(ctx, cfg, log, reg, c.pool, c.tc, c.mc, nil)
		},
	}
	cmd.Flags().BoolVar(&insecureNoAuth, "insecure-no-auth", false, "allow TM_AUTH=off (no authentication)")
	return cmd
}

// runAPI serves the API until ctx is done, with reg (a new registry when
// nil) behind its /metrics. ready, when not nil, is closed once the listener
// accepts connections.
func runAPI(ctx context.Context, cfg config.Config, log *zap.Logger, reg *prometheus.Registry, pool *pgxpool.Pool, tc client.Client, mc *mongo.Client, ready chan<- struct{}) error {
	log = log.Named("api")
	// Every mutation starts with its TmStatus: make sure the namespace has
	// it even when this api runs ahead of a worker that would add it (in
	// the background: Temporal may be down now, and the api serves anyway).
	go func() {
		if err := worker.EnsureSearchAttributes(ctx, tc, cfg.TemporalNamespace); err != nil {
			log.Warn("search attributes not registered", zap.Error(err))
		}
	}()
	if reg == nil {
		reg = observability.NewRegistry()
	}
	store := routes.NewStore(pool)
	opts := api.Options{
		Temporal:   tc,
		TaskQueue:  cfg.TemporalTaskQueue,
		Routes:     store,
		Ledger:     store,
		DB:         pool,
		AckTimeout: cfg.WriteAckTimeout,
		Metrics:    observability.NewWriteMetrics(reg),
		Registry:   reg,
		Log:        log,
		Limiter:    api.NewTenantLimiter(cfg.TenantWriteRPS, cfg.TenantWriteBurst),
		Resilience: resilience.New(reg, resilience.Options{IsFailure: api.IsFailure, Log: log}),
		Console: console.Settings{TemporalUI: cfg.TemporalUIURL, Namespace: cfg.TemporalNamespace,
			TrustForwardedProto: cfg.ConsoleTrustForwardedProto},
		Middleware: tracing.Middleware("trafficmanager-api"), // none with traces off
	}
	if cfg.Auth {
		tokens := auth.NewStore(pool)
		if cfg.BootstrapAdminToken != "" {
			if err := tokens.Ensure(ctx, "bootstrap-admin", cfg.BootstrapAdminToken); err != nil {
				return err
			}
		}
		opts.Auth, opts.Tokens = auth.NewAuthenticator(tokens, log), tokens
	} else {
		log.Warn("authentication is off (TM_AUTH=off)")
	}
	// Tenant policies: loaded before serving (writes answer 503 until a
	// first load), then every policies.RefreshEvery in the background.
	pols := policies.NewSnapshot(policies.NewStore(pool), log.Named("policies"))
	if err := pols.Refresh(ctx); err != nil {
		log.Warn("tenant policies not loaded yet; writes answer 503 until they are", zap.Error(err))
	}
	go pols.Run(ctx)
	opts.Policies = pols
	if mc != nil {
		auditStore := audit.NewStore(mc.Database(cfg.MongoDatabase), audit.WithLazyIndexes(cfg.AuditRetention, log))
		auditStore.TryEnsureIndexes() // in the background, retried on use: MongoDB may be down now
		opts.Audit = auditStore
	}
	rdb, err := openRedis(cfg) // the resolvers' reports; nil without TM_REDIS_URL
	if err != nil {
		return err
	}
	if rdb != nil {
		defer func() { _ = rdb.Close() }()
		if opts.Resolvers, err = propagation.NewRegistry(propagation.RegistryOptions{Redis: rdb, Prefix: cfg.PropagationPrefix}); err != nil {
			return err
		}
	}
	srv := api.New(opts)
	return listenAndServe(ctx, cfg, cfg.APIAddr, withPprof(cfg, srv.Handler()), drainer(cfg, srv.SetDraining), ready, log)
}

// drainer flips readiness to 503, then keeps serving for the drain delay.
func drainer(cfg config.Config, setDraining func()) func() {
	return func() {
		setDraining()
		time.Sleep(cfg.DrainDelay)
	}
}

// withPprof serves net/http/pprof under /debug/pprof/ in front of h when
// TM_PPROF=on, with no authentication (the variable is opt-in, for private
// listeners); every other path goes to h after one prefix comparison.
func withPprof(cfg config.Config, h http.Handler) http.Handler {
	if !cfg.Pprof {
		return h
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // also serves heap, goroutine, allocs, block, mutex
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/debug/pprof/") {
			mux.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// maxHeaderBytes bounds request headers (net/http's default is 1 MiB); a
// bearer token, an Idempotency-Key and the usual proxy headers need far less.
const maxHeaderBytes = 64 << 10

// newHTTPServer is the http.Server of every listener (api, resolver,
// worker). Without ReadTimeout a client trickling its body a byte at a time
// holds a connection and a goroutine forever; WriteTimeout is longer than a
// write's wait for its commit (TM_WRITE_ACK_TIMEOUT, see config) so the
// answer, even a 202, always gets out; IdleTimeout closes keep-alive
// connections nobody uses.
//
// A streaming handler (the planned SSE watch endpoint) must opt out of the
// write deadline for its own response, and bound the stream itself instead
// (heartbeats, the request context):
//
//	rc := http.NewResponseController(w)
//	_ = rc.SetWriteDeadline(time.Time{}) // no deadline for this response
//
// (net/http/pprof's profile and trace handlers extend it the same way.)
func newHTTPServer(cfg config.Config, h http.Handler) *http.Server {
	header := 5 * time.Second
	if cfg.HTTPReadTimeout > 0 {
		header = min(header, cfg.HTTPReadTimeout)
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: header,
		ReadTimeout:       cfg.HTTPReadTimeout,
		WriteTimeout:      cfg.HTTPWriteTimeout,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// listenAndServe binds addr first (so a taken port fails fast and ready
// means accepting), then serves until ctx is done, runs drain while still
// serving, and shuts down within cfg.ShutdownTimeout.
func listenAndServe(ctx context.Context, cfg config.Config, addr string, h http.Handler, drain func(), ready chan<- struct{}, log *zap.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := newHTTPServer(cfg, h)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("listening", zap.String("addr", ln.Addr().String()))
	if ready != nil {
		close(ready)
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	if drain != nil {
		drain()
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	return srv.Shutdown(sctx)
}

func newWorkerCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "worker",
		Short: "Run the Temporal worker for route mutations",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig()
			if err == nil {
				err = cfg.Require("TM_DATABASE_URL", "TM_TEMPORAL_ADDRESS", "TM_KAFKA_BROKERS", "TM_MONGO_URI")
			}
			if err != nil {
				return err
			}
			log, err := newLogger(cfg)
			if err != nil {
				return err
			}
			defer log.Sync() //nolint:errcheck
			ctx := cmd.Context()
			stopTracing, err := startTracing(ctx, "trafficmanager-worker", log)
			if err != nil {
				return err
			}
			defer stopTracing()
			reg := observability.NewRegistry()
			c, err := openClients(ctx, cfg, log, need{redis: true, temporal: true, mongo: true, metrics: reg})
			if err != nil {
				return err
			}
			defer c.close()
			return runWorker(ctx, cfg, log, reg, c.pool, c.rdb, c.tc, c.mc, nil)
		},
	}
}

// runWorker runs the mutation worker and its health/metrics listener (reg,
// a new registry when nil, behind /metrics) until ctx is done, then stops
// polling and lets running tasks finish.
func runWorker(ctx context.Context, cfg config.Config, log *zap.Logger, reg *prometheus.Registry, pool *pgxpool.Pool, rdb *redis.Client, tc client.Client, mc *mongo.Client, ready chan<- struct{}) error {
	log = log.Named("worker")
	if err := worker.EnsureSearchAttributes(ctx, tc, cfg.TemporalNamespace); err != nil {
		log.Warn("search attributes not registered", zap.Error(err))
	}
	store := audit.NewStore(mc.Database(cfg.MongoDatabase), audit.WithLazyIndexes(cfg.AuditRetention, log))
	store.TryEnsureIndexes() // in the background, retried on use: MongoDB may be down now
	pub := events.NewPublisher(cfg.KafkaBrokers, cfg.KafkaTopic)
	defer pub.Close()
	acts := &activities.Activities{
		Routes:   routes.NewStore(pool),
		Events:   pub,
		AuditLog: store,
		Log:      log,
	}
	if rdb != nil {
		acts.Cache = cache.NewRedis(rdb, cfg.CacheTTL)
	}
	w := worker.New(tc, cfg.TemporalTaskQueue, acts, worker.Options{StopTimeout: cfg.ShutdownTimeout})
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	defer w.Stop() // when serving failed; after a drain it returns at once
	proc := worker.Started(w)

	// The health listener drains the worker before it closes: /readyz is 503
	// while running activities finish.
	if reg == nil {
		reg = observability.NewRegistry()
	}
	h := proc.HealthHandler(reg)
	return listenAndServe(ctx, cfg, cfg.WorkerAddr, withPprof(cfg, h), proc.Drain, ready, log)
}
