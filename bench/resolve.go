package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// attack runs vegeta against url: rate 0 means as fast as possible with a
// fixed pool of workers (closed loop); otherwise an open-loop constant rate.
func attack(url string, rate int, d time.Duration) *vegeta.Metrics {
	opts := []func(*vegeta.Attacker){vegeta.KeepAlive(true), vegeta.Connections(64), vegeta.Timeout(5 * time.Second)}
	r := vegeta.Rate{Freq: rate, Per: time.Second}
	if rate == 0 {
		opts = append(opts, vegeta.Workers(32), vegeta.MaxWorkers(32))
	} else {
		opts = append(opts, vegeta.Workers(16))
	}
	a := vegeta.NewAttacker(opts...)
	tg := vegeta.NewStaticTargeter(vegeta.Target{Method: "GET", URL: url})
	var m vegeta.Metrics
	for res := range a.Attack(tg, r, d, "bench") {
		m.Add(res)
	}
	m.Close()
	return &m
}

func createRoute(api, tenant, version, url string) error {
	body, _ := json.Marshal(map[string]any{"tenant": tenant, "service": "payments", "env": "prod", "version": version, "url": url})
	res, err := http.Post("http://"+api+"/api/v1/routes", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode >= 300 {
		return fmt.Errorf("create route: %s", res.Status)
	}
	return nil
}

func benchResolve(ctx context.Context, p *platform, d time.Duration) ([]row, error) {
	if err := createRoute(p.api, "bench-hot", "v2", "https://payments.example/v2"); err != nil {
		return nil, err
	}
	url := "http://" + p.resolver + "/api/v1/resolve/bench-hot/payments/prod/v2"
	for i := 0; i < 3; i++ { // fill the caches
		if res, err := http.Get(url); err == nil {
			res.Body.Close()
		}
	}
	bare, stopBare, err := startBare()
	if err != nil {
		return nil, err
	}
	defer stopBare()
	bareURL := "http://" + bare + "/api/v1/resolve/bench-hot/payments/prod/v2"

	rm := attack(url, 0, d)
	bm := attack(bareURL, 0, d)
	if rm.Success < 0.999 {
		return nil, fmt.Errorf("resolver answered %.2f%% successfully: %v", rm.Success*100, rm.Errors)
	}
	fmt.Printf("resolve max: resolver %.0f req/s, bare net/http %.0f req/s\n", rm.Throughput, bm.Throughput)
	half := int(rm.Throughput / 2)
	hm := attack(url, half, d)
	fmt.Printf("resolve at %d req/s: p50 %s p99 %s\n", half, hm.Latencies.P50, hm.Latencies.P99)
	// A moderate fixed rate, where the load generator itself is not the
	// bottleneck on a 2-core machine.
	const moderate = 1000
	mm := attack(url, moderate, d)
	fmt.Printf("resolve at %d req/s: p50 %s p99 %s\n", moderate, mm.Latencies.P50, mm.Latencies.P99)
	return []row{
		{
			figure:   "resolver cache-hit throughput over HTTP (closed loop, 32 workers)",
			value:    fmt.Sprintf("%.0f req/s", rm.Throughput),
			baseline: fmt.Sprintf("bare net/http, same path shape: %.0f req/s", bm.Throughput),
			ratio:    fmt.Sprintf("%.2f×", rm.Throughput/bm.Throughput),
			goal:     "≥ 0.9×",
		},
		{
			figure:   fmt.Sprintf("resolver latency at half its max rate (%d req/s, open loop)", half),
			value:    fmt.Sprintf("p50 %s, p99 %s", hm.Latencies.P50.Round(time.Microsecond), hm.Latencies.P99.Round(time.Microsecond)),
			baseline: "—", ratio: "—", goal: "p99 < 1 ms",
		},
		{
			figure:   fmt.Sprintf("resolver latency at %d req/s (open loop)", moderate),
			value:    fmt.Sprintf("p50 %s, p99 %s", mm.Latencies.P50.Round(time.Microsecond), mm.Latencies.P99.Round(time.Microsecond)),
			baseline: "—", ratio: "—", goal: "—",
		},
	}, nil
}

// benchPropagation measures the time from a mutation's HTTP 200 to the
// first resolver answer that reflects it.
func benchPropagation(ctx context.Context, p *platform, n int) ([]row, error) {
	tenant := fmt.Sprintf("bench-prop-%d", time.Now().Unix()%100000)
	if err := createRoute(p.api, tenant, "v1", "https://prop.example/0"); err != nil {
		return nil, err
	}
	resolve := "http://" + p.resolver + "/api/v1/resolve/" + tenant + "/payments/prod/v1"
	hc := &http.Client{Timeout: 5 * time.Second}
	get := func() string {
		res, err := hc.Get(resolve)
		if err != nil {
			return ""
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	get()
	lat := make([]time.Duration, 0, n)
	for i := 1; i <= n; i++ {
		want := fmt.Sprintf("https://prop.example/%d", i)
		body, _ := json.Marshal(map[string]string{"url": want})
		req, _ := http.NewRequestWithContext(ctx, "PUT", "http://"+p.api+"/api/v1/routes/"+tenant+"/payments/prod/v1", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		res, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("update: %s", res.Status)
		}
		t0 := time.Now()
		for !strings.Contains(get(), want) {
			if time.Since(t0) > 10*time.Second {
				return nil, fmt.Errorf("update %d not visible after 10 s", i)
			}
		}
		lat = append(lat, time.Since(t0))
	}
	fmt.Printf("propagation: p50 %s p99 %s max %s over %d mutations\n", ms(pct(lat, .5)), ms(pct(lat, .99)), ms(pct(lat, 1)), n)
	return []row{{
		figure:   fmt.Sprintf("propagation: mutation HTTP 200 → resolver answers the new URL (%d mutations)", n),
		value:    fmt.Sprintf("p50 %s, p99 %s, max %s", ms(pct(lat, .5)), ms(pct(lat, .99)), ms(pct(lat, 1))),
		baseline: "—", ratio: "—", goal: "p99 ≤ 250 ms",
	}}, nil
}
