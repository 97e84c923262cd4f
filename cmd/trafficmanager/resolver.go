package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/auth"
	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/config"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/propagation"
	"github.com/trafficmanager/trafficmanager/resolver"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/tracing"
)

func newResolverCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "resolver",
		Short: "Run the read path: GET /api/v1/resolve/{tenant}/{service}/{env}/{version}",
		Long: `Run the stateless resolver (cache-aside: in-process cache, Redis, Postgres).
Requires TM_DATABASE_URL; TM_REDIS_URL and TM_KAFKA_BROKERS are optional
(without Kafka, cached answers change only when their TTL ends).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			if err := cfg.Require("TM_DATABASE_URL"); err != nil {
				return err
			}
			log, err := newLogger(cfg)
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			ctx := cmd.Context()
			stopTracing, err := startTracing(ctx, "trafficmanager-resolver", log)
			if err != nil {
				return err
			}
			defer stopTracing()

			pool, err := openResolverPool(ctx, cfg)
			if err != nil {
				return err
			}
			defer pool.Close()
			rdb, err := openRedis(cfg) // nil when TM_REDIS_URL is unset
			if err != nil {
				return err
			}
			if rdb != nil {
				defer func() { _ = rdb.Close() }()
			}
			gin.SetMode(gin.ReleaseMode)
			return runResolver(ctx, cfg, log, pool, rdb, nil)
		},
	}
}

// openResolverPool connects lazily: the resolver starts and serves from its
// caches even while Postgres is down. The pool is at least as large as the
// lookup bulkhead so a permitted lookup never queues for a connection.
func openResolverPool(ctx context.Context, cfg config.Config) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("TM_DATABASE_URL: %w", err)
	}
	pc.ConnConfig.ConnectTimeout = 2 * time.Second
	tracing.Pgx(pc) // when traces are on (docs/tracing.md)
	if n := int32(cfg.ResolverMaxInflight); pc.MaxConns < n {
		pc.MaxConns = n
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return pool, nil
}

// runResolver builds a resolver over pool (and rdb's Redis, nil for none; the
// resolver opens its own client there with read-path timeouts), serves it
// on cfg.ResolverAddr and consumes cfg.KafkaTopic when cfg.KafkaBrokers is
// set. It closes ready (when not nil) once the listener accepts requests,
// the event consumer is subscribed and warming is done. When ctx ends it
// turns /readyz to 503, shuts the server down within cfg.ShutdownTimeout,
// stops the consumer and returns.
func runResolver(ctx context.Context, cfg config.Config, log *zap.Logger, pool *pgxpool.Pool, rdb *redis.Client, ready chan<- struct{}) error {
	log = log.Named("resolver")
	reg := observability.NewRegistry()
	store := routes.NewStore(pool)
	var rc *cache.Redis
	if rdb != nil {
		// A client of its own: the read path needs context deadlines honored
		// and timeouts of milliseconds, not the shared client's.
		own := redis.NewClient(resolver.RedisOptions(rdb.Options()))
		defer func() { _ = own.Close() }()
		if err := tracing.Redis(own); err != nil {
			return err
		}
		rc = cache.NewRedis(own, cfg.CacheTTL)
	}
	res, err := resolver.New(resolver.Options{
		Store:       store,
		Redis:       rc,
		L1Entries:   cfg.ResolverL1Entries,
		PositiveTTL: cfg.CacheTTL,
		NegativeTTL: cfg.NegativeCacheTTL,
		MaxInflight: cfg.ResolverMaxInflight,
		Metrics:     observability.NewResolveMetrics(reg),
		Logger:      log,
	})
	if err != nil {
		return err
	}
	defer res.Close()
	err = res.EnableWatch(resolver.WatchOptions{Feed: resolver.NewLedgerFeed(pool), MaxWatchers: cfg.WatchMax,
		MaxPerTenant: cfg.WatchMaxPerTenant, Registerer: reg})
	if err != nil {
		return err
	}

	// The listener comes up first (a taken port fails at once); readiness
	// waits for the event consumer and warming.
	handler := res.Handler(reg, tracing.Middleware("trafficmanager-resolver")...) // none with traces off
	if cfg.ResolverAuth {
		handler = resolver.RequireToken(handler, auth.NewAuthenticator(auth.NewStore(pool), log))
	}
	listening := make(chan struct{})
	serveErr := make(chan error, 1)
	go func() {
		serveErr <- listenAndServe(ctx, cfg, cfg.ResolverAddr, withPprof(cfg, handler), drainer(cfg, res.SetDraining), listening, log)
	}()
	select {
	case <-listening:
	case err := <-serveErr:
		return fmt.Errorf("resolver (TM_RESOLVER_ADDR=%s): %w", cfg.ResolverAddr, err)
	}

	// The consumer outlives ctx by the server's drain, so it runs on its own
	// context, stopped once the server is down.
	consumerCtx, stopConsumer := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConsumer()
	consumerDone := make(chan error, 1)
	rep, err := newReporter(cfg, rdb, log)
	if err != nil {
		return err
	}
	if len(cfg.KafkaBrokers) > 0 {
		subscribed := make(chan struct{})
		go func() {
			consumerDone <- res.ConsumeEventsReporting(consumerCtx, cfg.KafkaBrokers, cfg.KafkaTopic, func() { close(subscribed) }, rep)
		}()
		select {
		case <-subscribed:
		case <-ctx.Done():
		case err := <-consumerDone:
			return fmt.Errorf("route event consumer: %w", err) // only a configuration error ends it early
		}
	} else {
		consumerDone <- nil
		log.Warn("TM_KAFKA_BROKERS is not set: cached answers change only when their TTL ends")
	}

	if ctx.Err() == nil && cfg.ResolverWarmRoutes > 0 {
		if err := res.Warm(ctx, cfg.ResolverWarmRoutes); err != nil {
			log.Warn("cache warming failed; starting cold", zap.Error(err))
		}
	}
	if ctx.Err() == nil {
		res.MarkReady()
		if rep != nil {
			// Live from now on: subscribed, so every later change is applied.
			rep.Start()
		}
		log.Info("resolver ready")
		if ready != nil {
			close(ready)
		}
	}

	err = <-serveErr // returns once ctx is done and the server has drained
	stopConsumer()
	if cerr := <-consumerDone; err == nil {
		err = cerr
	}
	if rep != nil {
		// Leave the live set at once, so writes waiting for propagation
		// stop counting this instance.
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if rerr := rep.Close(rctx); rerr != nil {
			log.Warn("cannot leave the live resolver set; it expires", zap.Error(rerr))
		}
		cancel()
	}
	log.Info("resolver stopped")
	return err
}

// newReporter returns the propagation reporter of this instance (nil
// without Redis): its id is TM_RESOLVER_ID, else host:port.
func newReporter(cfg config.Config, rdb *redis.Client, log *zap.Logger) (*propagation.Reporter, error) {
	if rdb == nil {
		log.Warn("TM_REDIS_URL is not set: this resolver does not report propagation")
		return nil, nil
	}
	id := cfg.ResolverID
	if id == "" {
		id = propagation.DefaultID(cfg.ResolverAddr)
	}
	rep, err := propagation.NewReporter(propagation.ReporterOptions{
		Redis: rdb, ID: id, Address: advertisedAddr(cfg.ResolverAddr), Prefix: cfg.PropagationPrefix, Log: log,
	})
	if err != nil {
		return nil, fmt.Errorf("TM_RESOLVER_ID: %w", err)
	}
	return rep, nil
}

// advertisedAddr is the listen address with the host name in place of an
// empty or unspecified host (":8081" -> "myhost:8081").
func advertisedAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		}
	}
	return net.JoinHostPort(host, port)
}
