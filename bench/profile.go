package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// profileSeconds is the length of each CPU profile.
const profileSeconds = 5

// profileRun is one CPU profile taken under load.
type profileRun struct {
	title   string // what was profiled, under what load
	context string // measured while it ran: rate, CPU per process
	file    string // the raw profile, in the bench's temporary directory
	perf    bool   // file is perf.data (Linux perf), not a pprof profile
	parts   []part // for perf profiles: parts whose inclusive CPU is reported
}

// part is a function whose inclusive (children) CPU share a perf summary
// reports: the largest share of any symbol starting with prefix.
type part struct{ label, prefix string }

// perfRecord samples the CPU of pid with Linux perf for profileSeconds into
// dir/name.perf.data. Processes without a pprof endpoint (the Temporal dev
// server: the CLI does not expose the server's pprof port) are profiled
// this way when perf is installed.
func perfRecord(ctx context.Context, pid int, dir, name string) (string, error) {
	file := filepath.Join(dir, name+".perf.data")
	out, err := exec.CommandContext(ctx, "perf", "record", "-q", "-g", "-e", "cpu-clock", "-F", "499", "-p", strconv.Itoa(pid),
		"-o", file, "--", "sleep", strconv.Itoa(profileSeconds)).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("perf record: %v: %s", err, bytes.TrimSpace(out))
	}
	return file, nil
}

// perfLine is a row of `perf report --stdio -g none`: the first percentage
// is own time (--no-children) or inclusive time (--children, followed by
// own time); perf pads the row with "-" columns.
var perfLine = regexp.MustCompile(`^\s+([0-9.]+)%\s+(?:[0-9.]+%\s+)?\[(.)\]\s+(.+?)(?:\s+-)*\s*$`)

// perfTop reads the functions of a perf.data file, most samples first:
// own time, or with children the time in the function and its callees.
func perfTop(file string, children bool) ([]topLine, error) {
	mode := "--no-children"
	if children {
		mode = "--children"
	}
	out, err := exec.Command("perf", "report", "-i", file, "--stdio", mode, "--sort", "symbol", "-g", "none").Output()
	if err != nil {
		return nil, fmt.Errorf("perf report: %w", err)
	}
	var rows []topLine
	for _, l := range strings.Split(string(out), "\n") {
		m := perfLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		pct, _ := strconv.ParseFloat(m[1], 64)
		name := m[3]
		switch {
		case m[2] == "k":
			name = "[kernel] " + name
		case strings.HasPrefix(name, "0x"):
			name = "[unresolved]"
		}
		rows = append(rows, topLine{flat: pct, name: name})
	}
	return rows, nil
}

// captureCPU fetches a CPU profile of the process serving base (TM_PPROF=on)
// into dir/name.pprof, taking profileSeconds.
func captureCPU(ctx context.Context, base, dir, name string) (string, error) {
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, profileSeconds)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	res, err := (&http.Client{Timeout: (profileSeconds + 30) * time.Second}).Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return "", fmt.Errorf("GET %s: %s: %s (is TM_PPROF=on?)", url, res.Status, b)
	}
	file := filepath.Join(dir, name+".pprof")
	f, err := os.Create(file)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return "", err
	}
	return file, f.Close()
}

// profileUnderLoad takes a CPU profile of base while load runs, calling load
// until the profile is done; it returns the profile file and how many
// operations load completed meanwhile.
func profileUnderLoad(ctx context.Context, base, dir, name string, load func(ctx context.Context) int) (string, int, error) {
	lctx, stop := context.WithCancel(ctx)
	ops := make(chan int, 1)
	go func() { ops <- load(lctx) }()
	file, err := captureCPU(ctx, base, dir, name)
	stop()
	return file, <-ops, err
}

// pprofTop is `go tool pprof -top` of file.
func pprofTop(file string, nodes int) (string, error) {
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount="+strconv.Itoa(nodes), file).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return "", fmt.Errorf("go tool pprof -top %s: %v: %s", file, err, ee.Stderr)
		}
		return "", err
	}
	return string(out), nil
}

// topLine is one row of `go tool pprof -top`.
type topLine struct {
	flat float64 // percent of all samples
	name string
}

// parseTop reads the rows of `go tool pprof -top` output.
func parseTop(out string) []topLine {
	var rows []topLine
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 6 || !strings.HasSuffix(f[1], "%") {
			continue
		}
		pct, err := strconv.ParseFloat(strings.TrimSuffix(f[1], "%"), 64)
		if err != nil {
			continue
		}
		rows = append(rows, topLine{flat: pct, name: strings.Join(f[5:], " ")})
	}
	return rows
}

