package resolver

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
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

// BenchmarkWatchFanout opens TM_WATCH_BENCH_WATCHERS streams of one tenant
// on one resolver (default 9,000: each stream is two descriptors in this
// one process, client and server, and the machine's hard limit may be
// 20,000), then commits b.N changes one at a time and measures, for each,
// the time from the commit (Store.Apply returning) to the last watcher
// reading it. It reports p50/p99 of that and the memory per open stream
// (heap and stacks of both ends: an upper bound of the server's share).
// No assertions: it prints numbers.
//
//	go test -run '^$' -bench WatchFanout -benchtime 20x ./resolver/
func BenchmarkWatchFanout(b *testing.B) {
	n := 9_000
	if v, err := strconv.Atoi(os.Getenv("TM_WATCH_BENCH_WATCHERS")); err == nil && v > 0 {
		n = v
	}
	e := newWatchEnv(b, WatchOptions{MaxWatchers: n + 10, MaxPerTenant: n + 10, Buffer: 64}, nil)
	addr := strings.TrimPrefix(e.srv.URL, "http://")

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	// One reader goroutine per stream over a raw connection: the lightest
	// client, so the numbers are the server's. A reader reports the change
	// whose marker (its URL) it sees.
	var got atomic.Int64
	var marker atomic.Pointer[string]
	var wg sync.WaitGroup
	conns := make([]net.Conn, 0, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatalf("stream %d: %v", i, err)
		}
		conns = append(conns, c)
		if _, err := fmt.Fprintf(c, "GET %s%s HTTP/1.1\r\nHost: %s\r\n\r\n", WatchPrefix, e.tenant, addr); err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rd := bufio.NewReaderSize(c, 1024)
			for {
				line, err := rd.ReadSlice('\n')
				if err != nil {
					return
				}
				if m := marker.Load(); m != nil && len(line) > 6 && string(line[:5]) == "data:" && strings.Contains(string(line), *m) {
					got.Add(1)
				}
			}
		}()
	}
	waitForB(b, func() bool { return e.res.WatchStats().Watchers == n })
	// Every stream has joined the tail once it is counted and its handler
	// has read the head; give the last handlers a moment to join.
	time.Sleep(500 * time.Millisecond)
	b.Logf("%d streams open in %v", n, time.Since(start).Round(time.Millisecond))
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	perStream := float64(after.HeapInuse+after.StackInuse-before.HeapInuse-before.StackInuse) / float64(n)

	k := e.key("checkout", "v1")
	e.change(b, routes.ActionCreated, k, "https://bench-0.example", true)
	time.Sleep(200 * time.Millisecond)
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := fmt.Sprintf("https://bench-%d.example", i+1)
		marker.Store(&m)
		got.Store(0)
		id := uuid.NewString()
		res, err := e.st.Apply(context.Background(), routes.Mutation{Action: routes.ActionUpdated, Key: k, URL: m, ChangedBy: "bench", EventID: id})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now() // committed; the event wakes the tail
		if err := e.pub.Publish(context.Background(), events.FromResult(id, routes.ActionUpdated, res, "bench")); err != nil {
			b.Fatal(err)
		}
		deadline := t0.Add(30 * time.Second)
		for got.Load() < int64(n) {
			if time.Now().After(deadline) {
				b.Fatalf("change %d reached %d of %d streams in 30s", i, got.Load(), n)
			}
			time.Sleep(100 * time.Microsecond)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	b.ReportMetric(float64(p(0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(perStream/1024, "KiB/stream")
	b.Logf("%d streams: commit to last stream p50 %v p99 %v (max %v) over %d changes; %.1f KiB per stream (both ends)",
		n, p(0.5), p(0.99), lat[len(lat)-1], len(lat), perStream/1024)
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
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
