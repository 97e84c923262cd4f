package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/internal/devstack"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
)

const dashboardFile = "../deploy/grafana/trafficmanager.json"

// The Grafana dashboard queries only metrics that exist: api, worker and
// resolver run as the binary's processes (so /metrics is what a user
// scrapes, the Temporal SDK's metrics included), a write, a conflicting
// write and resolves put a sample in every labelled metric, and every
// metric name in every PromQL expression of the dashboard must be in one of
// the three /metrics outputs.
func TestEveryMetricTheDashboardQueriesIsExposed(t *testing.T) {
	t.Parallel()
	p := startPlatformWith(t, platformOptions{ackTimeout: 10 * time.Second, noWorker: true})
	env := processEnv(t, p, testenv.MongoURI(t), testenv.Temporal(t).Address)
	addr := func() string {
		port, err := devstack.FreePort()
		require.NoError(t, err)
		return fmt.Sprintf("127.0.0.1:%d", port)
	}
	apiAddr, workerAddr, resolverAddr := addr(), addr(), addr()
	startProcess(t, append(env, "TM_API_ADDR="+apiAddr), "api", "--insecure-no-auth")
	startProcess(t, append(env, "TM_WORKER_ADDR="+workerAddr), "worker")
	startProcess(t, append(env, "TM_RESOLVER_ADDR="+resolverAddr), "resolver")
	for _, a := range []string{apiAddr, workerAddr} {
		waitHTTP(t, "http://"+a+"/healthz")
	}
	waitHTTP(t, "http://"+resolverAddr+"/readyz") // subscribed to the route events

	tenant := testenv.Name(t, "dash")
	post := func(body string) (int, map[string]any) {
		res, err := http.Post("http://"+apiAddr+"/api/v1/routes", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer res.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		return res.StatusCode, out
	}
	status, out := post(fmt.Sprintf(`{"tenant":%q,"service":"s","env":"prod","version":"v1","url":"https://a.example"}`, tenant))
	require.Equal(t, http.StatusCreated, status, out)
	wf, _ := out["workflow_id"].(string)
	// The same route at another URL: a conflict (write_failure_total, a failed
	// activity and workflow).
	status, out = post(fmt.Sprintf(`{"tenant":%q,"service":"s","env":"prod","version":"v1","url":"https://b.example"}`, tenant))
	require.Equal(t, http.StatusConflict, status, out)

	get := func(base, path string) int {
		res, err := http.Get("http://" + base + path)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	for range 2 { // a miss, then a hit; a 404, then a negative hit
		require.Equal(t, http.StatusOK, get(resolverAddr, "/api/v1/resolve/"+tenant+"/s/prod/v1"))
		require.Equal(t, http.StatusNotFound, get(resolverAddr, "/api/v1/resolve/"+tenant+"/s/prod/v9"))
	}
	// A route read goes through the api's postgres breaker and read bulkhead.
	require.Equal(t, http.StatusOK, get(apiAddr, "/api/v1/routes/"+tenant+"/s/prod/v1"))
	eventually(t, 30*time.Second, func() bool {
		res, err := http.Get("http://" + apiAddr + "/api/v1/mutations/" + escapePath(wf))
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var m map[string]any
		return json.NewDecoder(res.Body).Decode(&m) == nil && m["status"] == "completed"
	}, "the write's workflow completes")

	// Counters of the SDK are recorded as their events happen; the failed
	// workflow closes after the conflict's answer.
	var exposed map[string]*dto.MetricFamily
	var missing []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		exposed = map[string]*dto.MetricFamily{}
		for _, a := range []string{apiAddr, workerAddr, resolverAddr} {
			for name, mf := range scrape(t, "http://"+a+"/metrics") {
				exposed[name] = mf
			}
		}
		missing = missing[:0]
		for _, name := range dashboardMetrics(t) {
			if !metricExposed(name, exposed) {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(missing) > 0 {
		names := make([]string, 0, len(exposed))
		for n := range exposed {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Logf("exposed: %s", strings.Join(names, " "))
	}
	require.Empty(t, missing, "the dashboard queries metrics that no /metrics of api, worker or resolver exposes")
	for _, name := range []string{"temporal_request", "temporal_workflow_task_execution_latency", "temporal_local_activity_execution_failed"} {
		_, ok := exposed[name]
		require.True(t, ok, "the Temporal SDK's metrics keep their names: %s", name)
	}
}

// escapePath escapes each segment of a workflow id, keeping its slashes.
func escapePath(id string) string {
	parts := strings.Split(id, "/")
	for i, s := range parts {
		parts[i] = strings.ReplaceAll(s, "%", "%25")
	}
	return strings.Join(parts, "/")
}

// scrape returns the metric families of a /metrics page by name.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, url)
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	require.NoError(t, err, url)
	return mfs
}

// metricExposed says whether a series name a query selects exists: a family
// of that name with samples, or the _bucket, _sum or _count series of a
// histogram (_sum and _count of a summary too). A counter that happens to
// end in _count is found under its own name first.
func metricExposed(name string, mfs map[string]*dto.MetricFamily) bool {
	if mf, ok := mfs[name]; ok && len(mf.GetMetric()) > 0 {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		mf, ok := mfs[base]
		if !ok || len(mf.GetMetric()) == 0 {
			return false
		}
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			return true
		case dto.MetricType_SUMMARY:
			return suffix != "_bucket"
		}
		return false
	}
	return false
}

// dashboardMetrics returns every metric name the dashboard's PromQL
// expressions select, sorted and without duplicates.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var d struct {
		Panels []dashboardPanel `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &d))
	set := map[string]bool{}
	var walk func([]dashboardPanel)
	exprs := 0
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				if tg.Expr == "" {
					continue
				}
				exprs++
				names := promqlMetricNames(tg.Expr)
				require.NotEmpty(t, names, "panel %q: no metric in %s", p.Title, tg.Expr)
				for _, n := range names {
					set[n] = true
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	require.NotZero(t, exprs, "the dashboard has queries")
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

type dashboardPanel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"` // a collapsed row's panels
}

// promqlKeywords are identifiers of PromQL that name no metric.
var promqlKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "and": true, "or": true, "unless": true, "offset": true, "atan2": true, "inf": true, "nan": true,
	// aggregations, which may come before their "(": sum by (le) (...)
	"sum": true, "min": true, "max": true, "avg": true, "count": true, "stddev": true, "stdvar": true, "group": true,
	"topk": true, "bottomk": true, "quantile": true, "count_values": true, "limitk": true, "limit_ratio": true,
}

// groupings are the keywords followed by a list of label names.
var groupings = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// promqlMetricNames returns the metric names an expression selects: the
// identifiers outside label matchers ({...}), range and subquery brackets
// ([...]), strings and grouping lists (by (...), on (...), ...), that are
// not a function or aggregation (followed by "(") nor a keyword. Grafana's
// variables ($__rate_interval, $instance) only occur inside those.
func promqlMetricNames(expr string) []string {
	var out []string
	isStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isPart := func(c byte) bool { return isStart(c) || c >= '0' && c <= '9' }
	skipSpace := func(i int) int {
		for i < len(expr) && (expr[i] == ' ' || expr[i] == '\t' || expr[i] == '\n') {
			i++
		}
		return i
	}
	// skipTo returns the index after the closing byte, honouring strings.
	skipTo := func(i int, closing byte) int {
		for i < len(expr) && expr[i] != closing {
			if expr[i] == '"' || expr[i] == '\'' || expr[i] == '`' {
				q := expr[i]
				for i++; i < len(expr) && expr[i] != q; i++ {
					if expr[i] == '\\' {
						i++
					}
				}
			}
			i++
		}
		return i + 1
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '{':
			i = skipTo(i+1, '}')
		case c == '[':
			i = skipTo(i+1, ']')
		case c == '"' || c == '\'' || c == '`':
			i = skipTo(i+1, c)
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isPart(expr[i]) || expr[i] == '.') { // 0.99, 1e3, 5m
				i++
			}
		case c == '$':
			for i++; i < len(expr) && isPart(expr[i]); i++ {
			}
		case isStart(c):
			j := i
			for j < len(expr) && isPart(expr[j]) {
				j++
			}
			word := expr[i:j]
			next := skipSpace(j)
			switch {
			case promqlKeywords[strings.ToLower(word)]:
				if w := strings.ToLower(word); groupings[w] && next < len(expr) && expr[next] == '(' {
					j = skipTo(next+1, ')') // a grouping list of label names
				}
			case next < len(expr) && expr[next] == '(':
				// a function or an aggregation
			default:
				out = append(out, word)
			}
			i = j
		default:
			i++
		}
	}
	return out
}

