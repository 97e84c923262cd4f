package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The binaries `go tool task setup` installs for the cluster, renamed from
// the generic names `go install` gives them (server, sql, server).
const (
	temporalServerBin  = "temporal-server"
	temporalSQLToolBin = "temporal-sql-tool"
	temporalUIBin      = "temporal-ui-server"
)

// TemporalClusterBinaries finds temporal-server, temporal-sql-tool and
// (withUI) temporal-ui-server on PATH or in the go install directories.
func TemporalClusterBinaries(withUI bool) (server, sqlTool, ui string, err error) {
	var missing []string
	look := func(name string) string {
		p, err := lookBin(name, goBinDirs()...)
		if err != nil {
			missing = append(missing, name)
		}
		return p
	}
	server, sqlTool = look(temporalServerBin), look(temporalSQLToolBin)
	if withUI {
		ui = look(temporalUIBin)
	}
	if len(missing) > 0 {
		return "", "", "", fmt.Errorf("%s not found: run `go tool task setup` (it installs the Temporal server %s, its SQL tool and the UI server %s), or use --temporal devserver, or set TM_TEMPORAL_ADDRESS to use a running server",
			strings.Join(missing, ", "), TemporalServerVersion, TemporalUIVersion)
	}
	return server, sqlTool, ui, nil
}

// TemporalClusterOptions configure StartTemporalCluster.
type TemporalClusterOptions struct {
	DataDir string // rendered configuration (the state is in PostgreSQL)
	// DatabaseURL is a PostgreSQL server (its database part is ignored)
	// where the cluster keeps Database and Database+"_visibility",
	// created when missing. Its user needs CREATEDB for the first start.
	DatabaseURL string
	Database    string // "" = "temporal"
	Port        int    // frontend gRPC
	UIPort      int    // 0: no UI
	// HistoryShards of a new cluster (0: DefaultHistoryShards). An existing
	// cluster keeps its count; asking for another one is an error.
	HistoryShards int
	Log           io.Writer // the server's and the tools' output (nil: discarded)
}

// TemporalCluster is a Temporal server (all four services in one process,
// PostgreSQL persistence and SQL visibility) and, optionally, its UI.
type TemporalCluster struct {
	Address    string // frontend, 127.0.0.1:PORT
	UIURL      string // empty without UI
	MetricsURL string // the server's Prometheus endpoint
	Namespace  string
	Config     TemporalClusterConfig // what the server runs with
	server, ui *child
}

// StartTemporalCluster creates or migrates the cluster's databases with
// temporal-sql-tool, renders the configuration into o.DataDir, starts the
// server and returns once the frontend is serving, namespace "default" has
// the SearchAttributes and the UI answers. Data lives in PostgreSQL, so a
// restart on the same databases finds its workflows.
func StartTemporalCluster(ctx context.Context, o TemporalClusterOptions) (*TemporalCluster, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Database == "" {
		o.Database = "temporal"
	}
	if err := checkPort(o.Port, "Temporal frontend", "TM_TEMPORAL_ADDRESS"); err != nil {
		return nil, err
	}
	if o.UIPort != 0 {
		if err := checkPort(o.UIPort, "Temporal UI", "TM_TEMPORAL_ADDRESS"); err != nil {
			return nil, err
		}
	}
	serverBin, sqlTool, uiBin, err := TemporalClusterBinaries(o.UIPort != 0)
	if err != nil {
		return nil, err
	}
	dataDir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return nil, err
	}

	cfg, err := devClusterConfig(o, dataDir)
	if err != nil {
		return nil, err
	}
	if cfg.HistoryShards, err = prepareTemporalDatabases(ctx, o, cfg, sqlTool); err != nil {
		return nil, err
	}
	if err := pickPorts(&cfg.Ports, o.Port, o.UIPort); err != nil {
		return nil, err
	}
	srv, err := startServer(cfg, dataDir, serverBin, o.Log)
	if err != nil {
		return nil, err
	}
	t := &TemporalCluster{
		Address:    fmt.Sprintf("127.0.0.1:%d", o.Port),
		MetricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", cfg.Ports.Metrics),
		Namespace:  "default",
		Config:     cfg,
		server:     srv,
	}
	if err := t.waitReady(ctx); err != nil {
		_ = t.Stop()
		return nil, fmt.Errorf("Temporal server (%s): %w", serverBin, err)
	}
	if o.UIPort != 0 {
		if err := t.startUI(ctx, uiBin, dataDir, o.Log); err != nil {
			_ = t.Stop()
			return nil, err
		}
	}
	return t, nil
}

// startServer renders cfg's static and dynamic config into dataDir/config
// and starts temporal-server on them.
func startServer(cfg TemporalClusterConfig, dataDir, serverBin string, log io.Writer) (*child, error) {
	if err := writeRendered(cfg, "config", filepath.Join(dataDir, "config", "trafficmanager.yaml")); err != nil {
		return nil, err
	}
	if err := writeRendered(cfg, "dynamicconfig", cfg.DynamicConfigPath); err != nil {
		return nil, err
	}
	return startChild("temporal-server", log, nil, serverBin,
		"--root", dataDir, "--config", "config", "--env", "trafficmanager", "--allow-no-auth", "start")
}

