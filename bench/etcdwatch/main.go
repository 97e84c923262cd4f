// Command etcdwatch compares the resolver's watch fan-out with etcd's on
// this machine, in one run: for each watcher count W it starts etcd 3.4
// (the etcd binary, one member on loopback, a temporary data dir), opens W
// watchers of one prefix over 16 client connections, puts 50 values 200 ms
// apart and measures the time from before Put to the first and the last
// watcher receiving it, and etcd's RSS per added watcher; then it runs the
// resolver's side the same way (resolver.TestWatchFanoutReport: W SSE
// streams, 50 commits 200 ms apart, commit to first/last stream, the
// resolver's memory per stream) and prints a table with the ratios.
//
// It is a module of its own so the main module does not depend on etcd.
//
//	cd bench/etcdwatch && go run . -watchers 100,1000,10000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/clientv3"
)

type result struct {
	Watchers                                      int
	PutP50                                        float64 // ms, etcd only
	FirstP50, FirstP99, LastP50, LastP99, LastMax float64 // ms
	PerWatcher                                    float64 // bytes of RSS per added watcher
	Heap                                          float64 // bytes of heap+stacks per stream, resolver only
}

// fanout is the resolver side's report line (resolver/watch_bench_test.go).
type fanout struct {
	Watchers                                      int
	CommitP50                                     float64
	FirstP50, FirstP99, LastP50, LastP99, LastMax float64
	HeapPerStream, RSSPerStream                   float64
}

func main() {
	ws := flag.String("watchers", "100,1000,10000", "watcher counts")
	puts := flag.Int("puts", 50, "puts (commits) per count")
	gap := flag.Duration("gap", 200*time.Millisecond, "time between puts")
	conns := flag.Int("conns", 16, "etcd client connections")
	etcdBin := flag.String("etcd", "etcd", "etcd binary")
	repo := flag.String("repo", "../..", "the main module (for the resolver's side)")
	only := flag.String("only", "", "etcd or resolver: run one side")
	flag.Parse()
	raiseNofile()
	var counts []int
	for _, s := range strings.Split(*ws, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fatal(fmt.Errorf("-watchers: %q", s))
		}
		counts = append(counts, n)
	}
	var testBin string
	if *only != "etcd" {
		tmp, err := os.MkdirTemp("", "etcdwatch-bin")
		if err != nil {
			fatal(err)
		}
		defer os.RemoveAll(tmp)
		testBin = filepath.Join(tmp, "resolver.test")
		c := exec.Command("go", "test", "-c", "-o", testBin, "./resolver/")
		c.Dir, c.Stdout, c.Stderr = *repo, os.Stderr, os.Stderr
		if err := c.Run(); err != nil {
			fatal(fmt.Errorf("build the resolver's test binary: %w", err))
		}
	}
	type pair struct{ etcd, ours *result }
	var rows []pair
	for _, n := range counts {
		var p pair
		if *only != "resolver" {
			r, err := runEtcd(*etcdBin, n, *conns, *puts, *gap)
			if err != nil {
				fatal(fmt.Errorf("etcd, %d watchers: %w", n, err))
			}
			fmt.Fprintf(os.Stderr, "etcd %d watchers: %+v\n", n, *r)
			p.etcd = r
		}
		if *only != "etcd" {
			r, err := runResolver(testBin, *repo, n, *puts, *gap)
			if err != nil {
				fatal(fmt.Errorf("resolver, %d watchers: %w", n, err))
			}
			fmt.Fprintf(os.Stderr, "resolver %d watchers: %+v\n", n, *r)
			p.ours = r
		}
		rows = append(rows, p)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\n%d puts/commits %v apart; load average at the end: %s\n", *puts, *gap, strings.TrimSpace(string(load)))
	fmt.Println("| watchers | side | first p50 / p99 | last p50 / p99 (max) | memory per watcher | last p99 vs etcd | memory vs etcd |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, p := range rows {
		for _, s := range []struct {
			name string
			r    *result
		}{{"etcd", p.etcd}, {"resolver (SSE)", p.ours}} {
			if s.r == nil {
				continue
			}
			mem := kb(s.r.PerWatcher) + " RSS"
			if s.r.Heap != 0 {
				mem += " (" + kb(s.r.Heap) + " heap+stack)"
			}
			lat, memr := "–", "–"
			if s.r != p.etcd && p.etcd != nil {
				lat = fmt.Sprintf("%.2f×", s.r.LastP99/p.etcd.LastP99)
				memr = fmt.Sprintf("%.2f×", s.r.PerWatcher/p.etcd.PerWatcher)
			}
			fmt.Printf("| %d | %s | %.1f / %.1f ms | %.1f / %.1f ms (%.0f) | %s | %s | %s |\n", s.r.Watchers, s.name,
				s.r.FirstP50, s.r.FirstP99, s.r.LastP50, s.r.LastP99, s.r.LastMax, mem, lat, memr)
		}
	}
}

