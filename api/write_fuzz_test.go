package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/api"
	"github.com/trafficmanager/trafficmanager/observability"
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
	h := api.New(api.Options{
		Temporal: tc, TaskQueue: "fuzz", Routes: noRoutes{}, AckTimeout: 5 * time.Millisecond,
		Metrics: observability.NewWriteMetrics(reg), Registry: reg, Log: zap.NewNop(),
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
