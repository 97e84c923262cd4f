package main

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/api"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/routes"
)

// `splits get` prints the weights and revision; `splits set` checks its
// --weights before calling the api.
func TestSplitsGetPrintsTheSplitAndSetChecksItsWeights(t *testing.T) {
	bin := buildBinary(t)
	pool := testenv.Postgres(t)
	tc, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1", Logger: quietTemporalLogger{}})
	require.NoError(t, err)
	defer tc.Close()
	reg := observability.NewRegistry()
	store := routes.NewStore(pool)
	ts := httptest.NewServer(api.New(api.Options{
		Temporal: tc, TaskQueue: testenv.Name(t, "tq"), Routes: store,
		Metrics: observability.NewWriteMetrics(reg), Registry: reg, Log: zaptest.NewLogger(t),
	}).Handler())
	defer ts.Close()
	sk := routes.SplitKey{Tenant: testenv.Name(t, "team"), Service: "payments", Env: "prod"}
	for _, v := range []string{"v1", "v2"} {
		_, err := store.Apply(context.Background(), routes.Mutation{Action: routes.ActionCreated, Key: sk.Route(v), URL: "https://" + v + ".example", Active: true})
		require.NoError(t, err)
	}
	_, err = store.ApplySplit(context.Background(), routes.SplitMutation{Action: routes.ActionSplitUpdated, Key: sk, Weights: routes.Weights{"v1": 90, "v2": 10}})
	require.NoError(t, err)
	key := []string{"--api-url", ts.URL, "--tenant", sk.Tenant, "--service", "payments", "--env", "prod"}

	res := runCLI(t, bin, nil, append([]string{"splits", "get"}, key...)...)
	require.Equal(t, 0, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	require.Contains(t, res.stdout, "v1=90,v2=10")

	res = runCLI(t, bin, nil, append([]string{"splits", "set", "--weights", "v1=ninety"}, key...)...)
	require.NotEqual(t, 0, res.code)
	require.Contains(t, res.stderr, "--weights")

	res = runCLI(t, bin, nil, append([]string{"splits", "set", "--weights", "v1=90,v2=5"}, key...)...)
	require.NotEqual(t, 0, res.code)
	require.Contains(t, res.stderr, "100")

	other := []string{"--api-url", ts.URL, "--tenant", sk.Tenant, "--service", "payments", "--env", "stage"}
	res = runCLI(t, bin, nil, append([]string{"splits", "get"}, other...)...)
	require.NotEqual(t, 0, res.code)
	require.Contains(t, res.stderr, "split")
}