// pkgOf is the import path of a function name as pprof prints it
// ("net/http.(*conn).serve" → "net/http").
func pkgOf(fn string) string {
	if strings.HasPrefix(fn, "[") { // perf: [kernel] …, [unresolved]
		return fn[:strings.IndexByte(fn, ']')+1]
	}
	slash := strings.LastIndexByte(fn, '/')
	if dot := strings.IndexByte(fn[slash+1:], '.'); dot >= 0 {
		return fn[:slash+1+dot]
	}
	return fn
}

// byPackage sums flat percentages per package, largest first.
func byPackage(rows []topLine, n int) []topLine {
	sum := map[string]float64{}
	for _, r := range rows {
		sum[pkgOf(r.name)] += r.flat
	}
	var out []topLine
	for p, v := range sum {
		out = append(out, topLine{flat: v, name: p})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].flat > out[j].flat })
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// writeProfiles writes the summaries of the profiles to path: the top 12
// functions by own (flat) time and the top packages.
func writeProfiles(path string, profiles []profileRun) error {
	var doc strings.Builder
	fmt.Fprintf(&doc, "# CPU profiles under load\n\nTaken by `go tool task bench` on %s, from the `/debug/pprof/profile`\n", machine())
	doc.WriteString("endpoint that `TM_PPROF=on` mounts, for " + strconv.Itoa(profileSeconds) + " s while the load ran (raw files: `go run ./bench -keep-profiles DIR`).\n")
	doc.WriteString("In `trafficmanager dev` the api, resolver, worker, kfake and FerretDB are one process, so each profile is of that\n")
	doc.WriteString("whole process; the Temporal dev server, Postgres and Redis are other processes (their CPU is in the context line).\n")
	doc.WriteString("The Temporal dev server has no pprof endpoint (`temporal server start-dev` does not expose it), so it is profiled\n")
	doc.WriteString("with Linux `perf` when that is installed (the bench does not install it); kernel time shows up mostly as\n")
	doc.WriteString("`pvm_irq_enable` (in this VM the sampling interrupt is taken when the kernel re-enables interrupts).\n")
	doc.WriteString("What the profiles say about each figure is in [performance.md](performance.md).\n")
	for _, pr := range profiles {
		fmt.Fprintf(&doc, "\n## %s\n\n", pr.title)
		if pr.context != "" {
			doc.WriteString(pr.context + "\n\n")
		}
		if pr.perf {
			writePerf(&doc, pr.file, pr.parts)
			continue
		}
		top, err := pprofTop(pr.file, 12)
		if err != nil {
			fmt.Fprintf(&doc, "(no summary: %v)\n", err)
			continue
		}
		doc.WriteString("Top 12 functions by own (flat) CPU time (`go tool pprof -top -nodecount=12`):\n\n```\n")
		for _, l := range strings.Split(strings.TrimSpace(top), "\n") {
			if strings.HasPrefix(l, "Time:") || strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") {
				continue // differ every run, say nothing
			}
			doc.WriteString(l + "\n")
		}
		doc.WriteString("```\n")
		if all, err := pprofTop(pr.file, 100000); err == nil {
			writePackages(&doc, parseTop(all))
		}
	}
	return os.WriteFile(path, []byte(doc.String()), 0o644)
}

func writePackages(doc *strings.Builder, rows []topLine) {
	doc.WriteString("\nOwn CPU time by package (percent of all samples):")
	for i, p := range byPackage(rows, 10) {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(doc, "%s `%s` %.1f %%", sep, p.name, p.flat)
	}
	doc.WriteString(".\n")
}

func writePerf(doc *strings.Builder, file string, parts []part) {
	rows, err := perfTop(file, false)
	if err != nil || len(rows) == 0 {
		fmt.Fprintf(doc, "(no summary: %v)\n", err)
		return
	}
	doc.WriteString("Top 12 functions by own CPU time (`perf record -g -e cpu-clock -F 499`, `perf report --no-children --sort symbol -g none`):\n\n```\n")
	for _, r := range rows[:min(12, len(rows))] {
		fmt.Fprintf(doc, "%6.2f%%  %s\n", r.flat, r.name)
	}
	doc.WriteString("```\n")
	writePackages(doc, rows)
	if len(parts) == 0 {
		return
	}
	incl, err := perfTop(file, true)
	if err != nil {
		return
	}
	doc.WriteString("\nInclusive CPU (the function and what it calls; parts overlap):")
	for i, pt := range parts {
		share := 0.0
		for _, r := range incl {
			if strings.HasPrefix(r.name, pt.prefix) {
				share = max(share, r.flat)
			}
		}
		sep := ";"
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(doc, "%s %s %.1f %%", sep, pt.label, share)
	}
	doc.WriteString(".\n")
}
