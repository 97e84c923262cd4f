package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trafficmanager/trafficmanager/internal/devstack"
)

// The Temporal topologies TM_TEST_TEMPORAL chooses between.
const (
	// TopologyDevServer is `temporal server start-dev` (SQLite, one
	// history shard): the default, and the quickest to start.
	TopologyDevServer = "devserver"
	// TopologyCluster is the production server (temporal-server with
	// PostgreSQL persistence, SQL visibility and 8 history shards), what
	// `trafficmanager dev --temporal cluster` runs.
	TopologyCluster = "cluster"
)

// TemporalTopology is the topology TM_TEST_TEMPORAL asks for:
// TopologyDevServer when unset. Tests that only make sense on one topology
// skip on the other with it; Temporal rejects any other value.
func TemporalTopology() string {
	if v := os.Getenv("TM_TEST_TEMPORAL"); v != "" {
		return v
	}
	return TopologyDevServer
}

// TemporalServer is the Temporal server a test binary's tests share.
type TemporalServer struct {
	Address   string // frontend, 127.0.0.1:PORT
	Namespace string // "default", with devstack.SearchAttributes registered
	Topology  string // TopologyDevServer or TopologyCluster
}

var (
	temporalOnce sync.Once
	temporal     *TemporalServer
	temporalErr  error

	temporalPGOnce sync.Once
	temporalPGURL  string
	temporalPGErr  error
)

// Temporal returns the Temporal server shared by this test binary, started
// on first use: the dev server (headless), or with TM_TEST_TEMPORAL=cluster
// a cluster as `dev --temporal cluster` runs it (no UI) on databases of its
// own (see NewTemporalCluster for where). Either way namespace "default"
// exists with the search attributes, and every service answers.
func Temporal(t testing.TB) *TemporalServer {
	t.Helper()
	temporalOnce.Do(func() {
		switch topo := TemporalTopology(); topo {
		case TopologyDevServer:
			temporal, temporalErr = startDevServer()
		case TopologyCluster:
			temporal, temporalErr = startSharedCluster()
		default:
			temporalErr = fmt.Errorf("TM_TEST_TEMPORAL=%q: want %s (the default) or %s", topo, TopologyDevServer, TopologyCluster)
		}
	})
	if temporalErr != nil {
		t.Fatalf("temporal for tests: %v", temporalErr)
	}
	return temporal
}

func startDevServer() (*TemporalServer, error) {
	dir, err := tempDir("tm-test-temporal-")
	if err != nil {
		return nil, err
	}
	var tmp *devstack.Temporal
	err = onFreePort(func(port int) (err error) {
		tmp, err = devstack.StartTemporal(context.Background(), dir, port, 0, io.Discard)
		return err
	})
	if err != nil {
		return nil, err
	}
	register(tmp.Stop)
	return &TemporalServer{Address: tmp.Address, Namespace: tmp.Namespace, Topology: TopologyDevServer}, nil
}

func startSharedCluster() (*TemporalServer, error) {
	c, err := newCluster("tm-test-temporal-cluster-", "shared")
	if err != nil {
		return nil, err
	}
	register(c.close)
	return &TemporalServer{Address: c.Address, Namespace: c.Namespace, Topology: TopologyCluster}, nil
}

// temporalPostgres returns the PostgreSQL server the clusters keep their
// databases on: $TM_TEST_TEMPORAL_DATABASE_URL (its user needs CREATEDB),
// else a private server started once per test binary. Not the tests'
// PostgreSQL: a cluster holds up to 96 connections (four services, each
// with a pool of 20 on the default store and 4 on visibility) and the
// machine's server allows 100 by default; a private one allows 200 and
// keeps Temporal's load apart from what tests measure.
func temporalPostgres() (string, error) {
	temporalPGOnce.Do(func() {
		if v := os.Getenv("TM_TEST_TEMPORAL_DATABASE_URL"); v != "" {
			temporalPGURL = v
			return
		}
		var err error
		if temporalPGURL, err = privatePostgres("tm-test-temporal-pg-"); err != nil {
			temporalPGErr = fmt.Errorf("PostgreSQL for Temporal: %w", err)
		}
	})
	return temporalPGURL, temporalPGErr
}