func TestPromQLMetricNamesSkipLabelsFunctionsAndGroupings(t *testing.T) {
	for expr, want := range map[string][]string{
		`histogram_quantile(0.99, sum by (le, action) (rate(write_latency_seconds_bucket{instance=~"$instance"}[$__rate_interval])))`: {"write_latency_seconds_bucket"},
		`sum by (tier) (rate(resolve_tier_hit_total[5m])) / ignoring (tier) group_left sum(rate(resolve_requests_total{a="b}"}[1m]))`: {"resolve_tier_hit_total", "resolve_requests_total"},
		`max by (breaker) (resilience_breaker_state) > bool 1 or on (x) up offset 5m`:                                                 {"resilience_breaker_state", "up"},
		`temporal_request`: {"temporal_request"},
	} {
		require.Equal(t, want, promqlMetricNames(expr), expr)
	}
	mfs := map[string]*dto.MetricFamily{
		"h":       {Type: dto.MetricType_HISTOGRAM.Enum(), Metric: []*dto.Metric{{}}},
		"s":       {Type: dto.MetricType_SUMMARY.Enum(), Metric: []*dto.Metric{{}}},
		"c_count": {Type: dto.MetricType_COUNTER.Enum(), Metric: []*dto.Metric{{}}},
		"c":       {Type: dto.MetricType_COUNTER.Enum(), Metric: []*dto.Metric{{}}},
	}
	for name, want := range map[string]bool{
		"h_bucket": true, "h_sum": true, "h_count": true, "h": true, "s_sum": true, "s_bucket": false,
		"c_count": true, "c_bucket": false, "c_sum": false, "x_bucket": false, "x": false,
	} {
		require.Equal(t, want, metricExposed(name, mfs), name)
	}
}
