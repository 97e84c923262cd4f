// Command bench measures Traffic Manager on the machine it runs on, each
// figure next to a baseline measured in the same run, prints a table and
// writes it to docs/benchmarks.md. It starts its own platform
// (`trafficmanager dev` on free ports and a temporary data dir) as a child
// process and stops it at the end; the load is generated here, in another
// process.
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
	"strings"
	"syscall"
	"time"
)

type row struct {
	figure, value, baseline, ratio, goal string
}

func main() {
	bareAddr := flag.String("bare-addr", "", "internal: serve the bare net/http baseline on this address")
	bin := flag.String("bin", "bin/trafficmanager", "trafficmanager binary")
	only := flag.String("only", "", "comma-separated groups to run (write, resolve, propagation, scale); default all")
	n := flag.Int("n", 200, "requests per latency measurement")
	dur := flag.Duration("duration", 5*time.Second, "duration of each throughput attack")
	out := flag.String("out", "docs/benchmarks.md", "where to write the table ('' to skip)")
	total := flag.Int("scale-routes", 1_000_000, "routes loaded for the scale group")
	hot := flag.Int("hot-routes", 100_000, "routes warmed into the resolver's L1 for the RSS figure")
	flag.Parse()
	if *bareAddr != "" {
		serveBare(*bareAddr)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *bin, *only, *n, *dur, *out, *total, *hot); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, bin, only string, n int, dur time.Duration, out string, total, hot int) error {
	want := func(g string) bool { return only == "" || strings.Contains(","+only+",", ","+g+",") }
	var p *platform
	var err error
	for attempt := 0; attempt < 3; attempt++ { // free ports may be taken between choosing and binding
		if p, err = startPlatform(ctx, bin); err == nil {
			break
		}
		fmt.Println("platform did not start, trying other ports:", err)
	}
	if err != nil {
		return err
	}
	defer p.stop()
	fmt.Printf("platform up in %s (api %s, resolver %s, temporal %s)\n", p.startup.Round(time.Millisecond), p.api, p.resolver, p.temporal)

	var rows []row
	if want("write") {
		r, err := benchWrites(ctx, p, n)
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		rows = append(rows, r...)
	}
	if want("resolve") {
		r, err := benchResolve(ctx, p, dur)
		if err != nil {
			return fmt.Errorf("resolve: %w", err)
		}
		rows = append(rows, r...)
	}
	if want("propagation") {
		r, err := benchPropagation(ctx, p, n)
		if err != nil {
			return fmt.Errorf("propagation: %w", err)
		}
		rows = append(rows, r...)
	}
	if want("scale") {
		r, err := benchScale(ctx, p, bin, total, hot)
		if err != nil {
			return fmt.Errorf("scale: %w", err)
		}
		rows = append(rows, r...)
	}
	table := renderTable(rows)
	fmt.Println()
	fmt.Print(table)
	if out != "" {
		return writeReport(out, table)
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

func writeReport(path, table string) error {
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
	var doc strings.Builder
	fmt.Fprintf(&doc, "# Benchmarks\n\nMeasured by `go tool task bench` on %s: %s, %d logical CPUs, %s.\n",
		time.Now().UTC().Format("2006-01-02"), cpu, numCPU(), host)
	doc.WriteString("The platform (`trafficmanager dev`: api, resolver, worker, Temporal dev server, Postgres, Redis, kfake, FerretDB)\n")
	doc.WriteString("and the load generator share the machine's cores, so the ratios matter more than absolute numbers.\n\n")
	doc.WriteString(table)
	doc.WriteString("\nSee docs/performance.md for what bounds each figure.\n")
	return os.WriteFile(path, []byte(doc.String()), 0o644)
}