// TemporalCluster is a Temporal cluster of one test (NewTemporalCluster):
// the production server on databases of its own, which the test may stop,
// kill and start again on the same databases and frontend port, so that
// clients dialed at Address reconnect by themselves.
type TemporalCluster struct {
	Address   string // frontend, 127.0.0.1:PORT; the same after Start
	Namespace string
	LogPath   string // the server's output, across restarts

	opts devstack.TemporalClusterOptions
	log  *os.File

	mu     sync.Mutex
	server *devstack.TemporalCluster // nil while stopped
}

// NewTemporalCluster starts a cluster for t alone, as `dev --temporal
// cluster` does (8 history shards, SQL visibility, no UI), with databases
// named temporal_<random> and temporal_<random>_visibility on Temporal's
// PostgreSQL (TM_TEST_TEMPORAL_DATABASE_URL, else a private server). The
// cluster stops and its databases are dropped when t ends; its log is
// printed if t failed.
func NewTemporalCluster(t testing.TB) *TemporalCluster {
	t.Helper()
	c, err := newCluster("", t.TempDir())
	if err != nil {
		t.Fatalf("temporal cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("temporal-server log tail (%s):\n%s", c.LogPath, tail(c.LogPath, 30))
		}
		if err := c.close(); err != nil {
			t.Logf("temporal cluster: %v", err)
		}
	})
	return c
}

// newCluster starts a cluster with databases of its own. Its files go to
// dir, or with a prefix to a new temporary directory Main removes.
func newCluster(prefix, dir string) (*TemporalCluster, error) {
	base, err := temporalPostgres()
	if err != nil {
		return nil, err
	}
	if prefix != "" {
		if dir, err = tempDir(prefix); err != nil {
			return nil, err
		}
	}
	rnd := make([]byte, 4)
	if _, err := rand.Read(rnd); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "temporal-server.log"))
	if err != nil {
		return nil, err
	}
	c := &TemporalCluster{LogPath: log.Name(), log: log, opts: devstack.TemporalClusterOptions{
		DataDir:     filepath.Join(dir, "cluster"),
		DatabaseURL: base,
		Database:    "temporal_" + hex.EncodeToString(rnd),
		Log:         log,
	}}
	err = onFreePort(func(port int) error {
		c.opts.Port = port
		return c.Start(context.Background())
	})
	if err != nil {
		_ = c.dropDatabases()
		log.Close()
		return nil, fmt.Errorf("%w (server log: %s)", err, tail(c.LogPath, 5))
	}
	c.Address, c.Namespace = c.server.Address, c.server.Namespace
	return c, nil
}

// Start starts the server again on the cluster's databases and frontend
// port, returning once it serves (what StartTemporalCluster waits for). It
// does nothing while the server runs.
func (c *TemporalCluster) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.server != nil {
		return nil
	}
	s, err := devstack.StartTemporalCluster(ctx, c.opts)
	if err != nil {
		return err
	}
	c.server = s
	return nil
}

// Stop stops the server the way an operator does (SIGTERM: it leaves the
// ring and closes its shards) and returns once it has exited.
func (c *TemporalCluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.server == nil {
		return nil
	}
	err := c.server.Stop()
	c.server = nil
	return err
}

// Kill SIGKILLs the server's process group, as a crash or the OOM killer
// would, and returns once it is gone.
func (c *TemporalCluster) Kill() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.server == nil {
		return nil
	}
	err := syscall.Kill(-c.server.PID(), syscall.SIGKILL)
	_ = c.server.Stop() // reaps it (and anything left of its group)
	c.server = nil
	return err
}

// close stops the server, drops its databases and closes its log.
func (c *TemporalCluster) close() error {
	_ = c.Stop()
	err := c.dropDatabases()
	c.log.Close()
	return err
}

func (c *TemporalCluster) dropDatabases() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.opts.DatabaseURL)
	if err != nil {
		return fmt.Errorf("drop Temporal databases: %w", err)
	}
	defer conn.Close(context.Background())
	for _, db := range []string{c.opts.Database, c.opts.Database + "_visibility"} {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop Temporal database %s: %w", db, err)
		}
	}
	return nil
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
