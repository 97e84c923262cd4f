package e2e

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/internal/devstack"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/workflows"
)

// killOnCommit SIGKILLs w as soon as eventID is in the ledger: the commit
// has happened, the workflow task that ran it has not completed, its side
// effects may not have run. It returns when w is dead (false: the commit
// did not show within 20 s).
func killOnCommit(p *platform, w *chaosWorker, eventID string) <-chan bool {
	killed := make(chan bool, 1)
	go func() {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			var n int
			err := p.pool.QueryRow(context.Background(), `SELECT count(*) FROM route_ledger WHERE event_id = $1`, eventID).Scan(&n)
			if err == nil && n > 0 {
				w.kill()
				killed <- true
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		killed <- false
	}()
	return killed
}

// workflowTaskTimedOut reports whether a workflow task of wfID's latest run
// timed out (its worker died while running it).
func workflowTaskTimedOut(t *testing.T, p *platform, wfID string) bool {
	t.Helper()
	it := p.tc.GetWorkflowHistory(context.Background(), wfID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT {
			return true
		}
	}
	return false
}

// A worker process SIGKILLed right after a commit, while another write to
// the same route commits through a second worker (itself killed as soon as
// the API answered): once a worker runs again every mutation completes, the
// route has the newest state and each revision has exactly one ledger row,
// one audit document and events with one event id.
func TestAWorkerKilledAfterACommitWhileANewerWriteCommitsLosesNothing(t *testing.T) {
	t.Parallel()
	p := startPlatformWith(t, platformOptions{ackTimeout: 5 * time.Second, noWorker: true})
	// The workers' Redis is the test's own, so it can hang: a hung Redis
	// holds the workflow task that commits open for the invalidation's
	// time-boxed first attempt (1 s), the window the kill lands in.
	rport, err := devstack.FreePort()
	require.NoError(t, err)
	rd, err := devstack.StartRedis(context.Background(), t.TempDir(), rport, io.Discard)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rd.Resume(); _ = rd.Stop() })
	mongoURI := testenv.MongoURI(t)
	workers := newChaosWorkers(t, append(processEnv(t, p, mongoURI, testenv.Temporal(t).Address), "TM_REDIS_URL="+rd.URL))
	a, err := workers.start()
	require.NoError(t, err)
	k := routes.Key{Tenant: testenv.Name(t, "kill-commit"), Service: "payments", Env: "prod", Version: "v1"}
	wfCreate := createCompleted(t, p, k, "https://a.example", true)

	// Write 1: worker A dies the moment its commit is in the ledger, inside
	// the workflow task that ran it (its side effects not recorded).
	wf1 := "route/" + k.Tenant + "/payments/prod/v1/updated/k1"
	require.NoError(t, rd.Pause())
	killed := killOnCommit(p, a, workflows.EventIDFor(wf1))
	start := time.Now()
	u1 := p.do(t, "PUT", routePath(k), map[string]any{"url": "https://u1.example"}, "Idempotency-Key", "k1")
	require.True(t, <-killed, "the commit of write 1 reached the ledger")
	require.NoError(t, rd.Resume())
	t.Logf("write 1 answered %d after %s (worker A killed on its commit)", u1.Status, time.Since(start).Round(time.Millisecond))
	require.Equal(t, http.StatusOK, u1.Status, "a committed write is answered, never 202: %s", u1.Raw)
	require.Equal(t, wf1, u1.Body["workflow_id"])
	require.EqualValues(t, 2, outcomeOf(u1.Body).Revision)

	// Write 2 through worker B, which dies as soon as the API answered.
	b, err := workers.start()
	require.NoError(t, err)
	u2 := p.do(t, "PUT", routePath(k), map[string]any{"url": "https://u2.example"}, "Idempotency-Key", "k2")
	b.kill()
	require.Equal(t, http.StatusOK, u2.Status, u2.Raw)
	require.EqualValues(t, 3, outcomeOf(u2.Body).Revision, "write 2 commits after write 1, whose worker is dead")
	wf2 := u2.Body["workflow_id"].(string)
	st := p.do(t, "GET", "/api/v1/mutations/"+wf1, nil)
	t.Logf("write 1 while no worker runs: %s steps %v", st.Body["status"], st.Body["steps"])

	// Worker C finishes both.
	_, err = workers.start()
	require.NoError(t, err)
	statuses, pending := awaitMutations(p.api.URL, []string{wfCreate, wf1, wf2}, 90*time.Second)
	require.Empty(t, pending, "mutations not completed: %v", statuses)
	t.Logf("all completed %s after the first kill", time.Since(start).Round(time.Millisecond))
	allDone := map[string]any{"committed": "done", "invalidated": "done", "published": "done", "audited": "done"}
	for _, id := range []string{wfCreate, wf1, wf2} {
		require.Equal(t, allDone, statuses[id]["steps"], id)
	}
	require.Equal(t, outcomeOf(u1.Body), outcomeOf(statuses[wf1]), "write 1's re-run reports its commit")
	require.True(t, workflowTaskTimedOut(t, p, wf1), "the kill landed inside write 1's first workflow task")
	require.Equal(t, outcomeOf(u2.Body), outcomeOf(statuses[wf2]))

	got := p.do(t, "GET", routePath(k), nil)
	require.Equal(t, "https://u2.example", got.Body["url"], "the newest write stands")
	require.EqualValues(t, 3, got.Body["revision"])
	require.Equal(t, []int64{1, 2, 3}, auditRevisions(t, p, k))
	eventIDs := map[int64]string{1: outcomeOf(statuses[wfCreate]).EventID, 2: outcomeOf(u1.Body).EventID, 3: outcomeOf(u2.Body).EventID}
	seen := map[int64]bool{}
	for _, e := range p.eventsFor(t, k) {
		require.Equal(t, eventIDs[e.Revision], e.EventID, "event of revision %d", e.Revision)
		seen[e.Revision] = true
	}
	require.Equal(t, map[int64]bool{1: true, 2: true, 3: true}, seen, "every revision published")
	requireConsistent(t, p.pool, p.mongo.Collection(audit.CollectionName), k.Tenant, 1, 3)
	code, out := runCheckCLI(t, testenvDSN(p), mongoURI, p.mongo.Name(), k.Tenant)
	require.Equal(t, 0, code, out)
}
