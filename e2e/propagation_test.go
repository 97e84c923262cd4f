package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/resolver"
	"github.com/trafficmanager/trafficmanager/routes"
)

// startResolver serves one resolver instance on p, as `trafficmanager
// resolver` runs it: its own L1 cache and event consumer, p's Postgres and
// Redis. It returns its base URL once the consumer is subscribed.
func startResolver(t *testing.T, p *platform) string {
	t.Helper()
	res, err := resolver.New(resolver.Options{Store: routes.NewStore(p.pool), Redis: cache.NewRedis(p.rdb, time.Minute),
		PositiveTTL: time.Minute, NegativeTTL: 10 * time.Second, Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
	require.NoError(t, err)
	t.Cleanup(res.Close)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	var once sync.Once
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = res.ConsumeEvents(ctx, p.brokers, topic, func() { once.Do(func() { close(ready) }) })
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("resolver did not subscribe to the events")
	}
	res.MarkReady()
	srv := httptest.NewServer(res.Handler(observability.NewRegistry()))
	t.Cleanup(srv.Close)
	serves(srv.URL, resolver.OpenAPI)
	return srv.URL
}

// awaitURL polls a resolver until it answers url for the route and returns
// when it did; it gives up at deadline.
func awaitURL(hc *http.Client, resolveURL, url string, deadline time.Time) (time.Time, error) {
	want := `"url":"` + url + `"`
	var last string
	for {
		res, err := hc.Get(resolveURL)
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			last = fmt.Sprintf("%d %s", res.StatusCode, b)
			if res.StatusCode == http.StatusOK && strings.Contains(string(b), want) {
				return time.Now(), nil
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("still answers %s", last)
		}
		// Two pollers spinning without a pause would take the CPU the
		// worker and the consumers need on a 2-core machine; 2 ms is the
		// resolution of the figures.
		time.Sleep(2 * time.Millisecond)
	}
}

// percentile returns the q-quantile (nearest rank) of ds.
func percentile(ds []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s))*q+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// With three resolver instances (each its own L1 cache and event consumer,
// all holding the route in L1), every change of a route reaches all: each
// answers the new URL. The time from the write's 200 to each instance's
// first new answer is logged per instance (p50/p99/max over
// TM_TEST_PROPAGATION_CHANGES changes, default 100); only convergence is
// asserted, never a time.
func TestARouteChangeReachesEveryResolver(t *testing.T) {
	t.Parallel()
	changes := 100
	if v := os.Getenv("TM_TEST_PROPAGATION_CHANGES"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "TM_TEST_PROPAGATION_CHANGES")
		changes = n
	}
	p := startPlatform(t, 10*time.Second)
	resolvers := []string{startResolver(t, p), startResolver(t, p), startResolver(t, p)}
	k := routes.Key{Tenant: testenv.Name(t, "prop"), Service: "payments", Env: "prod", Version: "v1"}
	createCompleted(t, p, k, "https://prop.example/0", true)
	hc := &http.Client{Timeout: 5 * time.Second}
	for _, r := range resolvers {
		_, err := awaitURL(hc, r+resolver.ResolvePrefix+k.Tenant+"/payments/prod/v1", "https://prop.example/0", time.Now().Add(10*time.Second))
		require.NoError(t, err, "%s before the first change", r)
	}

	lat := make([][]time.Duration, len(resolvers))
	var slowest []time.Duration // per change, the latest of the three
	for i := 1; i <= changes; i++ {
		url := fmt.Sprintf("https://prop.example/%d", i)
		res := p.do(t, "PUT", routePath(k), map[string]any{"url": url})
		require.Equal(t, http.StatusOK, res.Status, res.Raw)
		acked := time.Now()
		got := make([]time.Time, len(resolvers))
		errs := make([]error, len(resolvers))
		var wg sync.WaitGroup
		for j, r := range resolvers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[j], errs[j] = awaitURL(hc, r+resolver.ResolvePrefix+k.Tenant+"/payments/prod/v1", url, acked.Add(10*time.Second))
			}()
		}
		wg.Wait()
		var last time.Duration
		for j := range resolvers {
			require.NoError(t, errs[j], "change %d (%s) within 10 s at resolver %d (%s)", i, url, j, resolvers[j])
			d := got[j].Sub(acked)
			lat[j] = append(lat[j], d)
			last = max(last, d)
		}
		slowest = append(slowest, last)
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
	for j := range resolvers {
		t.Logf("propagation to resolver %d (%s topology, %d changes, write 200 → new URL answered): p50 %s  p99 %s  max %s",
			j, testenv.Temporal(t).Topology, changes, ms(percentile(lat[j], .5)), ms(percentile(lat[j], .99)), ms(percentile(lat[j], 1)))
	}
	t.Logf("propagation to every resolver (the latest of the three, per change): p50 %s  p99 %s  max %s",
		ms(percentile(slowest, .5)), ms(percentile(slowest, .99)), ms(percentile(slowest, 1)))
}
