package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/propagation"
	"github.com/trafficmanager/trafficmanager/routes"
)

// resolversFixture is a registry and two started reporters on the real
// Redis, under a key prefix of the test's own.
func resolversFixture(t *testing.T) (*propagation.Registry, []*propagation.Reporter) {
	t.Helper()
	rdb := testenv.Redis(t)
	prefix := "tmtest:" + testenv.Name(t, "api") + ":"
	reg, err := propagation.NewRegistry(propagation.RegistryOptions{Redis: rdb, Prefix: prefix, Poll: 5 * time.Millisecond})
	require.NoError(t, err)
	var reps []*propagation.Reporter
	for _, id := range []string{"resolver-a", "resolver-b"} {
		rep, err := propagation.NewReporter(propagation.ReporterOptions{Redis: rdb, ID: id, Address: id + ".internal:8081",
			Prefix: prefix, Heartbeat: 50 * time.Millisecond, Flush: 5 * time.Millisecond, TTL: time.Second, Log: zaptest.NewLogger(t)})
		require.NoError(t, err)
		rep.Start()
		t.Cleanup(func() { _ = rep.Close(context.Background()) })
		reps = append(reps, rep)
	}
	return reg, reps
}

func getResolvers(t *testing.T, v resolverView) (int, []byte) {
	t.Helper()
	r := gin.New()
	r.GET("/api/v1/resolvers", v.list)
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/resolvers", nil))
	return rec.Code, rec.Body.Bytes()
}

func TestGetResolversListsTheLiveInstancesAsDocumented(t *testing.T) {
	reg, reps := resolversFixture(t)
	reps[0].Applied("t:s:e:v", 3, time.Now().Add(-25*time.Millisecond))
	v := resolverView{r: reg, log: zaptest.NewLogger(t)}

	var body struct {
		Resolvers []map[string]any `json:"resolvers"`
	}
	require.Eventually(t, func() bool { // applied_events arrives with the next heartbeat
		code, raw := getResolvers(t, v)
		require.Equal(t, http.StatusOK, code, string(raw))
		require.NoError(t, json.Unmarshal(raw, &body))
		return len(body.Resolvers) == 2 && body.Resolvers[0]["applied_revisions"] == float64(1)
	}, 5*time.Second, 10*time.Millisecond)

	a := body.Resolvers[0]
	require.Equal(t, "resolver-a", a["id"])
	require.Equal(t, "resolver-a.internal:8081", a["address"])
	hb, err := time.Parse(time.RFC3339Nano, a["last_heartbeat"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), hb, 2*time.Second)
	require.GreaterOrEqual(t, a["lag_ms"], float64(25))
	require.Contains(t, a, "started_at")
	require.Equal(t, "resolver-b", body.Resolvers[1]["id"])
	require.Equal(t, float64(0), body.Resolvers[1]["applied_revisions"])
}

type brokenResolvers struct{ Resolvers }

func (brokenResolvers) Live(context.Context) ([]propagation.Resolver, error) {
	return nil, errors.New("redis: connection refused")
}

func (brokenResolvers) Of(context.Context, propagation.Change) (propagation.Propagation, error) {
	return propagation.Propagation{}, errors.New("redis: connection refused")
}

func TestGetResolversIs503WithoutReports(t *testing.T) {
	for name, v := range map[string]resolverView{
		"no registry configured": {log: zaptest.NewLogger(t)},
		"redis unreachable":      {r: brokenResolvers{}, log: zaptest.NewLogger(t)},
	} {
		code, raw := getResolvers(t, v)
		require.Equal(t, http.StatusServiceUnavailable, code, name)
		require.Contains(t, string(raw), `"code":"unavailable"`, name)
		require.NotContains(t, string(raw), "connection refused", name)
	}
}

