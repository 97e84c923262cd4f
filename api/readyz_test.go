package api_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/api"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/observability"
)

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestReadyzIs503WhenPostgresDoesNotAnswer(t *testing.T) {
	log := zaptest.NewLogger(t)
	tc, err := client.DialContext(context.Background(), client.Options{
		HostPort: testenv.Temporal(t).Address, Logger: observability.NewTemporalLogger(log),
	})
	require.NoError(t, err)
	t.Cleanup(tc.Close)
	serve := func(db api.Pinger) http.Handler {
		reg := prometheus.NewRegistry()
		return api.New(api.Options{
			Temporal: tc, TaskQueue: "ready", Routes: noRoutes{}, DB: db,
			Metrics: observability.NewWriteMetrics(reg), Registry: reg, Log: log,
		}).Handler()
	}

	down, err := pgxpool.New(context.Background(), "postgres://postgres@"+closedPort(t)+"/postgres?sslmode=disable&connect_timeout=1")
	require.NoError(t, err)
	t.Cleanup(down.Close)
	start := time.Now()
	a := call(t, serve(down), "GET", "/readyz", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, a.Code, a.Raw)
	require.Equal(t, "unavailable", a.errorCode())
	require.Contains(t, a.errorMessage(), "postgres")
	require.Less(t, time.Since(start), 3*time.Second, "a probe gets its answer quickly")

	a = call(t, serve(testenv.Postgres(t)), "GET", "/readyz", "", nil)
	require.Equal(t, http.StatusOK, a.Code, "Temporal and Postgres answer: %s", a.Raw)
}
