// Command bench measures Traffic Manager on the machine it runs on, each
// figure next to a baseline measured in the same run, prints a table and
// writes it to docs/benchmarks.md, with CPU profiles of the loaded
// processes summarized in docs/profiles.md. It starts its own platform
// (`trafficmanager dev` on free ports, a temporary data dir and TM_PPROF=on)
// as a child process and stops it at the end; the load is generated here and
// by wrk, in other processes.
//
//	go tool task bench            # everything
//	go run ./bench -only write    # one group: write, resolve, propagation, scale
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type row struct {
	figure, value, baseline, ratio, goal string
}

// bench is what every group shares: the platform, a temporary directory of
// its own (raw profiles, a second Temporal server's data; removed at the
// end) and the profiles taken so far.
type bench struct {
	p        *platform
	bin      string
	tmp      string
	profiles []profileRun
}

func main() {
	bareAddr := flag.String("bare-addr", "", "internal: serve the bare net/http baseline on this address")
	bin := flag.String("bin", "bin/trafficmanager", "trafficmanager binary")
	only := flag.String("only", "", "comma-separated groups to run (write, resolve, propagation, bulk, scale); default all")
	n := flag.Int("n", 200, "requests per latency measurement")
	dur := flag.Duration("duration", 5*time.Second, "duration of each throughput run")
	out := flag.String("out", "docs/benchmarks.md", "where to write the table ('' to skip)")
	profOut := flag.String("profiles-out", "docs/profiles.md", "where to write the profile summaries ('' to skip)")
	keep := flag.String("keep-profiles", "", "copy the raw CPU profiles into this directory (they are otherwise removed with the temporary directory)")
	total := flag.Int("scale-routes", 1_000_000, "routes loaded for the scale group")
	hot := flag.Int("hot-routes", 100_000, "routes warmed into the resolver's L1 for the RSS figure")
	bulk := flag.Int("bulk-routes", 100_000, "routes created through the batch endpoint for the bulk group")
	extra := flag.String("dev-args", "", "extra flags for the `trafficmanager dev` the bench starts, e.g. '--temporal cluster --workers 2'")
	flag.Parse()
	devArgs = strings.Fields(*extra)
	if *bareAddr != "" {
		serveBare(*bareAddr)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o := options{only: *only, n: *n, dur: *dur, out: *out, profOut: *profOut, keep: *keep, total: *total, hot: *hot, bulk: *bulk}
	if err := run(ctx, *bin, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	only               string
	n                  int
	dur                time.Duration
	out, profOut, keep string
	total, hot, bulk   int
}

func run(ctx context.Context, bin string, o options) error {
	want := func(g string) bool { return o.only == "" || strings.Contains(","+o.only+",", ","+g+",") }
	if want("resolve") {
		if err := needTools("wrk", "taskset"); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp("", "tm-bench-run-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	b := &bench{bin: bin, tmp: tmp}
	for attempt := 0; attempt < 3; attempt++ { // free ports may be taken between choosing and binding
		if b.p, err = startPlatform(ctx, bin); err == nil {
			break
		}
		fmt.Println("platform did not start, trying other ports:", err)
	}
	if err != nil {
		return err
	}
	defer b.p.stop()
	p := b.p
	fmt.Printf("platform up in %s (api %s, resolver %s, temporal %s)\n", p.startup.Round(time.Millisecond), p.api, p.resolver, p.temporal)

	// One line per group; a group may have any signature.
	groups := []struct {
		name string
		run  func() ([]row, error)
	}{
		{"write", func() ([]row, error) { return benchWrites(ctx, b, o.n) }},
		{"resolve", func() ([]row, error) { return benchResolve(ctx, b, o.dur) }},
		{"propagation", func() ([]row, error) { return benchPropagation(ctx, p, o.n) }},
		{"bulk", func() ([]row, error) { return benchBulk(ctx, b, o.bulk) }},
		{"scale", func() ([]row, error) { return benchScale(ctx, p, bin, o.total, o.hot) }},
	}
	var rows []row
	for _, g := range groups {
		if !want(g.name) {
			continue
		}
		start := time.Now()
		r, err := g.run()
		if err != nil {
			return fmt.Errorf("%s: %w", g.name, err)
		}
		fmt.Printf("group %s done in %s\n", g.name, time.Since(start).Round(time.Second))
		rows = append(rows, r...)
	}
	table := renderTable(rows)
	fmt.Println()
	fmt.Print(table)
	if o.out != "" {
		if err := writeReport(o.out, table); err != nil {
			return err
		}
	}
	if len(b.profiles) > 0 && o.profOut != "" {
		if err := writeProfiles(o.profOut, b.profiles); err != nil {
			return err
		}
	}
	if o.keep != "" {
		if err := os.MkdirAll(o.keep, 0o755); err != nil {
			return err
		}
		for _, pr := range b.profiles {
			raw, err := os.ReadFile(pr.file)
			if err == nil {
				err = os.WriteFile(filepath.Join(o.keep, filepath.Base(pr.file)), raw, 0o644)
			}
			if err != nil {
				return err
			}
		}
		fmt.Println("raw profiles kept in", o.keep)
	}
	return nil
}

func renderTable(rows []row) string {
	var b strings.Builder
	b.WriteString("| figure | measured | baseline (same run) | ratio | goal |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.figure, r.value, r.baseline, r.ratio, r.goal)
	}
	return b.String()
}

// machine describes the host: date, CPU model, logical CPUs, host name.
func machine() string {
	host, _ := os.Hostname()
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.1f GiB RAM", float64(kb)/(1<<20))
		}
	}
	return fmt.Sprintf("%s: %s, %d logical CPUs%s, %s", time.Now().UTC().Format("2006-01-02"), cpu, numCPU(), mem, host)
}

func writeReport(path, table string) error {
	var doc strings.Builder
	fmt.Fprintf(&doc, "# Benchmarks\n\nMeasured by `go tool task bench` on %s.\n", machine())
	doc.WriteString("The platform (`trafficmanager dev`: api, resolver, worker, Temporal dev server, Postgres, Redis, kfake, FerretDB)\n")
	doc.WriteString("and the load generators share the machine's cores, so the ratios matter more than absolute numbers.\n")
	if numCPU() >= 2 {
		fmt.Fprintf(&doc, "For the resolver figures the platform's processes and the bare baseline run on CPU %s and the load generators\n", serverCPU)
		fmt.Fprintf(&doc, "(wrk, %d thread and %d connections; vegeta in the bench process) on CPU %s (`taskset`).\n", wrkThreads, wrkConnections, generatorCPU)
	}
	doc.WriteString("\n")
	doc.WriteString(table)
	doc.WriteString("\nSee docs/performance.md for what bounds each figure and docs/profiles.md for the CPU profiles of this run.\n")
	return os.WriteFile(path, []byte(doc.String()), 0o644)
}
