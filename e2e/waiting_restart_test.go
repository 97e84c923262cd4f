package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

// waitingSet is one mutation of each waiting kind on routes of their own:
// an update scheduled a few seconds ahead, an update whose revert is due a
// few seconds after it applied, and an update awaiting approval.
type waitingSet struct {
	scheduled, reverting, approval       routes.Key
	scheduledID, revertingID, approvalID string
}

// startWaiting creates the routes, sets the approval policy and starts the
// three mutations, each due in `due`.
func startWaiting(t *testing.T, ap *approvalPlatform, due time.Duration) *waitingSet {
	t.Helper()
	w := &waitingSet{
		scheduled: routes.Key{Tenant: ap.tenant, Service: "payments", Env: "staging", Version: "v1"},
		reverting: routes.Key{Tenant: ap.tenant, Service: "payments", Env: "staging", Version: "v2"},
		approval:  routes.Key{Tenant: ap.tenant, Service: "payments", Env: "prod", Version: "v1"},
	}
	for _, k := range []routes.Key{w.scheduled, w.reverting, w.approval} {
		ap.createRoute(t, k, "https://a.example")
	}
	ap.requireApproval(t, "prod")
	put := func(k routes.Key, body map[string]any, want int) string {
		body["url"] = "https://b.example"
		res := ap.do(t, "PUT", routePath(k), body, ap.writer...)
		require.Equal(t, want, res.Status, res.Raw)
		return res.Body["workflow_id"].(string)
	}
	w.scheduledID = put(w.scheduled, map[string]any{"not_before": fromNow(due)}, http.StatusAccepted)
	w.revertingID = put(w.reverting, map[string]any{"revert_after": due.String()}, http.StatusOK)
	w.approvalID = put(w.approval, map[string]any{}, http.StatusAccepted)
	ap.awaitStatus(t, w.scheduledID, "scheduled")
	ap.awaitStatus(t, w.approvalID, "awaiting_approval")
	eventually(t, 10*time.Second, func() bool {
		return revertOf(ap.do(t, "GET", "/api/v1/mutations/"+w.revertingID, nil, ap.admin...))["state"] == "pending"
	}, "the revert is pending")
	return w
}

// approveAndVerify approves the waiting one and checks that each of the
// three applied exactly once: the scheduled update and the approved one
// stand, the time-boxed one was reverted.
func (w *waitingSet) approveAndVerify(t *testing.T, ap *approvalPlatform) {
	t.Helper()
	var ok response
	eventually(t, 60*time.Second, func() bool {
		ok = ap.do(t, "POST", "/api/v1/mutations/"+w.approvalID+"/approve", nil, ap.approver...)
		return ok.Status != http.StatusServiceUnavailable && ok.Status != http.StatusInternalServerError
	}, "the approval is answered once Temporal and a worker serve again")
	// 200 also when an earlier attempt's answer was lost across the restart
	// but the approval applied: the approver's retry is answered as it was.
	require.Equal(t, http.StatusOK, ok.Status, ok.Raw)
	for _, id := range []string{w.scheduledID, w.approvalID, w.revertingID} {
		st := awaitMutationStatus(t, ap.platform, id, "completed", ap.admin...)
		require.Equal(t, "done", st.Body["steps"].(map[string]any)["committed"], st.Raw)
	}
	st := ap.do(t, "GET", "/api/v1/mutations/"+w.revertingID, nil, ap.admin...)
	require.Equal(t, "done", revertOf(st)["state"], st.Raw)
	for k, want := range map[routes.Key]struct {
		url      string
		revision int
	}{w.scheduled: {"https://b.example", 2}, w.approval: {"https://b.example", 2}, w.reverting: {"https://a.example", 3}} {
		got := ap.do(t, "GET", routePath(k), nil, ap.admin...)
		require.Equal(t, want.url, got.Body["url"], "%v: %s", k, got.Raw)
		require.EqualValues(t, want.revision, got.Body["revision"], "%v: %s", k, got.Raw)
		require.Len(t, ap.eventsFor(t, k), want.revision, "%v: one event per revision", k)
	}
	requireConsistentTenant(t, ap.platform, ap.tenant)
}

// Waiting mutations are only timers and updates in their workflows: with
// no worker running while their times pass (the only worker SIGKILLed),
// a new worker applies each of them once.
func TestWaitingMutationsSurviveAWorkerKill(t *testing.T) {
	t.Parallel()
	ap := startApprovalPlatformWith(t, platformOptions{ackTimeout: 10 * time.Second, noWorker: true})
	workers := newChaosWorkers(t, processEnv(t, ap.platform, testenv.MongoURI(t), testenv.Temporal(t).Address))
	a, err := workers.start()
	require.NoError(t, err)
	w := startWaiting(t, ap, 4*time.Second)
	a.kill()
	time.Sleep(5 * time.Second) // every timer is due while no worker runs
	got := ap.do(t, "GET", routePath(w.reverting), nil, ap.admin...)
	require.Equal(t, "https://b.example", got.Body["url"], "no revert without a worker: %s", got.Raw)
	_, err = workers.start()
	require.NoError(t, err)
	w.approveAndVerify(t, ap)
}

// The same with the Temporal server SIGKILLed and started again on its
// databases while the three wait (the production server: runs with
// TM_TEST_TEMPORAL=cluster).
func TestWaitingMutationsSurviveATemporalServerRestart(t *testing.T) {
	if testenv.TemporalTopology() != testenv.TopologyCluster {
		t.Skip("restarts the production Temporal server: runs with TM_TEST_TEMPORAL=cluster")
	}
	t.Parallel()
	tmp := testenv.NewTemporalCluster(t)
	ap := startApprovalPlatformWith(t, platformOptions{ackTimeout: 10 * time.Second, temporal: tmp.Address})
	w := startWaiting(t, ap, 4*time.Second)
	require.NoError(t, tmp.Kill())
	time.Sleep(5 * time.Second) // every timer is due while the server is down
	require.NoError(t, tmp.Start(t.Context()))
	w.approveAndVerify(t, ap)
}
