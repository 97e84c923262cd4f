package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/api"
	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/routes"
)

// History is part of the source of truth: it answers from Postgres while
// MongoDB (the audit trail) does not answer at all.
func TestHistoryAnswersWhileMongoDBIsDown(t *testing.T) {
	store := routes.NewStore(testenv.Postgres(t))
	ctx := context.Background()
	k := routes.Key{Tenant: testenv.Name(t, "team"), Service: "payments", Env: "prod", Version: "v1"}
	for _, m := range []routes.Mutation{
		{Action: routes.ActionCreated, URL: "https://a.example", Active: true},
		{Action: routes.ActionUpdated, URL: "https://b.example"},
	} {
		m.Key = k
		_, err := store.Apply(ctx, m)
		require.NoError(t, err)
	}
	// A MongoDB that is not there: nothing listens on port 1.
	mc, err := mongo.Connect(options.Client().ApplyURI("mongodb://127.0.0.1:1").SetServerSelectionTimeout(200 * time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(func() { _ = mc.Disconnect(context.Background()) })
	tc, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1", Logger: nopTemporalLogger{}})
	require.NoError(t, err)
	t.Cleanup(tc.Close)
	reg := prometheus.NewRegistry()
	h := api.New(api.Options{
		Temporal: tc, TaskQueue: "history", Routes: store, Audit: audit.NewStore(mc.Database("down")),
		Metrics: observability.NewWriteMetrics(reg), Registry: reg, Log: zaptest.NewLogger(t),
	}).Handler()
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec
	}
	base := "/api/v1/routes/" + k.Tenant + "/payments/prod/v1"

	down := get("/api/v1/audit/route?tenant=" + k.Tenant + "&service=payments&env=prod&version=v1")
	require.Equal(t, http.StatusServiceUnavailable, down.Code, "the audit trail is down: %s", down.Body)

	rec := get(base + "/history?limit=1")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var page routes.HistoryPage
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &page))
	require.Len(t, page.Revisions, 1)
	require.EqualValues(t, 2, page.Revisions[0].Revision)
	require.Equal(t, "https://b.example", page.Revisions[0].URL)
	require.NotEmpty(t, page.NextCursor)

	rec = get(base + "/history?limit=1&cursor=" + page.NextCursor)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	page = routes.HistoryPage{}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &page))
	require.Len(t, page.Revisions, 1)
	require.Equal(t, routes.ActionCreated, page.Revisions[0].Action)
	require.Empty(t, page.NextCursor)

	for path, want := range map[string]int{
		base + "/history?limit=0":                                  http.StatusBadRequest,
		base + "/history?cursor=nope!":                             http.StatusBadRequest,
		"/api/v1/routes/" + k.Tenant + "/payments/prod/v9/history": http.StatusNotFound,
	} {
		require.Equal(t, want, get(path).Code, path)
	}
	require.Equal(t, `"2"`, get(base).Header().Get("ETag"))
}
