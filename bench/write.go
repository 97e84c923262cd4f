package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// floorWorkflow is the empty update-with-start round trip: the smallest
// thing the write path could cost on this Temporal server.
func floorWorkflow(ctx workflow.Context) error {
	acked := false
	if err := workflow.SetUpdateHandler(ctx, "ack", func(workflow.Context) (string, error) {
		acked = true
		return "ok", nil
	}); err != nil {
		return err
	}
	return workflow.Await(ctx, func() bool { return acked && workflow.AllHandlersFinished(ctx) })
}

type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}

// measure runs n calls of f with the given concurrency and returns the
// latencies and the rate achieved.
func measure(n, concurrency int, f func(i int) error) ([]time.Duration, float64, error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t0 := time.Now()
				err := f(i)
				lat[i] = time.Since(t0)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return lat, float64(n) / time.Since(start).Seconds(), firstErr
}

func pct(lat []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), lat...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	idx := int(float64(len(s)-1) * p)
	return s[idx]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// floorRig runs the empty update-with-start against one Temporal server,
// with a worker for it in this process.
type floorRig struct {
	tc  client.Client
	w   worker.Worker
	run int64
}

func newFloorRig(ctx context.Context, hostPort string) (*floorRig, error) {
	tc, err := client.DialContext(ctx, client.Options{HostPort: hostPort, Logger: quietLogger{}})
	if err != nil {
		return nil, err
	}
	w := worker.New(tc, "bench-floor", worker.Options{})
	w.RegisterWorkflowWithOptions(floorWorkflow, workflow.RegisterOptions{Name: "BenchFloor"})
	if err := w.Start(); err != nil {
		tc.Close()
		return nil, err
	}
	return &floorRig{tc: tc, w: w, run: time.Now().UnixNano()}, nil
}

func (r *floorRig) close() { r.w.Stop(); r.tc.Close() }

func (r *floorRig) op(ctx context.Context, prefix string) func(int) error {
	return func(i int) error {
		op := r.tc.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
			ID: fmt.Sprintf("bench-floor-%d-%s-%d", r.run, prefix, i), TaskQueue: "bench-floor",
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		}, "BenchFloor")
		h, err := r.tc.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
			StartWorkflowOperation: op,
			UpdateOptions:          client.UpdateWorkflowOptions{UpdateName: "ack", WaitForStage: client.WorkflowUpdateStageCompleted},
		})
		if err != nil {
			return err
		}
		var s string
		return h.Get(ctx, &s)
	}
}

// commitOp creates a route through api's POST /api/v1/routes: the real
// commit-ack.
func commitOp(hc *http.Client, api string, run int64, prefix string) func(int) error {
	return func(i int) error {
		body, _ := json.Marshal(map[string]any{
			"tenant": "bench", "service": fmt.Sprintf("svc-%d", run%100000), "env": prefix,
			"version": fmt.Sprintf("v%d", i), "url": "https://bench.example/" + prefix,
		})
		res, err := hc.Post("http://"+api+"/api/v1/routes", "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			return fmt.Errorf("create answered %s", res.Status)
		}
		return nil
	}
}

// result is one measurement: latencies, rate, and what the sampled
// processes (the Temporal server) used meanwhile.
type result struct {
	lat  []time.Duration
	rate float64
	use  usage
	grew int64 // growth of the server's SQLite files in bytes, -1: unknown
}

func (r result) p50() time.Duration { return pct(r.lat, .5) }

func (r result) String() string {
	s := fmt.Sprintf("%.1f/s, p50 %s; Temporal server %s", r.rate, ms(r.p50()), r.use.perOp(len(r.lat)))
	if r.grew >= 0 {
		s += fmt.Sprintf(" (SQLite files grew %.1f KiB/op)", float64(r.grew)/1024/float64(len(r.lat)))
	}
	return s
}

// measureUse is measure while sampling pids from /proc and the size of the
// SQLite database db (with its -wal, -shm and -journal files; "" for none).
func measureUse(n, concurrency int, f func(int) error, db string, pids ...int) (result, error) {
	size0 := sqliteSize(db)
	s := sample(pids...)
	lat, rate, err := measure(n, concurrency, f)
	r := result{lat: lat, rate: rate, use: s.done(), grew: -1}
	if size1 := sqliteSize(db); size0 >= 0 && size1 >= 0 {
		r.grew = size1 - size0
	}
	return r, err
}

// sqliteSize is the size of an SQLite database and its side files, -1 when
// db is "" or missing.
func sqliteSize(db string) int64 {
	if db == "" {
		return -1
	}
	var total int64 = -1
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		if st, err := os.Stat(db + suffix); err == nil {
			total = max(total, 0) + st.Size()
		}
	}
	return total
}

