package resolver

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
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
// returning) to the last stream reading it. The readers run in a child
// process (this test binary again, TestWatchSwarm), so the resolver's
// process holds only the server's descriptors and memory: the memory per
// stream it reports is the server's (heap and stacks). No assertions.
//
//	go test -run '^$' -bench WatchFanout -benchtime 50x ./resolver/
func BenchmarkWatchFanout(b *testing.B) {
	n := 10_000
	if v, err := strconv.Atoi(os.Getenv("TM_WATCH_BENCH_WATCHERS")); err == nil && v > 0 {
		n = v
	}
	e := newWatchEnv(b, WatchOptions{MaxWatchers: n + 10, MaxPerTenant: n + 10, Buffer: 64}, nil)
	k := e.key("checkout", "v1")
	e.change(b, routes.ActionCreated, k, "https://bench-0.example", true)

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	cmd := exec.Command(os.Args[0], "-test.run=^TestWatchSwarm$", "-test.v")
	cmd.Env = append(os.Environ(), "TM_WATCH_SWARM_URL="+e.srv.URL+WatchPrefix+e.tenant, "TM_WATCH_SWARM_N="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	reached := make(chan int, 16)
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
			}
		}
	}()
	start := time.Now()
	select {
	case <-opened:
	case <-time.After(120 * time.Second):
		b.Fatal("the swarm did not open its streams within 120s")
	}
	waitForB(b, func() bool { return e.res.WatchStats().Watchers == n })
	time.Sleep(500 * time.Millisecond) // the last handlers join their tail
	b.Logf("%d streams open in %v", n, time.Since(start).Round(time.Millisecond))
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	perStream := float64(after.HeapInuse+after.StackInuse-before.HeapInuse-before.StackInuse) / float64(n)

	var lat []time.Duration
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		id := uuid.NewString()
		res, err := e.st.Apply(context.Background(), routes.Mutation{Action: routes.ActionUpdated, Key: k,
			URL: fmt.Sprintf("https://bench-%d.example", i), ChangedBy: "bench", EventID: id})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now() // committed; the event wakes the tail
		if err := e.pub.Publish(context.Background(), events.FromResult(id, routes.ActionUpdated, res, "bench")); err != nil {
			b.Fatal(err)
		}
		select {
		case got := <-reached:
			if got != i {
				b.Fatalf("change %d reached every stream while waiting for %d", got, i)
			}
		case <-time.After(30 * time.Second):
			b.Fatalf("change %d did not reach every stream within 30s", i)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	b.ReportMetric(float64(p(0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(perStream/1024, "server-KiB/stream")
	b.Logf("%d streams: commit to last stream p50 %v p99 %v (max %v) over %d changes; server memory %.1f KiB per stream",
		n, p(0.5), p(0.99), lat[len(lat)-1], len(lat), perStream/1024)
}

// TestWatchSwarm is BenchmarkWatchFanout's child: it opens
// TM_WATCH_SWARM_N streams of TM_WATCH_SWARM_URL over raw connections,
// prints "open" once every one has its first message, then "reached i"
// once change https://bench-i.example has reached every stream.
func TestWatchSwarm(t *testing.T) {
	u, nv := os.Getenv("TM_WATCH_SWARM_URL"), os.Getenv("TM_WATCH_SWARM_N")
	if u == "" {
		t.Skip("the child process of BenchmarkWatchFanout")
	}
	n, _ := strconv.Atoi(nv)
	hostPath := strings.TrimPrefix(u, "http://")
	host, path, _ := strings.Cut(hostPath, "/")
	var counts sync.Map // change number -> *atomic.Int64
	var ready sync.WaitGroup
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
				if first && strings.HasPrefix(string(line), "id: ") {
					first = false
					ready.Done()
				}
				s := string(line)
				j := strings.Index(s, "https://bench-")
				if j < 0 || !strings.HasPrefix(s, "data:") {
					continue
				}
				num, _, _ := strings.Cut(s[j+len("https://bench-"):], ".")
				v, _ := counts.LoadOrStore(num, new(atomic.Int64))
				if v.(*atomic.Int64).Add(1) == int64(n) {
					fmt.Printf("reached %s\n", num)
				}
			}
		}()
	}
	ready.Wait()
	fmt.Println("open")
	select {} // until the benchmark kills the process
}

func waitForB(b *testing.B, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatal("condition not met within 60s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
