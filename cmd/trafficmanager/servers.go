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

	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/resilience"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/schema"
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
			c, err := openClients(ctx, cfg, log, need{temporal: true, mongo: true})
			if err != nil {
				return err
			}
			defer c.close()
			return runAPI(ctx, cfg, log, c.pool, c.tc, c.mc, nil)
		},
	}
	cmd.Flags().BoolVar(&insecureNoAuth, "insecure-no-auth", false, "allow TM_AUTH=off (no authentication)")
	return cmd
}

// runAPI serves the API until ctx is done. ready, when not nil, is closed
// once the listener accepts connections.
func runAPI(ctx context.Context, cfg config.Config, log *zap.Logger, pool *pgxpool.Pool, tc client.Client, mc *mongo.Client, ready chan<- struct{}) error {
	log = log.Named("api")
	reg := observability.NewRegistry()
	opts := api.Options{
		Temporal:   tc,
		TaskQueue:  cfg.TemporalTaskQueue,
		Routes:     routes.NewStore(pool),
		AckTimeout: cfg.WriteAckTimeout,
		Metrics:    observability.NewWriteMetrics(reg),
		Registry:   reg,
		Log:        log,
		Limiter:    api.NewTenantLimiter(cfg.TenantWriteRPS, cfg.TenantWriteBurst),
		Resilience: resilience.New(reg, resilience.Options{IsFailure: api.IsFailure, Log: log}),
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
	if mc != nil {
		auditStore := audit.NewStore(mc.Database(cfg.MongoDatabase), audit.WithLazyIndexes(cfg.AuditRetention, log))
		auditStore.TryEnsureIndexes() // in the background, retried on use: MongoDB may be down now
		opts.Audit = auditStore
	}
	srv := api.New(opts)
	return listenAndServe(ctx, cfg.APIAddr, withPprof(cfg, srv.Handler()), cfg.ShutdownTimeout, drainer(cfg, srv.SetDraining), ready, log)
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

// listenAndServe binds addr first (so a taken port fails fast and ready
// means accepting), then serves until ctx is done and drains.
func listenAndServe(ctx context.Context, addr string, h http.Handler, timeout time.Duration, drain func(), ready chan<- struct{}, log *zap.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
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
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
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
			c, err := openClients(ctx, cfg, log, need{redis: true, temporal: true, mongo: true})
			if err != nil {
				return err
			}
			defer c.close()
			return runWorker(ctx, cfg, log, c.pool, c.rdb, c.tc, c.mc, nil)
		},
	}
}

// runWorker runs the mutation worker and its health/metrics listener until
// ctx is done, then stops polling and lets running tasks finish.
func runWorker(ctx context.Context, cfg config.Config, log *zap.Logger, pool *pgxpool.Pool, rdb *redis.Client, tc client.Client, mc *mongo.Client, ready chan<- struct{}) error {
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
	defer w.Stop()

	reg := observability.NewRegistry()
	gin.SetMode(gin.ReleaseMode)
	h := gin.New()
	h.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	h.GET("/readyz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ready"}) })
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
	h.GET("/metrics", gin.WrapH(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	return listenAndServe(ctx, cfg.WorkerAddr, withPprof(cfg, h), cfg.ShutdownTimeout, nil, ready, log)
}
