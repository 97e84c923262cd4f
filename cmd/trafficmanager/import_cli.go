package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/trafficmanager/trafficmanager/routes"
)

// importRoute is one route of an import file: the fields of a create.
type importRoute struct {
	Tenant    string `json:"tenant"`
	Service   string `json:"service"`
	Env       string `json:"env"`
	Version   string `json:"version"`
	URL       string `json:"url"`
	Active    *bool  `json:"active,omitempty"`
	ChangedBy string `json:"changed_by,omitempty"`
}

// importSummary is what `routes import` reports.
type importSummary struct {
	Routes    int             `json:"routes"`
	Batches   int             `json:"batches"`
	Created   int             `json:"created"`
	Unchanged int             `json:"unchanged"`
	Pending   []string        `json:"pending_workflows,omitempty"`
	KeyPrefix string          `json:"idempotency_key_prefix"`
	Seconds   float64         `json:"seconds"`
	PerSecond float64         `json:"routes_per_second"`
	Tenants   []tenantSummary `json:"tenants"`
}

type tenantSummary struct {
	Tenant    string `json:"tenant"`
	Routes    int    `json:"routes"`
	Created   int    `json:"created"`
	Unchanged int    `json:"unchanged"`
	Pending   int    `json:"pending"`
}

// readImport reads a JSON array of routes or one JSON object per line.
func readImport(r io.Reader) ([]importRoute, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	for {
		b, err := br.Peek(1)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, nil
			}
			return nil, err
		}
		if b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t' {
			_, _ = br.ReadByte()
			continue
		}
		break
	}
	dec := json.NewDecoder(br)
	dec.DisallowUnknownFields()
	var out []importRoute
	if b, _ := br.Peek(1); b[0] == '[' {
		if err := dec.Decode(&out); err != nil {
			return nil, fmt.Errorf("not a JSON array of routes: %w", err)
		}
		return out, nil
	}
	for i := 1; ; i++ {
		var r importRoute
		if err := dec.Decode(&r); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("route %d: %w", i, err)
		}
		out = append(out, r)
	}
}

// importBatches splits routes into batches of at most size routes of one
// tenant, keeping the file's order within each tenant.
func importBatches(rs []importRoute, size int) [][]importRoute {
	byTenant := map[string][]importRoute{}
	var order []string
	for _, r := range rs {
		if _, ok := byTenant[r.Tenant]; !ok {
			order = append(order, r.Tenant)
		}
		byTenant[r.Tenant] = append(byTenant[r.Tenant], r)
	}
	var out [][]importRoute
	for _, t := range order {
		all := byTenant[t]
		for len(all) > 0 {
			n := min(size, len(all))
			out = append(out, all[:n])
			all = all[n:]
		}
	}
	return out
}

type batchAnswer struct {
	WorkflowID string `json:"workflow_id"`
	Tenant     string `json:"tenant"`
	Created    int    `json:"created"`
	Unchanged  int    `json:"unchanged"`
}

