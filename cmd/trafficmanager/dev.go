package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/config"
	"github.com/trafficmanager/trafficmanager/internal/devstack"
	"github.com/trafficmanager/trafficmanager/observability"
)

func newDevCmd() *cobra.Command {
	var seedDemo bool
	var temporalPort, uiPort, temporalShards, workers, resolvers int
	var temporalMode string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole platform locally: dependencies, api, resolver and worker",
		Long: `Starts every dependency whose TM_* variable is unset (a private PostgreSQL cluster,
redis-server, an embedded Kafka-protocol broker, an embedded MongoDB-wire store and
Temporal with its UI) with data under TM_DEV_DATA_DIR, then the api, the resolver and
the worker in this process. Ctrl-C drains and stops everything.

Temporal is the dev server (--temporal devserver, the default: one process, SQLite,
one history shard) or the production server (--temporal cluster: temporal-server on
PostgreSQL with SQL visibility in the dev PostgreSQL, --temporal-shards history shards,
and temporal-ui-server; see docs/topology.md). --workers N and --resolvers N run that
many worker and resolver instances, each with its own address, /metrics and identity.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Getenv("TM_AUTH") == "" {
				os.Setenv("TM_AUTH", "off") // API.md: auth is off by default in dev only
			}
			if os.Getenv("TM_MIGRATE") == "" {
				os.Setenv("TM_MIGRATE", "auto")
			}
			if os.Getenv("TM_API_ADDR") == "" {
				os.Setenv("TM_API_ADDR", "127.0.0.1:8080")
			}
			if os.Getenv("TM_RESOLVER_ADDR") == "" {
				os.Setenv("TM_RESOLVER_ADDR", "127.0.0.1:8081")
			}
			if os.Getenv("TM_WORKER_ADDR") == "" {
				os.Setenv("TM_WORKER_ADDR", "127.0.0.1:8082")
			}
			if os.Getenv("TM_LOG_FORMAT") == "" {
				os.Setenv("TM_LOG_FORMAT", "console")
			}
			if os.Getenv("TM_LOG_LEVEL") == "" {
				os.Setenv("TM_LOG_LEVEL", "warn")
			}
			if os.Getenv("TM_TEMPORAL_GRPC_COMPRESSION") == "" {
				os.Setenv("TM_TEMPORAL_GRPC_COMPRESSION", "none") // the dev server is on this host
			}
			if temporalMode != temporalDevServer && temporalMode != temporalCluster {
				return fmt.Errorf("--temporal %q: want %s or %s", temporalMode, temporalDevServer, temporalCluster)
			}
			if temporalShards < 0 || (temporalShards > 0 && temporalMode != temporalCluster) {
				return fmt.Errorf("--temporal-shards %d: a positive count, with --temporal %s only", temporalShards, temporalCluster)
			}
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			inst, err := planDevInstances(cfg, workers, resolvers)
			if err != nil {
				return err
			}
			return runDev(cmd.Context(), cmd.OutOrStdout(), cfg, devOptions{seedDemo: seedDemo, temporalPort: temporalPort, uiPort: uiPort,
				temporal: temporalMode, temporalShards: temporalShards, instances: inst})
		},
	}
	cmd.Flags().BoolVar(&seedDemo, "seed-demo", false, "load a few demo tenants and routes")
	cmd.Flags().IntVar(&temporalPort, "temporal-port", 7233, "Temporal frontend port when Temporal is started")
	cmd.Flags().IntVar(&uiPort, "ui-port", 8233, "Temporal UI port (0: no UI)")
	cmd.Flags().StringVar(&temporalMode, "temporal", temporalDevServer, "which Temporal to start: devserver (temporal server start-dev) or cluster (temporal-server on the dev PostgreSQL)")
	cmd.Flags().IntVar(&temporalShards, "temporal-shards", 0, fmt.Sprintf("history shards of a new --temporal cluster (default %d; an existing cluster keeps its count)", devstack.DefaultHistoryShards))
	cmd.Flags().IntVar(&workers, "workers", 1, "worker instances, in this process: the first on TM_WORKER_ADDR, the next on its port +100, +200…")
	cmd.Flags().IntVar(&resolvers, "resolvers", 1, "resolver instances, in this process: the first on TM_RESOLVER_ADDR, the next on its port +100, +200…")
	return cmd
}

// The values of `dev --temporal`.
const (
	temporalDevServer = "devserver"
	temporalCluster   = "cluster"
)

type devOptions struct {
	seedDemo       bool
	temporalPort   int
	uiPort         int
	temporal       string // temporalDevServer or temporalCluster
	temporalShards int    // --temporal cluster: 0 = the default or the existing count
	instances      devInstances
}

// devStack is what runDev started, stopped in reverse order.
type devStack struct {
	stops []func() error
	env   []string // export lines for dev.env
}

func (s *devStack) add(stop func() error) { s.stops = append(s.stops, stop) }

func (s *devStack) stop() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		_ = s.stops[i]()
	}
}

func step(out io.Writer, name string, f func() (string, error)) error {
	start := time.Now()
	fmt.Fprintf(out, "%-10s … ", name)
	detail, err := f()
	if err != nil {
		fmt.Fprintln(out, "failed")
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintf(out, "ok (%d ms) %s\n", time.Since(start).Milliseconds(), detail)
	return nil
}

func runDev(ctx context.Context, out io.Writer, cfg config.Config, o devOptions) (err error) {
	dataDir, err := filepath.Abs(cfg.DevDataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("TM_DEV_DATA_DIR %s: %w", dataDir, err)
	}
	logFile, err := os.OpenFile(filepath.Join(dataDir, "dev.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	st := &devStack{}
	defer func() {
		st.stop()
		if err == nil && ctx.Err() != nil {
			// A clean stop (Ctrl-C, SIGTERM) exits 0 and says so.
			fmt.Fprintf(out, "stopped cleanly (data kept in %s)\n", dataDir)
		}
	}()
	fmt.Fprintf(out, "data in %s (logs: %s)\n", dataDir, logFile.Name())
	// The dependencies keep their ports across restarts (ports.json), so a
	// shell that sourced dev.env before still reaches them.
	ports, err := devstack.OpenPorts(dataDir)
	if err != nil {
		return err
	}
	port := func(name string) (int, string, error) {
		p, moved, err := ports.Port(name)
		if err != nil || moved == 0 {
			return p, "", err
		}
		return p, fmt.Sprintf(" (port %d of the last start is taken: moved; source dev.env again)", moved), nil
	}

	if cfg.DatabaseURL == "" {
		err = step(out, "postgres", func() (string, error) {
			port, note, err := port("postgres")
			if err != nil {
				return "", err
			}
			pg, err := devstack.StartPostgres(ctx, filepath.Join(dataDir, "postgres"), port, logFile)
			if err != nil {
				return "", err
			}
			st.add(pg.Stop)
			cfg.DatabaseURL = pg.DSN
			return pg.DSN + note, nil
		})
		if err != nil {
			return err
		}
	}
	if cfg.RedisURL == "" {
		err = step(out, "redis", func() (string, error) {
			port, note, err := port("redis")
			if err != nil {
				return "", err
			}
			r, err := devstack.StartRedis(ctx, filepath.Join(dataDir, "redis"), port, logFile)
			if err != nil {
				return "", err
			}
			st.add(r.Stop)
			cfg.RedisURL = r.URL
			return r.URL + note, nil
		})
		if err != nil {
			return err
		}
	}
	if len(cfg.KafkaBrokers) == 0 {
		err = step(out, "kafka", func() (string, error) {
			port, note, err := port("kafka")
			if err != nil {
				return "", err
			}
			k, err := devstack.StartKafka(port, cfg.KafkaTopic, 3)
			if err != nil {
				return "", err
			}
			st.add(k.Stop)
			cfg.KafkaBrokers = k.Brokers
			return strings.Join(k.Brokers, ",") + " (embedded, in memory)" + note, nil
		})
		if err != nil {
			return err
		}
	}
	if cfg.MongoURI == "" {
		err = step(out, "mongodb", func() (string, error) {
			port, note, err := port("mongodb")
			if err != nil {
				return "", err
			}
			m, err := devstack.StartMongo(ctx, filepath.Join(dataDir, "mongo"), port)
			if err != nil {
				return "", err
			}
			st.add(m.Stop)
			cfg.MongoURI = m.URI
			return m.URI + " (embedded FerretDB)" + note, nil
		})
		if err != nil {
			return err
		}
	}
	uiURL, temporalMetrics := "", ""
	switch {
	case cfg.TemporalAddress != "" && o.temporal == temporalCluster:
		fmt.Fprintf(out, "%-10s … TM_TEMPORAL_ADDRESS is set: using %s, not starting a cluster\n", "temporal", cfg.TemporalAddress)
	case cfg.TemporalAddress == "" && o.temporal == temporalCluster:
		err = step(out, "temporal", func() (string, error) {
			t, err := devstack.StartTemporalCluster(ctx, devstack.TemporalClusterOptions{
				DataDir:       filepath.Join(dataDir, "temporal-cluster"),
				DatabaseURL:   cfg.DatabaseURL,
				Port:          o.temporalPort,
				UIPort:        o.uiPort,
				HistoryShards: o.temporalShards,
				Log:           logFile,
			})
			if err != nil {
				return "", err
			}
			st.add(t.Stop)
			cfg.TemporalAddress, uiURL, temporalMetrics = t.Address, t.UIURL, t.MetricsURL
			return fmt.Sprintf("%s (cluster: temporal-server %s, %d history shards, databases %s and %s)",
				t.Address, devstack.TemporalServerVersion, t.Config.HistoryShards, t.Config.DB.Database, t.Config.DB.VisibilityDatabase), nil
		})
		if err != nil {
			return err
		}
	case cfg.TemporalAddress == "":
		err = step(out, "temporal", func() (string, error) {
			t, err := devstack.StartTemporal(ctx, filepath.Join(dataDir, "temporal"), o.temporalPort, o.uiPort, logFile)
			if err != nil {
				return "", err
			}
			st.add(t.Stop)
			cfg.TemporalAddress, uiURL = t.Address, t.UIURL
			return t.Address, nil
		})
		if err != nil {
			return err
		}
	}
	if err := writeDevEnv(dataDir, cfg, uiURL, temporalMetrics, o.instances); err != nil {
		return err
	}

	log, err := newDevLogger(cfg, logFile)
	if err != nil {
		return err
	}
	return runPlatform(ctx, out, cfg, log, uiURL, o.seedDemo, o.instances)
}

// writeDevEnv writes dev.env: one export line per dependency address so
// psql, redis-cli, kcat, mongosh, temporal and a second trafficmanager reach
// the same stack after `source .tmdata/dev.env`.
func writeDevEnv(dataDir string, cfg config.Config, uiURL, temporalMetrics string, inst devInstances) error {
	lines := []string{
		"export TM_DATABASE_URL=" + cfg.DatabaseURL,
		"export TM_REDIS_URL=" + cfg.RedisURL,
		"export TM_KAFKA_BROKERS=" + strings.Join(cfg.KafkaBrokers, ","),
		"export TM_KAFKA_TOPIC=" + cfg.KafkaTopic,
		"export TM_MONGO_URI=" + cfg.MongoURI,
		"export TM_MONGO_DATABASE=" + cfg.MongoDatabase,
		"export TM_TEMPORAL_ADDRESS=" + cfg.TemporalAddress,
		"export TM_TEMPORAL_NAMESPACE=" + cfg.TemporalNamespace,
		"export TM_API_URL=http://" + cfg.APIAddr,
		"# every resolver and worker instance (dev --resolvers, --workers)",
		"export TM_RESOLVER_URLS=" + urls(inst.resolvers, ""),
		"export TM_WORKER_URLS=" + urls(inst.workers, ""),
		"# for the temporal CLI",
		"export TEMPORAL_ADDRESS=" + cfg.TemporalAddress,
	}
	if uiURL != "" {
		lines = append(lines, "# Temporal UI: "+uiURL)
	}
	if temporalMetrics != "" {
		lines = append(lines, "# Temporal server metrics: "+temporalMetrics)
	}
	return os.WriteFile(filepath.Join(dataDir, "dev.env"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// runPlatform runs the api and every resolver and worker instance
// in-process against cfg until ctx is done; it prints one line containing
// "ready" once all listen.
func runPlatform(ctx context.Context, out io.Writer, cfg config.Config, log *zap.Logger, uiURL string, seedDemo bool, inst devInstances) error {
	// The api's Temporal client reports into the api's /metrics; each worker
	// instance gets a client of its own on the same connection reporting
	// into its /metrics (workerClient).
	if uiURL != "" {
		cfg.TemporalUIURL = uiURL // the console links to this stack's UI
	}
	// OTEL_* variables turn traces on for every instance (docs/tracing.md).
	stopTracing, err := startTracing(ctx, "trafficmanager-dev", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	apiReg := observability.NewRegistry()
	c, err := openClients(ctx, cfg, log, need{redis: true, temporal: true, mongo: true, metrics: apiReg})
	if err != nil {
		return err
	}
	defer c.close()
	pool, rdb, tc, mc := c.pool, c.rdb, c.tc, c.mc

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 1+len(inst.workers)+len(inst.resolvers))
	var readies []chan struct{}
	run := func(name string, f func(ready chan struct{}) error) {
		ready := make(chan struct{})
		readies = append(readies, ready)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ready); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	for _, w := range inst.workers {
		wcfg, wlog := cfg, instanceLogger(log, inst.workers, w)
		wcfg.WorkerAddr = w.addr
		wreg := observability.NewRegistry()
		wtc, err := workerClient(ctx, tc, cfg, wlog, wreg, inst.workers, w)
		if err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("%s: %w", w.id, err)
		}
		if wtc != tc {
			defer wtc.Close()
		}
		run(w.id, func(ready chan struct{}) error { return runWorker(ctx, wcfg, wlog, wreg, pool, rdb, wtc, mc, ready) })
	}
	run("api", func(ready chan struct{}) error { return runAPI(ctx, cfg, log, apiReg, pool, tc, mc, ready) })
	for _, r := range inst.resolvers {
		rcfg, rlog := cfg, instanceLogger(log, inst.resolvers, r)
		rcfg.ResolverAddr = r.addr
		run(r.id, func(ready chan struct{}) error { return runResolver(ctx, rcfg, rlog, pool, rdb, ready) })
	}

	for _, r := range readies {
		select {
		case <-r:
		case <-ctx.Done():
			wg.Wait()
			return firstErr(errc)
		}
	}
	if seedDemo {
		if err := seedDemoRoutes(ctx, cfg, out); err != nil {
			fmt.Fprintln(out, "seed-demo failed:", err)
		}
	}
	fmt.Fprintf(out, "ready: api http://%s  %s  %s  temporal %s  temporal-ui %s  (source %s)\n",
		cfg.APIAddr, readyPart("resolver", inst.resolvers, ""), readyPart("worker", inst.workers, "/metrics"),
		cfg.TemporalAddress, orNone(uiURL), filepath.Join(cfg.DevDataDir, "dev.env"))
	<-ctx.Done()
	fmt.Fprintln(out, "stopping: draining api and resolver, stopping worker and dependencies")
	wg.Wait()
	return firstErr(errc)
}

func firstErr(errc chan error) error {
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