// loop calls f with concurrency goroutines and increasing i until ctx is
// done, and returns how many calls completed.
func loop(ctx context.Context, concurrency int, f func(i int) error) int {
	var next, done atomic.Int64
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if f(int(next.Add(1))) == nil {
					done.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return int(done.Load())
}

// procGroup is a set of processes reported together.
type procGroup struct {
	name string
	pids []int
}

// platformProcs are the dev process, each process it started (with its own
// children: Postgres backends) and this process, the load generator.
func platformProcs(devPID int) []procGroup {
	groups := []procGroup{{name: "trafficmanager dev (api, resolver, worker, kfake, FerretDB)", pids: []int{devPID}}}
	all := descendants(devPID)
	for _, pid := range all[1:] {
		if ps, err := readProc(pid); err == nil && ps.ppid == devPID {
			groups = append(groups, procGroup{name: ps.comm, pids: descendants(pid)})
		}
	}
	return append(groups, procGroup{name: "bench (load generator)", pids: []int{os.Getpid()}})
}

// cpuBreakdown runs f and reports how many cores each group kept busy.
func cpuBreakdown(groups []procGroup, f func()) string {
	samplers := make([]*sampler, len(groups))
	for i, g := range groups {
		samplers[i] = sample(g.pids...)
	}
	all := sampleMachine()
	f()
	parts := make([]string, len(groups))
	var ours float64
	for i, g := range groups {
		c := samplers[i].done().cores()
		ours += c
		parts[i] = fmt.Sprintf("%s %.2f", g.name, c)
	}
	machine := all.done().cores()
	return fmt.Sprintf("cores busy: %s; whole machine %.2f of %d (%.2f outside these processes)",
		strings.Join(parts, ", "), machine, numCPU(), max(0, machine-ours))
}

func benchWrites(ctx context.Context, b *bench, n int) ([]row, error) {
	p := b.p
	var server []int
	temporalPID, err := childNamed(p.pid(), "temporal")
	if err != nil {
		// `dev --temporal cluster` runs the real server, whose store is the
		// dev Postgres: count both (the platform's own queries are a small
		// part of Postgres' work).
		if temporalPID, err = childNamed(p.pid(), "temporal-server"); err != nil {
			return nil, err
		}
		if pg, err := childNamed(p.pid(), "postgres"); err == nil {
			server = append(server, descendants(pg)...)
		}
	}
	server = append(server, temporalPID)
	db := filepath.Join(p.dir, "temporal", "temporal.db") // where dev keeps it
	rig, err := newFloorRig(ctx, p.temporal)
	if err != nil {
		return nil, err
	}
	defer rig.close()
	run := time.Now().UnixNano()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	// Warm both paths (connections, caches, the worker's sticky queue).
	_, _, _ = measure(20, 1, rig.op(ctx, "warm"))
	_, _, _ = measure(20, 1, commitOp(hc, p.api, run, "warm"))

	var rows []row
	var floor16, commit16 result
	for _, c := range []int{1, 16, 64} {
		fl, err := measureUse(n, c, rig.op(ctx, fmt.Sprintf("c%d", c)), db, server...)
		if err != nil {
			return nil, fmt.Errorf("floor: %w", err)
		}
		cl, err := measureUse(n, c, commitOp(hc, p.api, run, fmt.Sprintf("c%d", c)), db, server...)
		if err != nil {
			return nil, fmt.Errorf("commit-ack: %w", err)
		}
		fmt.Printf("write c=%d: commit-ack p50 %s p99 %s %.1f/s; floor p50 %s p99 %s %.1f/s\n",
			c, ms(pct(cl.lat, .5)), ms(pct(cl.lat, .99)), cl.rate, ms(pct(fl.lat, .5)), ms(pct(fl.lat, .99)), fl.rate)
		goal := "p50 ≤ 25 ms and ≤ 1.5× floor"
		switch c {
		case 16:
			goal = "≥ 50/s"
			floor16, commit16 = fl, cl
		case 64:
			goal = "—"
		}
		rows = append(rows, row{
			figure:   fmt.Sprintf("write commit-ack, concurrency %d (p50 / p99, rate)", c),
			value:    fmt.Sprintf("%s / %s, %.1f/s", ms(pct(cl.lat, .5)), ms(pct(cl.lat, .99)), cl.rate),
			baseline: fmt.Sprintf("empty update-with-start: %s / %s, %.1f/s", ms(pct(fl.lat, .5)), ms(pct(fl.lat, .99)), fl.rate),
			ratio:    fmt.Sprintf("%.2f× (p50)", float64(cl.p50())/float64(fl.p50())),
			goal:     goal,
		})
	}

	perfFloor(ctx, b, rig, temporalPID, "temporal-tuned-floor-c16", "tuned")

	// The c=16 commit-ack load once more, with a CPU profile of the dev
	// process (api and worker; in dev they are one process) and, when perf
	// is installed, of the Temporal dev server in the same window.
	var ops int
	var file, perfFile string
	var perfErr error
	_, noPerf := exec.LookPath("perf")
	breakdown := cpuBreakdown(platformProcs(p.pid()), func() {
		perfDone := make(chan struct{})
		go func() {
			defer close(perfDone)
			if noPerf == nil {
				perfFile, perfErr = perfRecord(ctx, temporalPID, b.tmp, "temporal-write-c16")
			}
		}()
		file, ops, err = profileUnderLoad(ctx, "http://"+p.api, b.tmp, "api-worker-write-c16", func(ctx context.Context) int {
			return loop(ctx, 16, commitOp(hc, p.api, run, "prof"))
		})
		<-perfDone
	})
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	fmt.Printf("write c=16 profiled: %d mutations in %d s; %s\n", ops, profileSeconds, breakdown)
	wctx := fmt.Sprintf("%.0f mutations/s while profiled; %s.", float64(ops)/profileSeconds, breakdown)
	b.profiles = append(b.profiles, profileRun{
		title:   "Writes: commit-ack at concurrency 16 (api + worker)",
		context: wctx,
		file:    file,
	})
	switch {
	case noPerf != nil:
		fmt.Println("perf is not installed: no profile of the Temporal dev server")
	case perfErr != nil:
		fmt.Println("no profile of the Temporal dev server:", perfErr)
	default:
		b.profiles = append(b.profiles, profileRun{
			title:   "Writes: the Temporal dev server (tuned) during the same commit-ack run (Linux perf)",
			context: wctx + " The server's own pprof port is not exposed by `temporal server start-dev`.",
			file:    perfFile,
			perf:    true,
			parts:   temporalParts,
		})
	}

	cmp, err := compareTemporal(ctx, b, n, floor16, commit16)
	if err != nil {
		return nil, fmt.Errorf("tuned vs default Temporal: %w", err)
	}
	return append(rows, cmp...), nil
}
