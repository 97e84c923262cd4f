package devstack

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// probeWorkflow holds a value set by updates until one sets "done": a
// mutation the way the platform sends them (update-with-start), and a
// workflow that is still running when the cluster restarts.
func probeWorkflow(ctx workflow.Context) (string, error) {
	var v string
	if err := workflow.SetUpdateHandler(ctx, "set", func(_ workflow.Context, nv string) (string, error) {
		v = nv
		return "set " + nv, nil
	}); err != nil {
		return "", err
	}
	if err := workflow.Await(ctx, func() bool { return v == "done" }); err != nil {
		return "", err
	}
	return v, nil
}

// withProbeWorker runs f with a worker for probeWorkflow on the cluster.
func withProbeWorker(t *testing.T, tc client.Client, queue string, f func()) {
	t.Helper()
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflow(probeWorkflow)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	f()
}

// The production topology's Temporal: created in a fresh PostgreSQL, serving
// namespace default with the search attributes, taking an update-with-start
// like the api sends, showing it in SQL visibility and the UI; stopped with
// nothing left running, and restarted on the same databases with the
// workflow still there (and its shard count fixed).
func TestTemporalClusterRestartKeepsWorkflows(t *testing.T) {
	if _, _, _, err := TemporalClusterBinaries(true); err != nil {
		// `go tool task test` runs setup first, which installs them: a
		// missing binary is a broken machine, not a reason to skip.
		t.Fatalf("TEMPORAL CLUSTER NOT TESTED: %v", err)
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	pg, err := StartPostgres(ctx, dir+"/pg", freePort(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	log := &tailBuffer{}
	defer func() {
		if t.Failed() {
			t.Logf("server output (tail): %s", log.lastLines(20))
		}
	}()
	opts := TemporalClusterOptions{DataDir: dir + "/temporal", DatabaseURL: pg.DSN, Port: freePort(t), UIPort: freePort(t), Log: log}

	start := time.Now()
	tp, err := StartTemporalCluster(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first start (databases created and migrated): %v", time.Since(start).Round(time.Millisecond))
	if tp.Config.HistoryShards != DefaultHistoryShards || tp.Namespace != "default" {
		t.Fatalf("cluster %+v", tp.Config)
	}
	for _, url := range []string{tp.UIURL, tp.MetricsURL} {
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", url, res.Status)
		}
	}

	tc, err := client.DialContext(ctx, client.Options{HostPort: tp.Address, Logger: nopLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	health, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{})
	if err != nil {
		t.Fatal(err, health)
	}
	sas, err := tc.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	for _, sa := range SearchAttributes {
		if sas.GetCustomAttributes()[sa] != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
			t.Errorf("search attribute %s: %v", sa, sas.GetCustomAttributes()[sa])
		}
	}

	const queue, id = "cluster-probe", "route-t-s-prod-v1"
	tenant := temporal.NewSearchAttributeKeyKeyword("TmTenant")
	withProbeWorker(t, tc, queue, func() {
		op := tc.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
			ID: id, TaskQueue: queue,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
			TypedSearchAttributes:    temporal.NewSearchAttributes(tenant.ValueSet("t")),
		}, probeWorkflow)
		h, err := tc.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
			StartWorkflowOperation: op,
			UpdateOptions:          client.UpdateWorkflowOptions{UpdateName: "set", Args: []any{"v1"}, WaitForStage: client.WorkflowUpdateStageCompleted},
		})
		if err != nil {
			t.Fatal(err)
		}
		var got string
		if err := h.Get(ctx, &got); err != nil || got != "set v1" {
			t.Fatalf("update-with-start: %q, %v", got, err)
		}
	})
	// Visibility (its own database) is written asynchronously.
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default", Query: "TmTenant = 't'"})
		if err == nil && len(res.GetExecutions()) == 1 && res.GetExecutions()[0].GetExecution().GetWorkflowId() == id {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("visibility: %v, %v", res, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	tc.Close()

	serverPID, uiPID := tp.PID(), tp.ui.pid()
	start = time.Now()
	if err := tp.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stop: %v", time.Since(start).Round(time.Millisecond))
	groupGone(t, serverPID)
	groupGone(t, uiPID)
	if err := tp.Stop(); err != nil { // a second Stop is harmless
		t.Fatal(err)
	}

	// The shard count is the databases': another one is refused in a sentence.
	bad := opts
	bad.Port, bad.UIPort, bad.HistoryShards = freePort(t), 0, 4
	if _, err := StartTemporalCluster(ctx, bad); err == nil || !strings.Contains(err.Error(), "created with 8 history shards") {
		t.Fatalf("4 shards on an 8-shard cluster: %v", err)
	}

	// Restarted headless on other ports: the running workflow is there and
	// takes the update that completes it.
	again := opts
	again.Port, again.UIPort = freePort(t), 0
	start = time.Now()
	tp2, err := StartTemporalCluster(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	defer tp2.Stop()
	t.Logf("restart (schema current): %v", time.Since(start).Round(time.Millisecond))
	if tp2.UIURL != "" || tp2.Config.HistoryShards != DefaultHistoryShards {
		t.Fatalf("restarted cluster: UI %q, %d shards", tp2.UIURL, tp2.Config.HistoryShards)
	}
	tc, err = client.DialContext(ctx, client.Options{HostPort: tp2.Address, Logger: nopLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	desc, err := tc.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if st := desc.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("status %v", st)
	}
	withProbeWorker(t, tc, queue, func() {
		h, err := tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: "set", Args: []any{"done"}, WaitForStage: client.WorkflowUpdateStageCompleted})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Get(ctx, nil); err != nil {
			t.Fatal(err)
		}
		var result string
		if err := tc.GetWorkflow(ctx, id, "").Get(ctx, &result); err != nil || result != "done" {
			t.Fatalf("workflow result %q, %v", result, err)
		}
	})
}

// The compose scripts under deploy/temporal/, run here with the same tools
// the admin-tools image has (temporal-sql-tool, temporal), set up a cluster
// that serves: schema from nothing (twice: they are idempotent), then the
// server on the rendered config, then namespace and search attributes.
func TestComposeScriptsSetUpTheCluster(t *testing.T) {
	serverBin, sqlTool, _, err := TemporalClusterBinaries(false)
	if err != nil {
		t.Fatalf("TEMPORAL CLUSTER NOT TESTED: %v", err)
	}
	cli, err := TemporalBinary()
	if err != nil {
		t.Fatalf("TEMPORAL CLUSTER NOT TESTED: %v", err)
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	pg, err := StartPostgres(ctx, dir+"/pg", freePort(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	log := &tailBuffer{}
	script := func(name string, env ...string) {
		t.Helper()
		path := append([]string{filepath.Dir(sqlTool), filepath.Dir(cli)}, filepath.SplitList(os.Getenv("PATH"))...)
		env = append(env, "PATH="+strings.Join(path, string(filepath.ListSeparator)))
		if err := runEnv(ctx, name, log, nil, env, "sh", filepath.Join("..", "..", "deploy", "temporal", name)); err != nil {
			t.Fatalf("%s: %v (output: %s)", name, err, log.lastLines(10))
		}
	}
	for range 2 {
		script("setup-schema.sh", "SQL_PLUGIN=postgres12", "SQL_HOST=127.0.0.1", "SQL_PORT="+strconv.Itoa(pg.Port), "SQL_USER=postgres", "SQL_PASSWORD=")
	}

	cfg, err := devClusterConfig(TemporalClusterOptions{DatabaseURL: pg.DSN}, dir+"/temporal")
	if err != nil {
		t.Fatal(err)
	}
	if err := pickPorts(&cfg.Ports, freePort(t), 0); err != nil {
		t.Fatal(err)
	}
	srv, err := startServer(cfg, dir+"/temporal", serverBin, log)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop(syscall.SIGTERM, false, 20*time.Second)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Ports.Frontend))
	script("setup-namespace.sh", "TEMPORAL_ADDRESS="+addr)

	tc, err := client.DialContext(ctx, client.Options{HostPort: addr, Logger: nopLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	ns, err := tc.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if r := ns.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration(); r != cfg.NamespaceRetention {
		t.Errorf("retention %v, want %v", r, cfg.NamespaceRetention)
	}
	// What dev's own readiness check asks is now true.
	if err := ensureNamespace(ctx, tc, cfg); err != nil {
		t.Fatalf("after the scripts: %v", err)
	}
}
