package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
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

func benchWrites(ctx context.Context, p *platform, n int) ([]row, error) {
	tc, err := client.DialContext(ctx, client.Options{HostPort: p.temporal, Logger: quietLogger{}})
	if err != nil {
		return nil, err
	}
	defer tc.Close()
	w := worker.New(tc, "bench-floor", worker.Options{})
	w.RegisterWorkflowWithOptions(floorWorkflow, workflow.RegisterOptions{Name: "BenchFloor"})
	if err := w.Start(); err != nil {
		return nil, err
	}
	defer w.Stop()

	run := time.Now().UnixNano()
	floor := func(prefix string) func(int) error {
		return func(i int) error {
			op := tc.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
				ID: fmt.Sprintf("bench-floor-%d-%s-%d", run, prefix, i), TaskQueue: "bench-floor",
				WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
			}, "BenchFloor")
			h, err := tc.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
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
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	commit := func(prefix string) func(int) error {
		return func(i int) error {
			body, _ := json.Marshal(map[string]any{
				"tenant": "bench", "service": fmt.Sprintf("svc-%d", run%100000), "env": prefix,
				"version": fmt.Sprintf("v%d", i), "url": "https://bench.example/" + prefix,
			})
			res, err := hc.Post("http://"+p.api+"/api/v1/routes", "application/json", bytes.NewReader(body))
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
	// Warm both paths (connections, caches, the worker's sticky queue).
	_, _, _ = measure(20, 1, floor("warm"))
	_, _, _ = measure(20, 1, commit("warm"))

	var rows []row
	for _, c := range []int{1, 16} {
		fl, flRate, err := measure(n, c, floor(fmt.Sprintf("c%d", c)))
		if err != nil {
			return nil, fmt.Errorf("floor: %w", err)
		}
		cl, clRate, err := measure(n, c, commit(fmt.Sprintf("c%d", c)))
		if err != nil {
			return nil, fmt.Errorf("commit-ack: %w", err)
		}
		fmt.Printf("write c=%d: commit-ack p50 %s p99 %s %.1f/s; floor p50 %s p99 %s %.1f/s\n",
			c, ms(pct(cl, .5)), ms(pct(cl, .99)), clRate, ms(pct(fl, .5)), ms(pct(fl, .99)), flRate)
		goal := "p50 ≤ 25 ms and ≤ 1.5× floor"
		if c == 16 {
			goal = "≥ 50/s"
		}
		rows = append(rows, row{
			figure:   fmt.Sprintf("write commit-ack, concurrency %d (p50 / p99, rate)", c),
			value:    fmt.Sprintf("%s / %s, %.1f/s", ms(pct(cl, .5)), ms(pct(cl, .99)), clRate),
			baseline: fmt.Sprintf("empty update-with-start: %s / %s, %.1f/s", ms(pct(fl, .5)), ms(pct(fl, .99)), flRate),
			ratio:    fmt.Sprintf("%.2f× (p50)", float64(pct(cl, .5))/float64(pct(fl, .5))),
			goal:     goal,
		})
	}
	return rows, nil
}
