package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/api"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/policies"
	"github.com/trafficmanager/trafficmanager/routes"
)

// writePaths are the write and route-read endpoints the fuzzer drives.
var writePaths = []struct{ method, path string }{
	{"POST", "/api/v1/routes"},
	{"PUT", "/api/v1/routes/team-a/payments/prod/v2"},
	{"POST", "/api/v1/routes/team-a/payments/prod/v2/activate"},
	{"POST", "/api/v1/routes/team-a/payments/prod/v2/deactivate"},
	{"POST", "/api/v1/routes/team-a/payments/prod/v2/rollback"},
	{"POST", "/api/v1/tokens"},
	{"POST", "/api/v1/routes/batch"},
	{"PUT", "/api/v1/tenants/team-a/policy"},
	{"POST", "/api/v1/mutations/route/team-a/payments/prod/v2/updated/k1/approve"},
	{"POST", "/api/v1/mutations/batch/team-a/created/k1/reject"},
	{"POST", "/api/v1/mutations/route/team-a/payments/prod/v2/activated/k1/cancel"},
}

// FuzzWriteRequests sends arbitrary bodies, content types and If-Match
// headers to every write endpoint. Invariant: no panic; every error is 4xx in API.md's shape,
// except 503 for a well-formed mutation (the fuzz setup has no Temporal
// server, a fake at the far edge: a lazy client on a closed port).
func FuzzWriteRequests(f *testing.F) {
	for _, body := range []string{
		`{"tenant":"team-a","service":"payments","env":"prod","version":"v2","url":"https://p.example"}`,
		`{"url":"https://p.example","changed_by":"alice"}`, `{}`, ``, `null`, `[]`, `{"tenant":1}`,
		`{"tenant":"team-a","colour":"red"}`, `{"url":"https://x"} trailing`, `{"url":"` + string(make([]byte, 10)) + `"}`,
		`{"name":"ci","role":"writer","tenants":["team-a"]}`, `{"active":"yes"}`, "\xff\xfe",
		`{"routes":[{"tenant":"team-a","service":"payments","env":"prod","version":"v2","url":"https://p.example"}]}`,
		`{"routes":[{"tenant":"team-a","service":"p","env":"prod","version":"v1","url":"https://p.example"},{"tenant":"team-b","service":"p","env":"prod","version":"v1","url":"https://p.example"}]}`,
		`{"routes":null}`, `{"routes":[{}]}`, `{"routes":[1,2]}`, `{"routes":[],"changed_by":"x"}`,
		`{"revision":3}`, `{"revision":0}`, `{"revision":-1}`, `{"revision":"3"}`, `{"revision":1e30}`,
		`{"revision":9223372036854775807,"changed_by":"oncall"}`, `{"revision":2,"url":"https://x"}`,
		// not_before, revert_after
		`{"url":"https://p.example","revert_after":"1h"}`, `{"revert_after":"0s"}`, `{"revert_after":"721h"}`,
		`{"revert_after":"1d"}`, `{"revert_after":"99999999999999999999h"}`, `{"revert_after":5}`, `{"revert_after":null}`,
		`{"revision":1,"revert_after":"1s","not_before":"2026-12-01T09:00:00Z"}`, `{"not_before":"2999-01-01T00:00:00Z"}`,
		`{"not_before":"2020-01-01T00:00:00Z","revert_after":"90m"}`, `{"not_before":"yesterday"}`, `{"not_before":""}`,
		`{"tenant":"team-a","service":"payments","env":"prod","version":"v2","url":"https://p.example","revert_after":"1h"}`,
		`{"routes":[{"tenant":"team-a","service":"p","env":"prod","version":"v1","url":"https://p.example"}],"revert_after":"1h"}`,
		`{"routes":[{"tenant":"team-a","service":"p","env":"prod","version":"v1","url":"https://p.example"}],"not_before":"2020-01-01T00:00:00+01:00"}`,
		// decisions
		`{"comment":"ok"}`, `{"comment":""}`, `{"comment":"` + strings.Repeat("x", 1025) + `"}`, `{"comment":"a\u0000b"}`,
		`{"comment":1}`, `{"comment":"ok","by":"me"}`,
		// policies
		`{"require_approval":{"envs":["prod"]},"approval_timeout":"72h"}`, `{"require_approval":{"envs":[]}}`,
		`{"require_approval":{"envs":["Prod"]}}`, `{"require_approval":{"envs":"prod"}}`, `{"require_approval":null}`,
		`{"approval_timeout":"59s"}`, `{"approval_timeout":"721h"}`, `{"approval_timeout":"-1m"}`, `{"approval_timeout":"9223372036854775807ns"}`,
		`{"require_approval":{"envs":["prod"],"extra":1}}`, `{"require_approval":{"envs":[null]}}`,
	} {
		for i := range writePaths {
			f.Add(uint8(i), body, "application/json", "")
		}
	}
	f.Add(uint8(0), `{"tenant":"a"}`, "text/plain", "")
	f.Add(uint8(1), `{"url":"https://a.example"}`, "application/json; charset=utf-8", `"1"`)
	f.Add(uint8(2), ``, "", "")
	for _, ifMatch := range []string{`"3"`, `3`, `W/"3"`, `*`, `"0"`, `-1`, `""`, `"`, `"99999999999999999999"`, " 7 ", "\x00"} {
		f.Add(uint8(1), `{"url":"https://a.example"}`, "application/json", ifMatch)
		f.Add(uint8(4), `{"revision":1}`, "application/json", ifMatch)
	}

	tc, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1", Logger: nopTemporalLogger{}})
	if err != nil {
		f.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	pols := newMemPolicies()
	if _, err := pols.Put(context.Background(), policies.Policy{Tenant: "team-a", RequireApprovalEnvs: []string{"prod"}}); err != nil {
		f.Fatal(err)
	}
	h := api.New(api.Options{
		Temporal: downTemporal{tc}, TaskQueue: "fuzz", Routes: noRoutes{}, AckTimeout: 5 * time.Millisecond,
		Metrics: observability.NewWriteMetrics(reg), Registry: reg, Log: zap.NewNop(), Policies: pols,
	}).Handler()

	f.Fuzz(func(t *testing.T, which uint8, body, contentType, ifMatch string) {
		ep := writePaths[int(which)%len(writePaths)]
		req := httptest.NewRequest(ep.method, ep.path, bytes.NewBufferString(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if ifMatch != "" {
			req.Header["If-Match"] = []string{ifMatch} // unvalidated, as a raw client could send it
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code < 400 {
			return
		}
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Fatalf("%s %s %q: %d with body %q not in the error shape", ep.method, ep.path, body, rec.Code, rec.Body.String())
		}
		if rec.Code >= 500 && !(rec.Code == http.StatusServiceUnavailable && e.Error.Code == "unavailable") {
			t.Fatalf("%s %s %q answered %d: %s", ep.method, ep.path, body, rec.Code, rec.Body.String())
		}
	})
}

// FuzzMutationQueries sends arbitrary query strings to GET
// /api/v1/mutations: every bad parameter is a 400 in API.md's shape, and
// a valid query reaches (the unreachable) Temporal: 503, never a 500.
func FuzzMutationQueries(f *testing.F) {
	for _, q := range []string{
		"", "status=awaiting_approval", "status=running&tenant=team-a&limit=200", "status=pending", "limit=0", "limit=-1",
		"limit=201", "limit=1e3", "cursor=AAAA", "cursor=%%%", "cursor=" + strings.Repeat("A", 10000), "tenant=Team_A",
		"tenant=a'b", "tenant=a%27%20OR%20%271%27=%271", "status=failed&status=running", "status=rejected&cursor=_-_-",
	} {
		f.Add(q)
	}
	tc, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1", Logger: nopTemporalLogger{}})
	if err != nil {
		f.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h := api.New(api.Options{
		Temporal: downTemporal{tc}, TaskQueue: "fuzz", Routes: noRoutes{}, AckTimeout: 5 * time.Millisecond,
		Metrics: observability.NewWriteMetrics(reg), Registry: reg, Log: zap.NewNop(),
	}).Handler()
	f.Fuzz(func(t *testing.T, query string) {
		req := httptest.NewRequest("GET", "/api/v1/mutations", nil)
		req.URL.RawQuery = query
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if rec.Code < 400 {
			t.Fatalf("%q answered %d without a Temporal to list from: %s", query, rec.Code, rec.Body.String())
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" {
			t.Fatalf("%q: %d with body %q not in the error shape", query, rec.Code, rec.Body.String())
		}
		if rec.Code >= 500 && !(rec.Code == http.StatusServiceUnavailable && e.Error.Code == "unavailable") {
			t.Fatalf("%q answered %d: %s", query, rec.Code, rec.Body.String())
		}
	})
}

// downTemporal is a Temporal that is down and says so at once: a lazy
// client on a closed port retries its calls until their deadline (seconds
// for status, decisions and lists), which would slow fuzzing to a crawl.
type downTemporal struct{ client.Client }

var errTemporalDown = serviceerror.NewUnavailable("temporal is down (test)")

func (downTemporal) DescribeWorkflowExecution(context.Context, string, string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	return nil, errTemporalDown
}

func (downTemporal) ListWorkflow(context.Context, *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	return nil, errTemporalDown
}

func (downTemporal) UpdateWorkflow(context.Context, client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	return nil, errTemporalDown
}

func (downTemporal) QueryWorkflow(context.Context, string, string, string, ...any) (converter.EncodedValue, error) {
	return nil, errTemporalDown
}

type noRoutes struct{}

func (noRoutes) Get(_ context.Context, _ routes.Key) (routes.Route, error) {
	return routes.Route{}, routes.ErrNotFound
}

func (noRoutes) List(_ context.Context, _ routes.Filter) (routes.Page, error) {
	return routes.Page{Routes: []routes.Route{}}, nil
}

func (noRoutes) History(_ context.Context, _ routes.Key, _ int, _ string) (routes.HistoryPage, error) {
	return routes.HistoryPage{}, routes.ErrNotFound
}

type nopTemporalLogger struct{}

func (nopTemporalLogger) Debug(string, ...any) {}
func (nopTemporalLogger) Info(string, ...any)  {}
func (nopTemporalLogger) Warn(string, ...any)  {}
func (nopTemporalLogger) Error(string, ...any) {}
