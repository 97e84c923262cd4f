package resolver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/routes"
)

// BenchmarkWatchFanout opens TM_WATCH_BENCH_WATCHERS (default 10,000)
// streams of one tenant on one resolver, then commits b.N changes one at a
// time and measures, for each, the time from the commit (Store.Apply
// returning) to the first and to the last stream reading it. The readers
// run in a child process (this test binary again, TestWatchSwarm), so the
// resolver's process holds only the server's descriptors and memory: the
// memory per stream it reports is the server's (heap and stacks, and the
// process's RSS). No assertions.
//
//	go test -run '^$' -bench WatchFanout -benchtime 50x ./resolver/
func BenchmarkWatchFanout(b *testing.B) {
	n := 10_000
	if v, err := strconv.Atoi(os.Getenv("TM_WATCH_BENCH_WATCHERS")); err == nil && v > 0 {
		n = v
	}
	r := watchFanout(b, n, b.N, 0)
	b.ReportMetric(r.FirstP50, "first-p50-ms")
	b.ReportMetric(r.LastP50, "p50-ms")
	b.ReportMetric(r.LastP99, "p99-ms")
	b.ReportMetric(r.HeapPerStream/1024, "server-KiB/stream")
	b.ReportMetric(r.RSSPerStream/1024, "rss-KiB/stream")
}

// TestWatchFanoutReport is the watch half of bench/etcdwatch's comparison
// with etcd: with TM_WATCH_FANOUT=W it opens W streams, commits
// TM_WATCH_FANOUT_CHANGES (default 50) changes TM_WATCH_FANOUT_GAP
// (default 200ms) apart, as the etcd side puts, and prints one line
// "fanout-result {json}". Skipped without TM_WATCH_FANOUT. No assertions on
// the figures.
func TestWatchFanoutReport(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("TM_WATCH_FANOUT"))
	if n <= 0 {
		t.Skip("set TM_WATCH_FANOUT=W (run by bench/etcdwatch)")
	}
	changes := 50
	if v, err := strconv.Atoi(os.Getenv("TM_WATCH_FANOUT_CHANGES")); err == nil && v > 0 {
		changes = v
	}
	gap := 200 * time.Millisecond
	if v, err := time.ParseDuration(os.Getenv("TM_WATCH_FANOUT_GAP")); err == nil {
		gap = v
	}
	if os.Getenv("TM_WATCH_FANOUT_HEAP") != "" {
		runtime.MemProfileRate = 1 // every allocation, for the profile
	}
	r := watchFanout(t, n, changes, gap)
	js, _ := json.Marshal(r)
	fmt.Printf("fanout-result %s\n", js)
}

// fanoutResult is one fan-out run; latencies in milliseconds, memory in
// bytes per stream.
type fanoutResult struct {
	Watchers                                      int
	Changes                                       int
	CommitP50                                     float64
	FirstP50, FirstP99, LastP50, LastP99, LastMax float64
	HeapPerStream, RSSPerStream                   float64
	OpenSeconds                                   float64
}

