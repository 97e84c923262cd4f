package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// bulkBatch and bulkConcurrency shape the bulk load: the largest batch the
// api takes, a few in flight (what `trafficmanager routes import` does).
const (
	bulkBatch       = 1000
	bulkConcurrency = 4
	bulkServices    = 100
)

// benchBulk creates total routes through the platform with
// POST /api/v1/routes/batch and reports two rates: every batch committed
// (answered), and every side effect done (every batch workflow completed:
// invalidations, events, audit documents). The baseline is a raw COPY of
// the same number of rows into the same tables in the same run.
func benchBulk(ctx context.Context, b *bench, total int) ([]row, error) {
	p := b.p
	tenant := fmt.Sprintf("bulk-%d", time.Now().Unix())
	batches := (total + bulkBatch - 1) / bulkBatch
	bodies := make([][]byte, batches)
	for i := range bodies {
		var rs []map[string]any
		for j := i * bulkBatch; j < min(total, (i+1)*bulkBatch); j++ {
			rs = append(rs, map[string]any{
				"tenant": tenant, "service": fmt.Sprintf("svc-%d", j%bulkServices), "env": "prod",
				"version": fmt.Sprintf("v%d", j/bulkServices), "url": fmt.Sprintf("https://svc-%d.bulk.example/v%d", j%bulkServices, j/bulkServices),
			})
		}
		raw, err := json.Marshal(map[string]any{"routes": rs, "changed_by": "bench"})
		if err != nil {
			return nil, err
		}
		bodies[i] = raw
	}

	tc, err := client.Dial(client.Options{HostPort: p.temporal, Logger: quietLogger{}})
	if err != nil {
		return nil, err
	}
	defer tc.Close()
	hc := &http.Client{Timeout: 2 * time.Minute}
	lat := make([]time.Duration, batches)
	var (
		ackTime, doneTime time.Duration
		created, pending  int
		mu                sync.Mutex
		firstErr          error
	)
	groups := platformProcs(p.pid())
	var profFile string
	var profErr error
	profDone := make(chan struct{})
	cpu := cpuBreakdown(groups, func() {
		start := time.Now()
		go func() { // a CPU profile of the dev process while batches run
			defer close(profDone)
			profFile, profErr = captureCPU(ctx, "http://"+p.api, b.tmp, "bulk")
		}()
		next := make(chan int)
		var wg sync.WaitGroup
		for range bulkConcurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					t0 := time.Now()
					n, status, err := postBatch(ctx, hc, "http://"+p.api, bodies[i], fmt.Sprintf("%s-%d", tenant, i))
					lat[i] = time.Since(t0)
					mu.Lock()
					switch {
					case err != nil && firstErr == nil:
						firstErr = err
					case status == http.StatusAccepted:
						pending++
					default:
						created += n
					}
					mu.Unlock()
				}
			}()
		}
		for i := range bodies {
			next <- i
		}
		close(next)
		wg.Wait()
		ackTime = time.Since(start)
		if firstErr != nil {
			return
		}
		// Side effects: wait until no batch workflow of the tenant runs.
		query := fmt.Sprintf("TmTenant = '%s' AND ExecutionStatus = 'Running'", tenant)
		for time.Since(start) < 10*time.Minute {
			res, err := tc.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: "default", Query: query})
			if err == nil && res.GetCount() == 0 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		doneTime = time.Since(start)
	})
	<-profDone
	if firstErr != nil {
		return nil, firstErr
	}
	if profErr != nil {
		return nil, profErr
	}
	if created+pending*bulkBatch < total {
		return nil, fmt.Errorf("bulk: %d of %d routes created", created, total)
	}
	fmt.Printf("bulk: %d routes in %d batches of %d, %d in flight: committed in %s (%.0f routes/s), side effects done in %s (%.0f routes/s); batch p50 %s p99 %s; %s\n",
		total, batches, bulkBatch, bulkConcurrency, ackTime.Round(time.Millisecond), float64(total)/ackTime.Seconds(),
		doneTime.Round(time.Millisecond), float64(total)/doneTime.Seconds(), ms(pct(lat, .5)), ms(pct(lat, .99)), cpu)

	conn, err := pgx.Connect(ctx, p.devEnv("TM_DATABASE_URL"))
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	copyTime, err := copyRoutes(ctx, conn, tenant+"-copy", total, bulkServices)
	if err != nil {
		return nil, err
	}
	fmt.Printf("bulk: COPY of %d routes in %s (%.0f routes/s)\n", total, copyTime.Round(time.Millisecond), float64(total)/copyTime.Seconds())
	rate := float64(total) / doneTime.Seconds()
	b.profiles = append(b.profiles, profileRun{
		title: "Bulk: batches of 1000 routes through POST /api/v1/routes/batch (api + worker + embedded FerretDB)",
		context: fmt.Sprintf("%d routes, %d batches in flight; %.0f routes/s committed, %.0f routes/s with every side effect; %s.",
			total, bulkConcurrency, float64(total)/ackTime.Seconds(), rate, cpu),
		file: profFile,
	})
	return []row{{
		figure: fmt.Sprintf("bulk: create %d routes through the platform (POST /api/v1/routes/batch, %d per batch, %d in flight)", total, bulkBatch, bulkConcurrency),
		value: fmt.Sprintf("committed %s (%.0f routes/s, batch p50 %s / p99 %s); every event, invalidation and audit document done %s (%.0f routes/s)",
			ackTime.Round(time.Millisecond), float64(total)/ackTime.Seconds(), ms(pct(lat, .5)), ms(pct(lat, .99)), doneTime.Round(time.Millisecond), rate),
		baseline: fmt.Sprintf("raw COPY of %d routes: %s, %.0f routes/s", total, copyTime.Round(time.Millisecond), float64(total)/copyTime.Seconds()),
		ratio:    fmt.Sprintf("%.2f× of COPY (end to end)", copyTime.Seconds()/doneTime.Seconds()),
		goal:     "≥ 5k routes/s",
	}}, nil
}

