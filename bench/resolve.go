package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// attack runs vegeta against url: rate 0 means as fast as possible with a
// fixed pool of workers (closed loop); otherwise an open-loop constant rate.
// Workers and connections are capped: on one core, a vegeta that falls
// behind and keeps adding workers and connections collapses (a few thousand
// req/s with multi-second latencies), while 32 keep up with ~9k req/s.
// When the cap is reached vegeta sends less than asked, so the rate it
// actually sent is reported next to each latency.
func attack(url string, rate int, d time.Duration) *vegeta.Metrics {
	const workers = 32
	opts := []func(*vegeta.Attacker){vegeta.KeepAlive(true), vegeta.Connections(workers), vegeta.MaxConnections(workers),
		vegeta.Timeout(5 * time.Second), vegeta.Workers(workers), vegeta.MaxWorkers(workers)}
	a := vegeta.NewAttacker(opts...)
	tg := vegeta.NewStaticTargeter(vegeta.Target{Method: "GET", URL: url})
	var m vegeta.Metrics
	for res := range a.Attack(tg, vegeta.Rate{Freq: rate, Per: time.Second}, d, "bench") {
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

// benchResolve compares the resolver's cache-hit throughput with a bare
// net/http server (wrk, closed loop), profiles the resolver under that load,
// and measures open-loop latency (vegeta) at half the resolver's maximum.
// On machines with 2+ CPUs the whole dev platform and the bare server run on
// serverCPU and the generators on generatorCPU.
func benchResolve(ctx context.Context, b *bench, d time.Duration) ([]row, error) {
	p := b.p
	if err := createRoute(p.api, "bench-hot", "v2", "https://payments.example/v2"); err != nil {
		return nil, err
	}
	path := "/api/v1/resolve/bench-hot/payments/prod/v2"
	url := "http://" + p.resolver + path
	for i := 0; i < 3; i++ { // fill the caches
		if res, err := http.Get(url); err == nil {
			res.Body.Close()
		}
	}
	genCPU, srvCPU := "", ""
	if numCPU() >= 2 {
		genCPU, srvCPU = generatorCPU, serverCPU
		// Twice: a thread created while taskset walks the threads may
		// have copied the old mask.
		for range 2 {
			if err := pin(srvCPU, descendants(p.pid())...); err != nil {
				return nil, err
			}
		}
		defer func() { _ = pin(allCPUs(), descendants(p.pid())...) }()
	}
	bare, barePID, stopBare, err := startBare(srvCPU)
	if err != nil {
		return nil, err
	}
	defer stopBare()
	bareURL := "http://" + bare + path
	// Go follows a changed CPU mask with GOMAXPROCS within about a second;
	// then both servers run with GOMAXPROCS=1 on the same core. A short
	// run each warms connections and caches.
	time.Sleep(2500 * time.Millisecond)
	for _, u := range []string{url, bareURL} {
		if _, err := runWrk(ctx, genCPU, u, time.Second); err != nil {
			return nil, err
		}
	}

	// Alternating rounds, so both servers see the same background noise.
	// Each run also records how busy the generator, the server and the
	// whole machine were: a server below one core with the generator at one
	// core means the generator (or another process) was the bound.
	const rounds = 3
	var rs, bs, re, be []float64 // req/s, and req/s per core the server used
	var gen, cpuNote string
	for i := 0; i < rounds; i++ {
		rSrv, rAll := sample(p.pid()), sampleMachine()
		r, err := runWrk(ctx, genCPU, url, d)
		if err != nil {
			return nil, fmt.Errorf("resolver: %w", err)
		}
		rSrvUse, rAllUse := rSrv.done(), rAll.done()
		bSrv, bAll := sample(barePID), sampleMachine()
		bm, err := runWrk(ctx, genCPU, bareURL, d)
		if err != nil {
			return nil, fmt.Errorf("bare: %w", err)
		}
		bSrvUse, bAllUse := bSrv.done(), bAll.done()
		rs, bs, gen = append(rs, r.rps), append(bs, bm.rps), r.generator
		re, be = append(re, r.rps/max(rSrvUse.cores(), 0.01)), append(be, bm.rps/max(bSrvUse.cores(), 0.01))
		cpuNote = fmt.Sprintf("cores busy in round %d: resolver run: server %.2f, wrk %.2f, machine %.2f; bare run: server %.2f, wrk %.2f, machine %.2f (of %d)",
			i+1, rSrvUse.cores(), r.cores, rAllUse.cores(), bSrvUse.cores(), bm.cores, bAllUse.cores(), numCPU())
		fmt.Printf("resolve max, round %d: resolver %.0f req/s (p50 %s), bare net/http %.0f req/s (p50 %s) → %.2f×, per server CPU-s %.2f×; %s\n",
			i+1, r.rps, r.p50, bm.rps, bm.p50, r.rps/bm.rps, re[i]/be[i], cpuNote)
	}
	rMax, bMax := median(rs), median(bs)
	rEff, bEff := median(re), median(be)

	// The same load once more, with a CPU profile of the dev process; wrk
	// runs a second longer than the profile.
	var prof wrkResult
	file, _, err := profileUnderLoad(ctx, "http://"+p.resolver, b.tmp, "resolver-cache-hit", func(context.Context) int {
		prof, _ = runWrk(ctx, genCPU, url, time.Duration(profileSeconds+1)*time.Second)
		return prof.requests
	})
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	b.profiles = append(b.profiles, profileRun{
		title: "Resolver cache hits over HTTP (wrk closed loop)",
		context: fmt.Sprintf("`trafficmanager dev` on CPU %s, `%s` on CPU %s; %.0f req/s while profiled (%.0f unprofiled, bare net/http %.0f); %s.",
			orAll(srvCPU)+gomaxprocs(srvCPU), gen, orAll(genCPU), prof.rps, rMax, bMax, cpuNote),
		file: file,
	})

	// Open loop from this process, pinned away from the servers as wrk was;
	// the bare server at the same rates is the baseline.
	if genCPU != "" {
		if err := pin(genCPU, os.Getpid()); err != nil {
			return nil, err
		}
		defer func() { _ = pin(allCPUs(), os.Getpid()) }()
		time.Sleep(2500 * time.Millisecond)
	}
	half := int(rMax / 2)
	// A moderate fixed rate, where the generator itself is far from its limit.
	const moderate = 1000
	var lat []row
	for _, rate := range []int{half, moderate} {
		rm := attack(url, rate, d)
		bm := attack(bareURL, rate, d)
		for _, m := range []*vegeta.Metrics{rm, bm} {
			if m.Success < 0.999 {
				return nil, fmt.Errorf("%.2f%% of the answers at %d req/s were successful: %v", m.Success*100, rate, m.Errors)
			}
		}
		fmt.Printf("resolve at %d req/s: resolver sent %.0f req/s, p50 %s p99 %s; bare sent %.0f req/s, p50 %s p99 %s\n",
			rate, rm.Rate, rm.Latencies.P50, rm.Latencies.P99, bm.Rate, bm.Latencies.P50, bm.Latencies.P99)
		r := row{
			figure:   fmt.Sprintf("resolver latency at %d req/s (open loop, vegeta in the bench process%s)", rate, pinned(srvCPU, genCPU)),
			value:    latency(rm),
			baseline: "bare net/http at the same rate: " + latency(bm),
			ratio:    fmt.Sprintf("%.2f× (p99)", float64(rm.Latencies.P99)/float64(bm.Latencies.P99)),
			goal:     "—",
		}
		if rate == half {
			r.figure = fmt.Sprintf("resolver latency at half its max rate (%d req/s, open loop, vegeta in the bench process%s)", rate, pinned(srvCPU, genCPU))
			r.goal = "p99 < 1 ms"
		}
		lat = append(lat, r)
	}
	return append([]row{{
		figure: fmt.Sprintf("resolver cache-hit throughput over HTTP (closed loop: wrk -t%d -c%d, median of %d alternating %s runs%s; "+
			"second number: requests per CPU-second the server used, which other load on the machine disturbs less)", wrkThreads, wrkConnections, rounds, d, pinned(srvCPU, genCPU)),
		value:    fmt.Sprintf("%.0f req/s (%s); %.0f req/CPU-s", rMax, joinRates(rs), rEff),
		baseline: fmt.Sprintf("bare net/http, same path shape, constant body: %.0f req/s (%s); %.0f req/CPU-s", bMax, joinRates(bs), bEff),
		ratio:    fmt.Sprintf("%.2f× (%.2f× per CPU-s)", rMax/bMax, rEff/bEff),
		goal:     "≥ 0.9×",
	}}, lat...), nil
}

func latency(m *vegeta.Metrics) string {
	return fmt.Sprintf("p50 %s, p99 %s (sent %.0f req/s)", m.Latencies.P50.Round(time.Microsecond), m.Latencies.P99.Round(time.Microsecond), m.Rate)
}

func pinned(srvCPU, genCPU string) string {
	if srvCPU == "" {
		return ""
	}
	return fmt.Sprintf(", servers on CPU %s, generator on CPU %s", srvCPU, genCPU)
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func joinRates(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, " / ")
}

func orAll(cpus string) string {
	if cpus == "" {
		return "any"
	}
	return cpus
}

// gomaxprocs notes what a Go process pinned to one CPU runs with.
func gomaxprocs(cpus string) string {
	if cpus == "" {
		return ""
	}
	return " (GOMAXPROCS 1)"
}

// benchPropagation measures the time from a mutation's HTTP 200 to the
// first resolver answer that reflects it.
func benchPropagation(ctx context.Context, p *platform, n int) ([]row, error) {
	tenant := fmt.Sprintf("bench-prop-%d", time.Now().Unix()%100000)
	if err := createRoute(p.api, tenant, "v1", "https://prop.example/0"); err != nil {
		return nil, err
	}
	bases := p.resolverURLs()
	hc := &http.Client{Timeout: 5 * time.Second}
	get := func(base string) string {
		res, err := hc.Get(base + "/api/v1/resolve/" + tenant + "/payments/prod/v1")
		if err != nil {
			return ""
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	for _, b := range bases {
		get(b)
	}
	// lat: until every resolver answers the new URL; per[i]: resolver i.
	lat := make([]time.Duration, 0, n)
	per := make([][]time.Duration, len(bases))
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
		seen := make([]bool, len(bases))
		for left := len(bases); left > 0; {
			if time.Since(t0) > 10*time.Second {
				return nil, fmt.Errorf("update %d not visible on every resolver after 10 s", i)
			}
			for j, b := range bases {
				if !seen[j] && strings.Contains(get(b), want) {
					seen[j], left = true, left-1
					per[j] = append(per[j], time.Since(t0))
				}
			}
		}
		lat = append(lat, time.Since(t0))
	}
	var each []string
	for j := range bases {
		each = append(each, fmt.Sprintf("resolver %d p50 %s p99 %s", j, ms(pct(per[j], .5)), ms(pct(per[j], .99))))
	}
	fmt.Printf("propagation to every resolver (%d): p50 %s p99 %s max %s over %d mutations; %s\n",
		len(bases), ms(pct(lat, .5)), ms(pct(lat, .99)), ms(pct(lat, 1)), n, strings.Join(each, "; "))
	return []row{{
		figure:   fmt.Sprintf("propagation: mutation HTTP 200 → every resolver (%d) answers the new URL (%d mutations)", len(bases), n),
		value:    fmt.Sprintf("p50 %s, p99 %s, max %s (%s)", ms(pct(lat, .5)), ms(pct(lat, .99)), ms(pct(lat, 1)), strings.Join(each, "; ")),
		baseline: "—", ratio: "—", goal: "p99 ≤ 250 ms",
	}}, nil
}
