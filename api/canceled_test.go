package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/trafficmanager/trafficmanager/api"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/worker"
)

func TestAClientThatHangsUpDuringAWriteIsCanceledNotAnInternalError(t *testing.T) {
	// The commit waits: the workflow starts on a real Temporal, but no
	// worker polls its task queue, so the commit update never answers.
	tc := dialTemporal(t)
	core, logs := observer.New(zapcore.DebugLevel)
	reg := prometheus.NewRegistry()
	h := api.New(api.Options{
		Temporal: tc, TaskQueue: testenv.Name(t, "no-worker"), Routes: noRoutes{}, AckTimeout: 30 * time.Second,
		Metrics: observability.NewWriteMetrics(reg), Registry: reg, Log: zap.New(core),
	}).Handler()

	ctx, hangUp := context.WithCancel(context.Background())
	req := httptest.NewRequest(http.MethodPost, "/api/v1/routes", strings.NewReader(
		`{"tenant":"team-a","service":"payments","env":"prod","version":"v2","url":"https://p.example"}`)).WithContext(ctx)
	req.Header.Set("Content-Type", "application/json")
	time.AfterFunc(time.Second, hangUp)
	rec := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(rec, req)

	require.Less(t, time.Since(start), 10*time.Second, "the handler returns when the client leaves")
	require.Equal(t, api.StatusClientClosedRequest, rec.Code, "no 500, no 503: nginx's 499")
	require.Empty(t, rec.Body.String(), "nobody is there to read an error body")
	require.Equal(t, map[string]float64{"canceled": 1}, failuresByCode(t, reg), "write_failure_total by code")
	require.Empty(t, logs.FilterLevelExact(zapcore.ErrorLevel).All(), "a client leaving is not an error of ours")
	require.Equal(t, 1, logs.FilterMessage("client closed the request").FilterLevelExact(zapcore.InfoLevel).Len())
}

// failuresByCode reads write_failure_total from reg, by code.
func failuresByCode(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "write_failure_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// dialTemporal returns a client of the tests' Temporal server, with the
// namespace's search attributes registered as the worker registers them
// (TmStatus included, which every mutation workflow starts with).
func dialTemporal(t *testing.T) client.Client {
	t.Helper()
	tc, err := client.DialContext(context.Background(), client.Options{HostPort: testenv.Temporal(t).Address, Logger: nopTemporalLogger{}})
	require.NoError(t, err)
	t.Cleanup(tc.Close)
	require.NoError(t, worker.EnsureSearchAttributes(context.Background(), tc, "default"))
	return tc
}
