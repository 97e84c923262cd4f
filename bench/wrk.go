package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrk (the C load generator, one epoll loop per thread) drives the closed-loop
// HTTP figures: on 2 cores a Go generator such as vegeta saturates long
// before the servers do.
const (
	wrkThreads     = 1  // one core for the generator: one event loop
	wrkConnections = 32 // keep-alive connections, as the vegeta runs had workers
)

type wrkResult struct {
	rps       float64
	requests  int
	p50, p99  time.Duration
	non2xx    int
	sockErrs  string
	generator string  // the command line, for the report
	cores     float64 // CPU the generator used, in cores (user+system time / wall time)
}

var (
	wrkRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkRequests = regexp.MustCompile(`(\d+) requests in`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	wrkSockErrs = regexp.MustCompile(`Socket errors:\s+(.*)`)
	wrkPct      = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
)

// runWrk runs wrk against url for d, pinned to cpus when cpus is not empty.
func runWrk(ctx context.Context, cpus, url string, d time.Duration) (wrkResult, error) {
	args := []string{"wrk", "-t" + strconv.Itoa(wrkThreads), "-c" + strconv.Itoa(wrkConnections),
		"-d" + strconv.Itoa(max(1, int(d.Seconds()))) + "s", "--latency", url}
	if cpus != "" {
		args = append([]string{"taskset", "-c", cpus}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	s := string(out)
	r := wrkResult{generator: strings.Join(args[:len(args)-1], " ")}
	if ps := cmd.ProcessState; ps != nil {
		r.cores = (ps.UserTime() + ps.SystemTime()).Seconds() / time.Since(start).Seconds()
	}
	m := wrkRPS.FindStringSubmatch(s)
	if m == nil {
		return wrkResult{}, fmt.Errorf("wrk printed no Requests/sec: %s", s)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	if m := wrkRequests.FindStringSubmatch(s); m != nil {
		r.requests, _ = strconv.Atoi(m[1])
	}
	if m := wrkNon2xx.FindStringSubmatch(s); m != nil {
		r.non2xx, _ = strconv.Atoi(m[1])
	}
	if m := wrkSockErrs.FindStringSubmatch(s); m != nil {
		r.sockErrs = strings.TrimSpace(m[1])
	}
	for _, m := range wrkPct.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[3]]
		if m[1] == "50" {
			r.p50 = time.Duration(v * float64(unit))
		} else {
			r.p99 = time.Duration(v * float64(unit))
		}
	}
	if r.non2xx > 0 {
		return r, fmt.Errorf("%d of %d answers were not 2xx/3xx (%s)", r.non2xx, r.requests, url)
	}
	return r, nil
}