// devClusterConfig is the configuration `dev` renders, but for the shard
// count and the ports (chosen at start): the topology of
// NewTemporalClusterConfig on loopback, the database of o, files in dataDir.
func devClusterConfig(o TemporalClusterOptions, dataDir string) (TemporalClusterConfig, error) {
	cfg := NewTemporalClusterConfig("trafficmanager dev --temporal cluster", "127.0.0.1")
	if err := dbFromURL(&cfg.DB, o.DatabaseURL); err != nil {
		return cfg, err
	}
	if o.Database == "" {
		o.Database = "temporal"
	}
	cfg.DB.Database, cfg.DB.VisibilityDatabase = o.Database, o.Database+"_visibility"
	cfg.DynamicConfigPath = filepath.Join(dataDir, "config", "dynamicconfig.yaml")
	return cfg, nil
}

// pickPorts sets the frontend and UI ports and a free port for everything else.
func pickPorts(p *TemporalPorts, frontend, ui int) error {
	p.Frontend, p.UI = frontend, ui
	for _, port := range []*int{&p.FrontendHTTP, &p.FrontendMembership, &p.History, &p.HistoryMembership,
		&p.Matching, &p.MatchingMembership, &p.Worker, &p.WorkerMembership, &p.Metrics} {
		var err error
		if *port, err = FreePort(); err != nil {
			return err
		}
	}
	return nil
}

// writeRendered renders template name into path, readable by this user
// only (the file may hold a database password).
func writeRendered(cfg TemporalClusterConfig, name, path string) error {
	b, err := cfg.Render(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// waitReady waits for the frontend to serve, registers namespace default
// and the search attributes when missing, and returns once a visibility
// query on those attributes is accepted: the namespace registry every
// service caches (refreshed every 2 s) then knows both.
func (t *TemporalCluster) waitReady(ctx context.Context) error {
	var tc client.Client
	defer func() {
		if tc != nil {
			tc.Close()
		}
	}()
	return waitFor(ctx, t.server, 90*time.Second, func(ctx context.Context) error {
		if tc == nil {
			c, err := client.DialContext(ctx, client.Options{HostPort: t.Address, Namespace: t.Namespace, Logger: nopLogger{}})
			if err != nil {
				return err
			}
			tc = c
		}
		if _, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
			return err
		}
		return ensureNamespace(ctx, tc, t.Config)
	})
}

// ensureNamespace registers the namespace with its search attributes
// (Keyword) unless they exist, then checks the frontend accepts a query on
// them.
func ensureNamespace(ctx context.Context, tc client.Client, cfg TemporalClusterConfig) error {
	ws, ops := tc.WorkflowService(), tc.OperatorService()
	ns := cfg.Namespace
	_, err := ws.DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: ns})
	var notFound *serviceerror.NamespaceNotFound
	if errors.As(err, &notFound) {
		_, err = ws.RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace:                        ns,
			WorkflowExecutionRetentionPeriod: durationpb.New(cfg.NamespaceRetention),
		})
		var exists *serviceerror.NamespaceAlreadyExists
		if errors.As(err, &exists) {
			err = nil
		}
	}
	if err != nil {
		return err
	}
	res, err := ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		return err
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, sa := range cfg.SearchAttributes {
		if _, ok := res.GetCustomAttributes()[sa]; !ok {
			missing[sa] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
		}
	}
	for _, sa := range cfg.KeywordListAttributes {
		if _, ok := res.GetCustomAttributes()[sa]; !ok {
			missing[sa] = enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST
		}
	}
	if len(missing) > 0 {
		if _, err := ops.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: ns, SearchAttributes: missing}); err != nil {
			return err
		}
		return fmt.Errorf("search attributes added, waiting for the namespace registry")
	}
	if _, err := ws.CountWorkflowExecutions(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: ns, Query: cfg.ReadinessQuery()}); err != nil {
		return err
	}
	// The frontend serving is not the history and matching services
	// having joined the ring: ask each for something that does not exist.
	_, err = ws.DescribeWorkflowExecution(ctx, &workflowservice.DescribeWorkflowExecutionRequest{
		Namespace: ns, Execution: &commonpb.WorkflowExecution{WorkflowId: "readiness-probe"}})
	if !errors.As(err, new(*serviceerror.NotFound)) {
		return fmt.Errorf("history service: %w", err)
	}
	_, err = ws.DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
		Namespace: ns, TaskQueue: &taskqueuepb.TaskQueue{Name: "readiness-probe"}, TaskQueueType: enumspb.TASK_QUEUE_TYPE_WORKFLOW})
	if err != nil {
		return fmt.Errorf("matching service: %w", err)
	}
	return nil
}

// startUI runs temporal-ui-server on the rendered "ui" configuration and
// waits for its page.
func (t *TemporalCluster) startUI(ctx context.Context, bin, dataDir string, log io.Writer) error {
	if err := writeRendered(t.Config, "ui", filepath.Join(dataDir, "ui", "trafficmanager.yaml")); err != nil {
		return err
	}
	c, err := startChild("temporal-ui-server", log, nil, bin,
		"--root", dataDir, "--config", "ui", "--env", "trafficmanager", "start")
	if err != nil {
		return err
	}
	t.ui = c
	url := fmt.Sprintf("http://127.0.0.1:%d", t.Config.Ports.UI)
	err = waitFor(ctx, c, 30*time.Second, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("UI answered %s", res.Status)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("Temporal UI (%s): %w", bin, err)
	}
	t.UIURL = url
	return nil
}

// PID is the server's process id.
func (t *TemporalCluster) PID() int { return t.server.pid() }

// Stop stops the UI, then the server (SIGTERM, which it handles by leaving
// the ring and closing its shards; SIGKILL after 20 s). Nothing either
// started is left running; a second Stop does nothing.
func (t *TemporalCluster) Stop() error {
	t.ui.stop(syscall.SIGTERM, false, 5*time.Second)
	t.server.stop(syscall.SIGTERM, false, 20*time.Second)
	return nil
}