func TestTheMutationPropagationCountsTheLiveResolversThatAppliedIt(t *testing.T) {
	reg, reps := resolversFixture(t)
	v := resolverView{r: reg, log: zaptest.NewLogger(t)}
	k := routes.Key{Tenant: "team-a", Service: "payments", Env: "prod", Version: "v1"}
	route := routes.Route{Tenant: k.Tenant, Service: k.Service, Env: k.Env, Version: k.Version, Revision: 4,
		UpdatedAt: time.Now().Add(-time.Hour)} // committed before both reporters started

	reps[0].Applied(k.String(), 4, route.UpdatedAt)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	p, complete := v.wait(ctx, route)
	require.True(t, complete, "both subscribed after the commit: %+v", p)

	// Without the commit time only what was reported counts.
	require.Eventually(t, func() bool {
		p := v.of(context.Background(), k, 4, time.Time{})
		return p != nil && p.Applied == 1
	}, 5*time.Second, 5*time.Millisecond)
	got := v.of(context.Background(), k, 4, time.Time{})
	raw, err := json.Marshal(got)
	require.NoError(t, err)
	require.JSONEq(t, `{"resolvers":2,"applied":1,"complete":false,"pending":["resolver-b"]}`, string(raw))

	route.UpdatedAt = time.Now().Add(time.Hour) // committed "after" they started: resolver-b must apply it
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	p, complete = v.wait(ctx, route)
	require.False(t, complete)
	require.Equal(t, []string{"resolver-b"}, p.Pending)

	reps[1].Applied(k.String(), 5, time.Now()) // a newer revision counts
	p, complete = v.wait(context.Background(), route)
	require.True(t, complete)
	require.Equal(t, propagation.Propagation{Resolvers: 2, Applied: 2, Complete: true, Pending: []string{}}, *p)

	require.Nil(t, resolverView{log: zaptest.NewLogger(t)}.of(context.Background(), k, 4, time.Time{}), "no registry: no propagation")
	require.Nil(t, resolverView{r: brokenResolvers{}, log: zaptest.NewLogger(t)}.of(context.Background(), k, 4, time.Time{}), "redis down: no propagation")
}

func TestAWriteWaitingForPropagationIs202UntilEveryResolverAppliedIt(t *testing.T) {
	reg, reps := resolversFixture(t)
	v := resolverView{r: reg, log: zaptest.NewLogger(t)}
	route := routes.Route{Tenant: "team-a", Service: "payments", Env: "prod", Version: "v1", Revision: 2,
		UpdatedAt: time.Now().Add(time.Hour)} // after both subscribed: each must apply it
	body := mutationResponse{Route: route, Action: routes.ActionUpdated, Changed: true, WorkflowID: "route/x"}
	reps[0].Applied(route.Key().String(), 2, time.Now())

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	status, out := v.propagated(ctx, http.StatusOK, body)
	require.Equal(t, http.StatusAccepted, status)
	raw, err := json.Marshal(out)
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(raw, &got))
	require.Equal(t, "route/x", got["workflow_id"], "the write's answer, with its propagation")
	require.Equal(t, map[string]any{"resolvers": float64(2), "applied": float64(1), "complete": false,
		"pending": []any{"resolver-b"}}, got["propagation"])

	reps[1].Applied(route.Key().String(), 2, time.Now())
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	status, out = v.propagated(ctx, http.StatusOK, body)
	require.Equal(t, http.StatusOK, status)
	require.True(t, out.(propagatedResponse).Propagation.Complete)

	// After the ack timeout (an answer from the ledger) it still looks once.
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	status, out = v.propagated(done, http.StatusCreated, body)
	require.Equal(t, http.StatusCreated, status)
	require.True(t, out.(propagatedResponse).Propagation.Complete)

	// Bodies other than a single write's answer, and an api without
	// registry, pass unchanged.
	status, out = v.propagated(context.Background(), http.StatusAccepted, pendingResponse{WorkflowID: "route/y"})
	require.Equal(t, http.StatusAccepted, status)
	require.IsType(t, pendingResponse{}, out)
	status, out = resolverView{log: zaptest.NewLogger(t)}.propagated(context.Background(), http.StatusOK, body)
	require.Equal(t, http.StatusOK, status)
	require.IsType(t, mutationResponse{}, out)

	require.Nil(t, v.ofStatus(context.Background(), route.Key()), "not committed yet")
	require.True(t, v.ofStatus(context.Background(), route).Complete)
}