func watchFanout(tb testing.TB, n, changes int, gap time.Duration) fanoutResult {
	e := newWatchEnv(tb, WatchOptions{MaxWatchers: n + 10, MaxPerTenant: n + 10, Buffer: 64}, nil)
	k := e.key("checkout", "v1")
	e.change(tb, routes.ActionCreated, k, "https://bench-0.example", true)

	debug.FreeOSMemory() // a GC, and freed pages back to the OS: RSS is what is in use
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	rssBefore := vmRSS()

	cmd := exec.Command(os.Args[0], "-test.run=^TestWatchSwarm$", "-test.v")
	cmd.Env = append(os.Environ(), "TM_WATCH_SWARM_URL="+e.srv.URL+WatchPrefix+e.tenant, "TM_WATCH_SWARM_N="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	reached := make(chan int, 16)
	first := make(chan int, 16)
	opened := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 1 && f[0] == "open":
				close(opened)
			case len(f) == 2 && f[0] == "reached":
				i, _ := strconv.Atoi(f[1])
				reached <- i
			case len(f) == 2 && f[0] == "first":
				i, _ := strconv.Atoi(f[1])
				first <- i
			}
		}
	}()
	start := time.Now()
	select {
	case <-opened:
	case <-time.After(180 * time.Second):
		tb.Fatal("the swarm did not open its streams within 180s")
	}
	waitForTB(tb, func() bool { return e.res.WatchStats().Watchers == n })
	time.Sleep(500 * time.Millisecond) // the last handlers join their tail
	opening := time.Since(start)
	// Two collections first: the handlers' gin contexts (each holding its
	// request's connection buffers) sit in gin's sync.Pool until the
	// second GC after they were returned; a server with traffic reuses
	// them, an idle one drops them within the runtime's two-minute GC.
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if path := os.Getenv("TM_WATCH_FANOUT_HEAP"); path != "" { // where the memory per stream goes
		if f, err := os.Create(path); err == nil {
			_ = pprof.WriteHeapProfile(f)
			_ = f.Close()
		}
		tb.Logf("%d goroutines", runtime.NumGoroutine())
	}
	r := fanoutResult{Watchers: n, Changes: changes, OpenSeconds: opening.Seconds(),
		HeapPerStream: float64(int64(after.HeapInuse+after.StackInuse)-int64(before.HeapInuse+before.StackInuse)) / float64(n),
		RSSPerStream:  float64(vmRSS()-rssBefore) / float64(n)}

	if path := os.Getenv("TM_WATCH_FANOUT_CPU"); path != "" { // where the fan-out's time goes
		if f, err := os.Create(path); err == nil {
			_ = pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
		}
	}
	var commit, firsts, lasts []time.Duration
	for i := 1; i <= changes; i++ {
		id := uuid.NewString()
		t00 := time.Now()
		res, err := e.st.Apply(context.Background(), routes.Mutation{Action: routes.ActionUpdated, Key: k,
			URL: fmt.Sprintf("https://bench-%d.example", i), ChangedBy: "bench", EventID: id})
		if err != nil {
			tb.Fatal(err)
		}
		t0 := time.Now() // committed; the event wakes the tail
		commit = append(commit, t0.Sub(t00))
		if err := e.pub.Publish(context.Background(), events.FromResult(id, routes.ActionUpdated, res, "bench")); err != nil {
			tb.Fatal(err)
		}
		gotFirst := false
		for done := false; !done; {
			select {
			case got := <-first:
				if got == i && !gotFirst {
					gotFirst = true
					firsts = append(firsts, time.Since(t0))
				}
			case got := <-reached:
				if got != i {
					tb.Fatalf("change %d reached every stream while waiting for %d", got, i)
				}
				lasts = append(lasts, time.Since(t0))
				done = true
			case <-time.After(30 * time.Second):
				tb.Fatalf("change %d did not reach every stream within 30s (it reached one: %v; the ledger's xmin holds "+
					"every stream back while any transaction on the Postgres server is open)", i, gotFirst)
			}
		}
		if !gotFirst { // printed just before "reached"
			if got := <-first; got == i {
				firsts = append(firsts, lasts[len(lasts)-1])
			}
		}
		if d := gap - time.Since(t00); d > 0 {
			time.Sleep(d)
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	r.CommitP50 = ms(pct(commit, 0.5))
	r.FirstP50, r.FirstP99 = ms(pct(firsts, 0.5)), ms(pct(firsts, 0.99))
	r.LastP50, r.LastP99, r.LastMax = ms(pct(lasts, 0.5)), ms(pct(lasts, 0.99)), ms(pct(lasts, 1))
	tb.Logf("%d streams (open in %v): commit to first stream p50 %.1f ms p99 %.1f ms; to last p50 %.1f ms p99 %.1f ms (max %.1f) over %d changes; server memory %.2f KiB heap+stack, %.2f KiB RSS per stream",
		n, opening.Round(time.Millisecond), r.FirstP50, r.FirstP99, r.LastP50, r.LastP99, r.LastMax, changes, r.HeapPerStream/1024, r.RSSPerStream/1024)
	return r
}

func pct(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// vmRSS is this process's resident set in bytes (0 where /proc is absent).
func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
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

// TestWatchSwarm is watchFanout's child: it opens TM_WATCH_SWARM_N streams
// of TM_WATCH_SWARM_URL over raw connections, prints "open" once every one
// has its first message, then "first i" once change
// https://bench-i.example has reached one stream and "reached i" once it has
// reached every stream.
func TestWatchSwarm(t *testing.T) {
	u, nv := os.Getenv("TM_WATCH_SWARM_URL"), os.Getenv("TM_WATCH_SWARM_N")
	if u == "" {
		t.Skip("the child process of BenchmarkWatchFanout")
	}
	n, _ := strconv.Atoi(nv)
	hostPath := strings.TrimPrefix(u, "http://")
	host, path, _ := strings.Cut(hostPath, "/")
	// The readers share the machine with the server: they parse without
	// allocating, as etcd's client side does little per watcher.
	var counts [1 << 16]atomic.Int64 // per change number
	var ready sync.WaitGroup
	var mu sync.Mutex // one line at a time on stdout
	marker := []byte("https://bench-")
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		if _, err := fmt.Fprintf(c, "GET /%s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host); err != nil {
			t.Fatal(err)
		}
		ready.Add(1)
		go func() {
			rd := bufio.NewReaderSize(c, 1024)
			first := true
			for {
				line, err := rd.ReadSlice('\n')
				if err != nil {
					return
				}
				if first && bytes.HasPrefix(line, []byte("id: ")) {
					first = false
					ready.Done()
				}
				j := bytes.Index(line, marker)
				if j < 0 || !bytes.HasPrefix(line, []byte("data:")) {
					continue
				}
				num := 0
				for _, d := range line[j+len(marker):] {
					if d < '0' || d > '9' {
						break
					}
					num = num*10 + int(d-'0')
				}
				if num >= len(counts) {
					continue
				}
				switch counts[num].Add(1) {
				case 1:
					mu.Lock()
					fmt.Printf("first %d\n", num)
					mu.Unlock()
					if n > 1 {
						break
					}
					fallthrough
				case int64(n):
					mu.Lock()
					fmt.Printf("reached %d\n", num)
					mu.Unlock()
				}
			}
		}()
	}
	ready.Wait()
	fmt.Println("open")
	select {} // until the benchmark kills the process
}

func waitForTB(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("condition not met within 60s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
