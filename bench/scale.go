package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// devEnv reads one variable from the platform's dev.env.
func (p *platform) devEnv(name string) string {
	f, err := os.Open(filepath.Join(p.dir, "dev.env"))
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "export "+name+"="); ok {
			return v
		}
	}
	return ""
}

// benchScale loads routes with COPY (the bulk baseline), then runs a
// resolver process of its own over them: Postgres-miss latency with that
// many routes, and its RSS once hot routes fill L1.
func benchScale(ctx context.Context, p *platform, bin string, total, hot int) ([]row, error) {
	dsn := p.devEnv("TM_DATABASE_URL")
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	const services = 1000
	copyTime, err := copyRoutes(ctx, conn, "scale", total, services)
	if err != nil {
		return nil, err
	}
	n := total
	fmt.Printf("scale: COPY of %d routes in %s (%.0f routes/s)\n", n, copyTime.Round(time.Millisecond), float64(n)/copyTime.Seconds())
	// Measure the steady state, not the minutes after a bulk load: VACUUM
	// sets the hint bits the first reads would otherwise write page by page,
	// and the checkpoint flushes the load's WAL before the timing starts (one
	// run without them had a p99 of 114 ms, the others 2-4 ms).
	for _, stmt := range []string{`VACUUM (ANALYZE) endpoints`, `CHECKPOINT`} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("%s: %w", stmt, err)
		}
	}

	// Misses on a cold resolver (nothing warmed, no Redis): every request
	// is a Postgres point lookup among all routes.
	base, stop, _, err := startResolver(bin, dsn, 0)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	lat := make([]time.Duration, 0, 2000)
	for range 2000 {
		i := rand.IntN(total)
		url := fmt.Sprintf("%s/api/v1/resolve/scale/svc-%d/prod/v%d", base, i%services, i/services)
		t0 := time.Now()
		res, err := hc.Get(url)
		if err != nil {
			stop()
			return nil, err
		}
		res.Body.Close()
		lat = append(lat, time.Since(t0))
		if res.StatusCode != 200 {
			stop()
			return nil, fmt.Errorf("resolve %s: %s", url, res.Status)
		}
	}
	stop()
	fmt.Printf("scale: miss p50 %s p99 %s over 2000 random keys of %d routes\n", ms(pct(lat, .5)), ms(pct(lat, .99)), total)

	// RSS of a resolver that warmed hot routes into L1.
	_, stop, pid, err := startResolver(bin, dsn, hot)
	if err != nil {
		return nil, err
	}
	rss := rssOf(pid)
	stop()
	fmt.Printf("scale: resolver with %d warm routes: RSS %d MiB\n", hot, rss>>20)
	return []row{
		{figure: fmt.Sprintf("scale setup: %d routes loaded with COPY", total),
			value: fmt.Sprintf("%s, %.0f routes/s", copyTime.Round(time.Millisecond), float64(n)/copyTime.Seconds()), baseline: "—", ratio: "—", goal: "—"},
		{figure: fmt.Sprintf("resolve miss (Postgres) with %d routes, over HTTP", total),
			value: fmt.Sprintf("p50 %s, p99 %s", ms(pct(lat, .5)), ms(pct(lat, .99))), baseline: "—", ratio: "—", goal: "p99 < 5 ms"},
		{figure: fmt.Sprintf("resolver RSS with %d hot routes in L1", hot),
			value: fmt.Sprintf("%d MiB", rss>>20), baseline: "—", ratio: "—", goal: "≤ 256 MB"},
	}, nil
}

// rssOf reads VmRSS of a process in bytes.
func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// startResolver runs `trafficmanager resolver` over dsn (no Redis, no Kafka)
// warming warm routes, and returns its base URL once ready.
func startResolver(bin, dsn string, warm int) (string, func(), int, error) {
	addr := freeAddr()
	cmd := exec.Command(bin, "resolver")
	cmd.Env = append(os.Environ(), "TM_DATABASE_URL="+dsn, "TM_RESOLVER_ADDR="+addr, "TM_LOG_LEVEL=error",
		"TM_RESOLVER_WARM_ROUTES="+strconv.Itoa(warm), "TM_RESOLVER_L1_ENTRIES="+strconv.Itoa(max(2*warm, 1000)), "TM_REDIS_URL=", "TM_KAFKA_BROKERS=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", nil, 0, err
	}
	stop := func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }
	base := "http://" + addr
	for t0 := time.Now(); time.Since(t0) < 3*time.Minute; time.Sleep(100 * time.Millisecond) {
		if res, err := http.Get(base + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return base, stop, cmd.Process.Pid, nil
			}
		}
	}
	stop()
	return "", nil, 0, fmt.Errorf("resolver not ready within 3 minutes")
}
