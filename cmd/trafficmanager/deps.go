package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/config"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/observability/temporalmetrics"
	"github.com/trafficmanager/trafficmanager/schema"
	"github.com/trafficmanager/trafficmanager/tracing"
	"github.com/trafficmanager/trafficmanager/tracing/mongotrace"
)

// openPostgres connects a pool and applies migrations when TM_MIGRATE=auto.
func openPostgres(ctx context.Context, cfg config.Config, log *zap.Logger) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("TM_DATABASE_URL: %w", err)
	}
	pcfg.ConnConfig.ConnectTimeout = 5 * time.Second
	tracing.Pgx(pcfg) // when traces are on (docs/tracing.md)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connect postgres: %w", err)
	}
	if cfg.Migrate == "auto" {
		v, err := schema.Migrate(ctx, pool)
		if err != nil {
			pool.Close()
			return nil, err
		}
		log.Info("schema migrated", zap.Int64("version", v))
	}
	return pool, nil
}

// openRedis returns a client when TM_REDIS_URL is set, else nil.
func openRedis(cfg config.Config) (*redis.Client, error) {
	if cfg.RedisURL == "" {
		return nil, nil
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("TM_REDIS_URL: %w", err)
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = time.Second, 500*time.Millisecond, 500*time.Millisecond
	opt.ContextTimeoutEnabled = true // honour per-call context deadlines
	rdb := redis.NewClient(opt)
	if err := tracing.Redis(rdb); err != nil { // when traces are on
		_ = rdb.Close()
		return nil, err
	}
	return rdb, nil
}

func openMongo(ctx context.Context, cfg config.Config) (*mongo.Client, error) {
	o := options.Client().ApplyURI(cfg.MongoURI).
		SetServerSelectionTimeout(5 * time.Second).SetTimeout(10 * time.Second)
	if tracing.Active() {
		o.SetMonitor(mongotrace.Monitor())
	}
	c, err := mongo.Connect(o)
	if err != nil {
		return nil, fmt.Errorf("TM_MONGO_URI: %w", err)
	}
	return c, nil
}

// dialTemporal connects the Temporal client; with reg, the SDK's client and
// worker metrics (temporal_*) are collected by reg, so they show in the
// process's /metrics.
func dialTemporal(ctx context.Context, cfg config.Config, log *zap.Logger, reg prometheus.Registerer) (client.Client, error) {
	o := client.Options{
		HostPort:  cfg.TemporalAddress,
		Namespace: cfg.TemporalNamespace,
		Logger:    observability.NewTemporalLogger(log.Named("temporal")),
	}
	if reg != nil {
		h, err := temporalmetrics.NewHandler(reg, log)
		if err != nil {
			return nil, err
		}
		o.MetricsHandler = h
	}
	var err error
	if o.Interceptors, err = temporalInterceptors(); err != nil {
		return nil, err
	}
	if cfg.TemporalCompression == "none" {
		o.ConnectionOptions.GrpcCompression = &client.GrpcCompressionNone{}
	}
	c, err := client.DialContext(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("connect temporal at %s (TM_TEMPORAL_ADDRESS): %w", cfg.TemporalAddress, err)
	}
	return c, nil
}

// temporalInterceptors returns the Temporal SDK's OpenTelemetry tracing
// interceptor when traces are on, else none. On a client, calls (starting a
// workflow from a request) carry the span in Temporal headers; workers built
// on that client get the same interceptor, so workflow and activity spans
// join the request's trace.
func temporalInterceptors() ([]interceptor.ClientInterceptor, error) {
	if !tracing.Active() {
		return nil, nil
	}
	ic, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{})
	if err != nil {
		return nil, fmt.Errorf("temporal tracing interceptor: %w", err)
	}
	return []interceptor.ClientInterceptor{ic}, nil
}

// clients are the connections a process opens from its configuration.
// Optional ones are nil when not needed or not configured.
type clients struct {
	pool *pgxpool.Pool
	rdb  *redis.Client
	tc   client.Client
	mc   *mongo.Client
}

// need says which optional clients to open besides Postgres.
type need struct {
	redis, temporal, mongo bool
	// metrics, when set, collects the Temporal client's metrics (the
	// registry behind the process's /metrics).
	metrics prometheus.Registerer
}

// openClients connects Postgres (migrating when TM_MIGRATE=auto) and what
// n asks for; on error everything opened so far is closed.
func openClients(ctx context.Context, cfg config.Config, log *zap.Logger, n need) (c *clients, err error) {
	c = &clients{}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if c.pool, err = openPostgres(ctx, cfg, log); err != nil {
		return nil, err
	}
	if n.redis {
		if c.rdb, err = openRedis(cfg); err != nil {
			return nil, err
		}
	}
	if n.temporal {
		if c.tc, err = dialTemporal(ctx, cfg, log, n.metrics); err != nil {
			return nil, err
		}
	}
	if n.mongo && cfg.MongoURI != "" {
		if c.mc, err = openMongo(ctx, cfg); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *clients) close() {
	if c.mc != nil {
		_ = c.mc.Disconnect(context.Background())
	}
	if c.tc != nil {
		c.tc.Close()
	}
	if c.rdb != nil {
		_ = c.rdb.Close()
	}
	if c.pool != nil {
		c.pool.Close()
	}
}

// startTracing exports traces as service when the OTEL_* variables ask for
// it (docs/tracing.md); call it before opening clients, which are traced
// only then. stop flushes the spans still batched.
func startTracing(ctx context.Context, service string, log *zap.Logger) (stop func(), err error) {
	tr, err := tracing.FromEnv(ctx, service, log)
	if err != nil {
		return nil, err
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(sctx); err != nil {
			log.Warn("flushing traces failed", zap.Error(err))
		}
	}, nil
}