// postBatch sends one batch and returns how many routes it created.
func postBatch(ctx context.Context, hc *http.Client, api string, body []byte, key string) (int, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api+"/api/v1/routes/batch", bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	res, err := hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusAccepted {
		return 0, res.StatusCode, fmt.Errorf("batch %s: %s: %.300s", key, res.Status, raw)
	}
	var out struct {
		Created int `json:"created"`
	}
	_ = json.Unmarshal(raw, &out)
	return out.Created, res.StatusCode, nil
}

// copyRoutes loads total routes of tenant (services services in env prod,
// versions v0, v1, ...) with COPY, parents first, and returns how long it
// took: the fastest way to put rows in these tables.
func copyRoutes(ctx context.Context, conn *pgx.Conn, tenant string, total, services int) (time.Duration, error) {
	start := time.Now()
	var tenantID int64
	if err := conn.QueryRow(ctx, `INSERT INTO tenants (name) VALUES ($1) RETURNING id`, tenant).Scan(&tenantID); err != nil {
		return 0, err
	}
	envIDs := make([]int64, services)
	for i := range services {
		if err := conn.QueryRow(ctx, `WITH s AS (INSERT INTO services (tenant_id, service_name) VALUES ($1, $2) RETURNING id)
			INSERT INTO environments (service_id, env_name) SELECT id, 'prod' FROM s RETURNING id`, tenantID, fmt.Sprintf("svc-%d", i)).Scan(&envIDs[i]); err != nil {
			return 0, err
		}
	}
	_, err := conn.CopyFrom(ctx, pgx.Identifier{"endpoints"}, []string{"environment_id", "version", "url"},
		pgx.CopyFromSlice(total, func(i int) ([]any, error) {
			return []any{envIDs[i%services], fmt.Sprintf("v%d", i/services), fmt.Sprintf("https://svc-%d.%s.example/v%d", i%services, tenant, i/services)}, nil
		}))
	return time.Since(start), err
}
