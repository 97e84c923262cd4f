package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/trafficmanager/trafficmanager/internal/devstack"
)

// compareTemporal measures the write figures at concurrency 16 against a
// second Temporal dev server started with the server's defaults (no
// dynamic config, no SQLite pragmas), next to tuned, the same figures on the
// platform's tuned server. The floor runs from this process; the real
// commit-ack runs through a second `trafficmanager dev` that uses the
// platform's Postgres, Redis, Kafka and MongoDB and only the other
// Temporal server. Both servers are stopped before it returns.
func compareTemporal(ctx context.Context, b *bench, n int, tunedFloor, tunedCommit result) ([]row, error) {
	port, err := devstack.FreePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(b.tmp, "temporal-default.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	start := time.Now()
	t, err := devstack.StartTemporalWith(ctx, filepath.Join(b.tmp, "temporal-default"), port, 0, logf, devstack.TemporalOptions{})
	if err != nil {
		return nil, err
	}
	defer func() { _ = t.Stop() }()
	fmt.Printf("default Temporal dev server up in %s on %s\n", time.Since(start).Round(time.Millisecond), t.Address)

	rig, err := newFloorRig(ctx, t.Address)
	if err != nil {
		return nil, err
	}
	defer rig.close()
	_, _, _ = measure(20, 1, rig.op(ctx, "warm"))
	floor, err := measureUse(n, 16, rig.op(ctx, "c16"), t.DBFile, t.PID())
	if err != nil {
		return nil, fmt.Errorf("floor: %w", err)
	}
	fmt.Printf("floor c=16: tuned %s | defaults %s\n", tunedFloor, floor)
	perfFloor(ctx, b, rig, t.PID(), "temporal-defaults-floor-c16", "defaults")
	rows := []row{temporalRow("empty update-with-start (the floor)", tunedFloor, floor)}

	env := []string{"TM_TEMPORAL_ADDRESS=" + t.Address}
	for _, v := range []string{"TM_DATABASE_URL", "TM_REDIS_URL", "TM_KAFKA_BROKERS", "TM_KAFKA_TOPIC", "TM_MONGO_URI", "TM_MONGO_DATABASE"} {
		env = append(env, v+"="+b.p.devEnv(v))
	}
	var p2 *platform
	for attempt := 0; attempt < 2; attempt++ { // free ports may be taken between choosing and binding
		if p2, err = startPlatform(ctx, b.bin, env...); err == nil {
			break
		}
	}
	if err != nil {
		fmt.Println("a second trafficmanager dev on the default server did not start:", err)
		return append(rows, row{figure: "Temporal dev server, commit-ack at concurrency 16: tuned vs defaults",
			value: "not measured: " + err.Error(), baseline: "—", ratio: "—", goal: "—"}), nil
	}
	defer p2.stop()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	run := time.Now().UnixNano()
	_, _, _ = measure(20, 1, commitOp(hc, p2.api, run, "dflt-warm"))
	commit, err := measureUse(n, 16, commitOp(hc, p2.api, run, "dflt-c16"), t.DBFile, t.PID())
	if err != nil {
		return nil, fmt.Errorf("commit-ack: %w", err)
	}
	fmt.Printf("commit-ack c=16: tuned %s | defaults %s\n", tunedCommit, commit)
	return append(rows, temporalRow("commit-ack", tunedCommit, commit)), nil
}

func temporalRow(what string, tuned, dflt result) row {
	return row{
		figure:   fmt.Sprintf("Temporal dev server, %s at concurrency 16: tuned (the platform's) vs defaults (rate, p50, server CPU and bytes written per op)", what),
		value:    "tuned: " + tuned.String(),
		baseline: "defaults (no dynamic config, no SQLite pragmas): " + dflt.String(),
		ratio:    fmt.Sprintf("%.2f× rate", tuned.rate/dflt.rate),
		goal:     "—",
	}
}

// temporalParts are the parts of the Temporal server whose inclusive CPU
// the perf summaries report.
var temporalParts = []part{
	{"gRPC handlers", "google.golang.org/grpc.(*Server).handleStream"},
	{"visibility records (the visibility queue)", "go.temporal.io/server/service/history.(*visibilityQueueTaskExecutor).Execute"},
	{"workflow execution updates", "go.temporal.io/server/common/persistence.(*executionManagerImpl).UpdateWorkflowExecution"},
	{"workflow creation", "go.temporal.io/server/common/persistence.(*executionManagerImpl).CreateWorkflowExecution"},
	{"history appends", "go.temporal.io/server/common/persistence/sql.(*sqlExecutionStore).AppendHistoryNodes"},
	{"matching", "go.temporal.io/server/service/matching.(*Handler)."},
	{"SQLite statement preparation", "modernc.org/sqlite/lib._sqlite3Prepare"},
	{"SQLite statement execution (with its pwrite and fsync)", "modernc.org/sqlite/lib.Xsqlite3_step"},
	{"pwrite", "modernc.org/libc.Xpwrite"},
	{"fsync", "modernc.org/libc.Xfsync"},
	{"GC mark workers", "runtime.gcBgMarkWorker"},
}

// perfFloor profiles the Temporal server pid with perf while the floor runs
// at concurrency 16 from rig, when perf is installed.
func perfFloor(ctx context.Context, b *bench, rig *floorRig, pid int, name, which string) {
	if _, err := exec.LookPath("perf"); err != nil {
		return
	}
	lctx, stop := context.WithCancel(ctx)
	ops := make(chan int, 1)
	// Calls in flight finish on ctx; lctx only stops new ones.
	go func() { ops <- loop(lctx, 16, rig.op(ctx, name)) }()
	s := sample(pid)
	file, err := perfRecord(ctx, pid, b.tmp, name)
	u := s.done()
	stop()
	n := <-ops
	if err != nil {
		fmt.Println("no perf profile of the Temporal dev server:", err)
		return
	}
	b.profiles = append(b.profiles, profileRun{
		title: fmt.Sprintf("Temporal dev server (%s) under the empty update-with-start at concurrency 16 (Linux perf)", which),
		context: fmt.Sprintf("%.0f ops/s while profiled; the server kept %.2f cores busy (%.1f CPU-ms per op).",
			float64(n)/profileSeconds, u.cores(), u.cpu.Seconds()*1000/float64(max(n, 1))),
		file:  file,
		perf:  true,
		parts: temporalParts,
	})
}