func newImportCmd(cf *clientFlags) *cobra.Command {
	var size, concurrency int
	var changedBy, prefix, notBefore string
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Create many routes from a file (JSON array or one JSON object per line; - for stdin)",
		Long: `Creates routes in batches of up to 1000 routes of one tenant (POST /api/v1/routes/batch).
Each batch is all or nothing. Running the same import again is safe: routes already there with the
same URL are reported unchanged, one with another URL stops the import with a conflict. Batch i is
sent with Idempotency-Key "{prefix}-{i}"; pass the prefix of an interrupted import (--idempotency-key)
to get the answers of the batches it already sent instead of running them again.
With --not-before every batch is scheduled: it answers 202 at once and applies at that time; the
workflows are listed as pending (mutations status|cancel <workflow_id>).`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := cf.validate(); err != nil {
				return err
			}
			if size < 1 || size > routes.MaxBatch {
				return usageErr("--batch-size must be 1 to %d", routes.MaxBatch)
			}
			if concurrency < 1 || concurrency > 64 {
				return usageErr("--concurrency must be 1 to 64")
			}
			in := c.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return usageErr("%v", err)
				}
				defer f.Close()
				in = f
			}
			rs, err := readImport(in)
			if err != nil {
				return usageErr("%s: %v", args[0], err)
			}
			if len(rs) == 0 {
				return usageErr("%s holds no routes", args[0])
			}
			if prefix == "" {
				prefix = "import-" + uuid.NewString()
			} else if len(prefix) > 100 {
				return usageErr("--idempotency-key must be at most 100 characters")
			}
			extra := map[string]any{}
			if changedBy != "" {
				extra["changed_by"] = changedBy
			}
			if notBefore != "" {
				v, err := notBeforeValue(notBefore, time.Now())
				if err != nil {
					return err
				}
				extra["not_before"] = v
			}
			start := time.Now()
			sum, err := runImport(c, cf, importBatches(rs, size), concurrency, extra, prefix)
			sum.Routes, sum.Seconds, sum.KeyPrefix = len(rs), time.Since(start).Seconds(), prefix
			sum.PerSecond = float64(len(rs)) / sum.Seconds
			if err != nil {
				fmt.Fprintf(c.ErrOrStderr(), "import stopped after %d batches (%d created); resume with --idempotency-key %s\n", sum.Batches, sum.Created, prefix)
				return err
			}
			rows := make([][]string, 0, len(sum.Tenants))
			for _, t := range sum.Tenants {
				rows = append(rows, []string{t.Tenant, strconv.Itoa(t.Routes), strconv.Itoa(t.Created), strconv.Itoa(t.Unchanged), strconv.Itoa(t.Pending)})
			}
			rows = append(rows, []string{"(all)", strconv.Itoa(sum.Routes), strconv.Itoa(sum.Created), strconv.Itoa(sum.Unchanged),
				fmt.Sprintf("%d  in %.1fs, %.0f routes/s", len(sum.Pending), sum.Seconds, sum.PerSecond)})
			return cf.print(c.OutOrStdout(), sum, []string{"TENANT", "ROUTES", "CREATED", "UNCHANGED", "PENDING"}, rows)
		},
	}
	cmd.Flags().IntVar(&size, "batch-size", routes.MaxBatch, "routes per batch request")
	cmd.Flags().IntVar(&concurrency, "concurrency", 4, "batch requests in flight")
	cmd.Flags().StringVar(&prefix, "idempotency-key", "", "prefix of the batches' Idempotency-Keys (default: import-{random uuid})")
	cmd.Flags().StringVar(&changedBy, "changed-by", "", "who makes the change, for routes without changed_by (default: the token's name)")
	cmd.Flags().StringVar(&notBefore, "not-before", "", "apply every batch at this `TIME` (RFC 3339, or a duration from now such as 2h)")
	return cmd
}

// runImport sends the batches, each body with the fields of extra
// (changed_by, not_before), with up to concurrency requests in flight and
// stops sending new ones at the first error.
func runImport(c *cobra.Command, cf *clientFlags, batches [][]importRoute, concurrency int, extra map[string]any, prefix string) (importSummary, error) {
	var (
		mu       sync.Mutex
		sum      importSummary
		firstErr error
		wg       sync.WaitGroup
	)
	tenants := map[string]*tenantSummary{}
	var order []string
	for _, b := range batches {
		t := b[0].Tenant
		if tenants[t] == nil {
			tenants[t] = &tenantSummary{Tenant: t}
			order = append(order, t)
		}
		tenants[t].Routes += len(b)
	}
	sem := make(chan struct{}, concurrency)
	for i, b := range batches {
		mu.Lock()
		stop := firstErr != nil
		mu.Unlock()
		if stop {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			body := map[string]any{"routes": b}
			for k, v := range extra {
				body[k] = v
			}
			raw, err := json.Marshal(body)
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
				return
			}
			var out batchAnswer
			status, err := cf.callWithHeaders(c.Context(), "POST", "/api/v1/routes/batch", json.RawMessage(raw), &out,
				"Idempotency-Key", prefix+"-"+strconv.Itoa(i+1))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("batch %d (%d routes of %s from %s/%s/%s/%s): %w", i+1, len(b), b[0].Tenant,
						b[0].Tenant, b[0].Service, b[0].Env, b[0].Version, err)
				}
				return
			}
			sum.Batches++
			ts := tenants[b[0].Tenant]
			if status == 202 {
				sum.Pending = append(sum.Pending, out.WorkflowID)
				ts.Pending += len(b)
				return
			}
			sum.Created += out.Created
			sum.Unchanged += out.Unchanged
			ts.Created += out.Created
			ts.Unchanged += out.Unchanged
		}()
	}
	wg.Wait()
	for _, t := range order {
		sum.Tenants = append(sum.Tenants, *tenants[t])
	}
	return sum, firstErr
}
