package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/internal/devstack"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

// reportingResolver runs `trafficmanager resolver` as a process with the id
// id, reporting under prefix to p's Redis and consuming brokers (p's unless
// the test cuts it off with a Kafka of its own). It returns once the
// resolver is ready (subscribed, reporting).
func reportingResolver(t *testing.T, p *platform, prefix, id string, brokers []string) *process {
	t.Helper()
	port, err := devstack.FreePort()
	require.NoError(t, err)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	env := processEnv(t, p, testenv.MongoURI(t), testenv.Temporal(t).Address)
	env = append(env, "TM_RESOLVER_ADDR="+addr, "TM_RESOLVER_ID="+id, "TM_PROPAGATION_PREFIX="+prefix,
		"TM_KAFKA_BROKERS="+strings.Join(brokers, ","))
	proc := startProcess(t, env, "resolver")
	waitHTTP(t, "http://"+addr+"/readyz")
	return proc
}

// liveResolvers returns the ids GET /api/v1/resolvers lists.
func liveResolvers(t *testing.T, p *platform) []string {
	t.Helper()
	res := p.do(t, "GET", "/api/v1/resolvers", nil)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	var ids []string
	list, _ := res.Body["resolvers"].([]any)
	for _, r := range list {
		ids = append(ids, r.(map[string]any)["id"].(string))
	}
	return ids
}

// propagationOf returns a response's "propagation" object.
func propagationOf(t *testing.T, res response) map[string]any {
	t.Helper()
	prop, ok := res.Body["propagation"].(map[string]any)
	require.True(t, ok, "no propagation in %s", res.Raw)
	return prop
}

// With one and then three resolver processes reporting, a write with
// ?wait=propagated answers once every live resolver has applied it
// (complete, applied = resolvers), and the mutation status says the same.
// A SIGKILLed resolver leaves GET /api/v1/resolvers within the liveness
// window and no longer holds writes back.
func TestPropagationCompletesOnEveryLiveResolverAndAKilledOneDropsOut(t *testing.T) {
	t.Parallel()
	prefix := testenv.Name(t, "prop") + ":"
	p := startPlatformWith(t, platformOptions{ackTimeout: 10 * time.Second, propagationPrefix: prefix})
	k := routes.Key{Tenant: testenv.Name(t, "prop"), Service: "payments", Env: "prod", Version: "v1"}

	reportingResolver(t, p, prefix, "r1", p.brokers)
	eventually(t, 10*time.Second, func() bool { return len(liveResolvers(t, p)) == 1 }, "r1 is listed")
	res := p.do(t, "POST", "/api/v1/routes?wait=propagated", map[string]any{
		"tenant": k.Tenant, "service": k.Service, "env": k.Env, "version": k.Version, "url": "https://prop.example/1",
	})
	require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	prop := propagationOf(t, res)
	require.Equal(t, true, prop["complete"], res.Raw)
	require.EqualValues(t, 1, prop["resolvers"], res.Raw)
	require.EqualValues(t, 1, prop["applied"], res.Raw)

	r2 := reportingResolver(t, p, prefix, "r2", p.brokers)
	reportingResolver(t, p, prefix, "r3", p.brokers)
	eventually(t, 10*time.Second, func() bool { return len(liveResolvers(t, p)) == 3 }, "three resolvers listed")
	res = p.do(t, "PUT", routePath(k)+"?wait=propagated", map[string]any{"url": "https://prop.example/2"})
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	prop = propagationOf(t, res)
	require.Equal(t, true, prop["complete"], res.Raw)
	require.EqualValues(t, 3, prop["resolvers"], res.Raw)
	require.EqualValues(t, 3, prop["applied"], res.Raw)

	st := p.do(t, "GET", "/api/v1/mutations/"+res.Body["workflow_id"].(string), nil)
	require.Equal(t, http.StatusOK, st.Status, st.Raw)
	prop = propagationOf(t, st)
	require.Equal(t, true, prop["complete"], st.Raw)
	require.EqualValues(t, 3, prop["applied"], st.Raw)

	require.NoError(t, r2.cmd.Process.Signal(syscall.SIGKILL))
	killed := time.Now()
	eventually(t, 15*time.Second, func() bool {
		ids := liveResolvers(t, p)
		return len(ids) == 2 && !strings.Contains(strings.Join(ids, ","), "r2")
	}, "the killed resolver leaves the live set")
	t.Logf("a SIGKILLed resolver left GET /api/v1/resolvers after %s", time.Since(killed).Round(100*time.Millisecond))
	res = p.do(t, "POST", routePath(k)+"/deactivate?wait=propagated", nil)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	prop = propagationOf(t, res)
	require.Equal(t, true, prop["complete"], res.Raw)
	require.EqualValues(t, 2, prop["resolvers"], res.Raw)
	requireConsistentTenant(t, p, k.Tenant)
}

// A resolver that is live but cut off from Kafka (it consumes a broker
// that never receives the route events) never applies the change: a write
// with ?wait=propagated answers 202 once the ack timeout is spent, with the
// propagation so far naming that resolver as pending; the committed change
// itself is not undone, and the status shows the same.
func TestAResolverCutOffFromKafkaShowsAsPendingAndWaitPropagatedAnswers202(t *testing.T) {
	t.Parallel()
	prefix := testenv.Name(t, "cut") + ":"
	p := startPlatformWith(t, platformOptions{ackTimeout: 3 * time.Second, propagationPrefix: prefix})
	k := routes.Key{Tenant: testenv.Name(t, "cut"), Service: "payments", Env: "prod", Version: "v1"}
	reportingResolver(t, p, prefix, "connected", p.brokers)
	reportingResolver(t, p, prefix, "cut-off", testenv.Kafka(t, topic, 3))
	eventually(t, 10*time.Second, func() bool { return len(liveResolvers(t, p)) == 2 }, "both resolvers listed")

	began := time.Now()
	res := p.do(t, "POST", "/api/v1/routes?wait=propagated", map[string]any{
		"tenant": k.Tenant, "service": k.Service, "env": k.Env, "version": k.Version, "url": "https://cut.example/1",
	})
	require.Equal(t, http.StatusAccepted, res.Status, res.Raw)
	t.Logf("?wait=propagated with a cut-off resolver answered 202 after %s (ack timeout 3 s)", time.Since(began).Round(10*time.Millisecond))
	prop := propagationOf(t, res)
	require.Equal(t, false, prop["complete"], res.Raw)
	require.EqualValues(t, 2, prop["resolvers"], res.Raw)
	require.EqualValues(t, 1, prop["applied"], res.Raw)
	require.Equal(t, []any{"cut-off"}, prop["pending"], res.Raw)
	require.EqualValues(t, 1, res.Body["route"].(map[string]any)["revision"], "the change committed: %s", res.Raw)

	st := p.do(t, "GET", "/api/v1/mutations/"+res.Body["workflow_id"].(string), nil)
	require.Equal(t, http.StatusOK, st.Status, st.Raw)
	prop = propagationOf(t, st)
	require.Equal(t, false, prop["complete"], st.Raw)
	require.Equal(t, []any{"cut-off"}, prop["pending"], st.Raw)
	requireConsistentTenant(t, p, k.Tenant)
}