func kb(b float64) string { return fmt.Sprintf("%.2f KB", b/1000) }

// runResolver runs resolver.TestWatchFanoutReport in the test binary.
func runResolver(bin, repo string, n, puts int, gap time.Duration) (*result, error) {
	c := exec.Command(bin, "-test.run=^TestWatchFanoutReport$", "-test.v", "-test.timeout=30m")
	c.Dir = filepath.Join(repo, "resolver")
	c.Env = append(os.Environ(), "TM_WATCH_FANOUT="+strconv.Itoa(n), "TM_WATCH_FANOUT_CHANGES="+strconv.Itoa(puts),
		"TM_WATCH_FANOUT_GAP="+gap.String())
	c.Stderr = os.Stderr
	out, err := c.Output()
	if err != nil {
		os.Stderr.Write(out)
		return nil, err
	}
	for _, l := range strings.Split(string(out), "\n") {
		if js, ok := strings.CutPrefix(l, "fanout-result "); ok {
			var f fanout
			if err := json.Unmarshal([]byte(js), &f); err != nil {
				return nil, err
			}
			return &result{Watchers: n, PutP50: f.CommitP50, FirstP50: f.FirstP50, FirstP99: f.FirstP99,
				LastP50: f.LastP50, LastP99: f.LastP99, LastMax: f.LastMax, PerWatcher: f.RSSPerStream, Heap: f.HeapPerStream}, nil
		}
	}
	os.Stderr.Write(out)
	return nil, fmt.Errorf("no fanout-result line")
}

func runEtcd(bin string, n, conns, puts int, gap time.Duration) (*result, error) {
	dir, err := os.MkdirTemp("", "etcdwatch-data")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cport, pport := freePort(), freePort()
	curl, purl := "http://127.0.0.1:"+cport, "http://127.0.0.1:"+pport
	cmd := exec.Command(bin, "--name", "bench", "--data-dir", dir,
		"--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
		"--initial-cluster", "bench="+purl, "--logger", "zap", "--log-level", "error")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	clients := make([]*clientv3.Client, conns)
	for i := range clients {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{curl}, DialTimeout: 10 * time.Second})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		clients[i] = c
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for deadline := time.Now().Add(20 * time.Second); ; {
		_, err := clients[0].Put(ctx, "/warmup", "x")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("etcd not up: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	rssBefore := rss(cmd.Process.Pid)

	first := make([]atomic.Int64, puts+1) // unix ns of the first delivery of put i
	last := make([]chan time.Time, puts+1)
	for i := range last {
		last[i] = make(chan time.Time, 1)
	}
	count := make([]atomic.Int64, puts+1)
	var created sync.WaitGroup
	for w := 0; w < n; w++ {
		created.Add(1)
		ch := clients[w%conns].Watch(ctx, "/bench/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
		go func() {
			for resp := range ch {
				if resp.Created {
					created.Done()
					continue
				}
				for _, ev := range resp.Events {
					i, _ := strconv.Atoi(string(ev.Kv.Value))
					if i <= 0 || i > puts {
						continue
					}
					now := time.Now()
					switch count[i].Add(1) {
					case 1:
						first[i].Store(now.UnixNano())
						if n > 1 {
							break
						}
						fallthrough
					case int64(n):
						last[i] <- now
					}
				}
			}
		}()
	}
	created.Wait()
	time.Sleep(time.Second)
	perWatcher := float64(rss(cmd.Process.Pid)-rssBefore) / float64(n)

	var putD, firsts, lasts []time.Duration
	for i := 1; i <= puts; i++ {
		t0 := time.Now()
		if _, err := clients[i%conns].Put(ctx, "/bench/k", strconv.Itoa(i)); err != nil {
			return nil, err
		}
		putD = append(putD, time.Since(t0))
		select {
		case t := <-last[i]:
			lasts = append(lasts, t.Sub(t0))
			firsts = append(firsts, time.Unix(0, first[i].Load()).Sub(t0))
		case <-time.After(30 * time.Second):
			return nil, fmt.Errorf("put %d did not reach every watcher within 30s", i)
		}
		if d := gap - time.Since(t0); d > 0 {
			time.Sleep(d)
		}
	}
	ms := func(d []time.Duration, q float64) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[min(len(s)-1, int(q*float64(len(s))))].Microseconds()) / 1000
	}
	return &result{Watchers: n, PutP50: ms(putD, 0.5), FirstP50: ms(firsts, 0.5), FirstP99: ms(firsts, 0.99),
		LastP50: ms(lasts, 0.5), LastP99: ms(lasts, 0.99), LastMax: ms(lasts, 1), PerWatcher: perWatcher}, nil
}

// rss is a process's resident set in bytes.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal(err)
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}

// raiseNofile lifts the descriptor limit to its hard limit: 10,000 streams
// need 10,000 descriptors on each side; the children inherit it.
func raiseNofile() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "etcdwatch:", err)
	os.Exit(1)
}
