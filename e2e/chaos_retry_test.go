package e2e

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/consistency"
	"github.com/trafficmanager/trafficmanager/internal/devstack"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/mutations"
	"github.com/trafficmanager/trafficmanager/routes"
)

// startBrokenWorker starts an in-process worker on p's queue that commits
// to Postgres but reaches neither Kafka nor MongoDB (nothing listens where
// it sends them): its mutations commit and then retry their publish and
// audit forever.
func startBrokenWorker(t *testing.T, p *retryPlatform) stopWorker {
	t.Helper()
	kport, err := devstack.FreePort()
	require.NoError(t, err)
	mport, err := devstack.FreePort()
	require.NoError(t, err)
	mc, err := mongo.Connect(options.Client().ApplyURI("mongodb://127.0.0.1:" + strconv.Itoa(mport) + "/").
		SetServerSelectionTimeout(300 * time.Millisecond).SetTimeout(time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { _ = mc.Disconnect(context.Background()) })
	return p.startWorkerWith(t, []string{"127.0.0.1:" + strconv.Itoa(kport)}, audit.NewStore(mc.Database("nowhere")))
}

func routePath(k routes.Key) string {
	return "/api/v1/routes/" + k.Tenant + "/" + k.Service + "/" + k.Env + "/" + k.Version
}

// `mutations retry` of a mutation that committed, could not finish its side
// effects and was terminated, after a newer change of the same route: the
// retried run reports the original commit, adds the missing audit document
// of that revision and leaves the newer state and revision alone.
func TestARetriedTerminatedMutationKeepsTheNewerChange(t *testing.T) {
	t.Parallel()
	p := startRetryPlatform(t)
	ctx := context.Background()
	k := routes.Key{Tenant: testenv.Name(t, "retry-newer"), Service: "payments", Env: "prod", Version: "v1"}
	coll := p.mongo.Collection(audit.CollectionName)

	healthy := p.startWorker(t, p.brokers)
	createCompleted(t, p.platform, k, "https://a.example", true)
	healthy.Stop()

	// Worker A commits revision 2; its publish and audit keep failing.
	broken := startBrokenWorker(t, p)
	b := p.do(t, "PUT", routePath(k), map[string]any{"url": "https://b.example"}, "Idempotency-Key", "upd-b")
	require.Equal(t, http.StatusOK, b.Status, b.Raw)
	wfB, runB := b.Body["workflow_id"].(string), b.Body["run_id"].(string)
	require.EqualValues(t, 2, outcomeOf(b.Body).Revision)
	eventually(t, 15*time.Second, func() bool {
		steps, _ := p.do(t, "GET", "/api/v1/mutations/"+wfB, nil).Body["steps"].(map[string]any)
		return steps["published"] == "retrying" && steps["audited"] == "retrying"
	}, "publish and audit of revision 2 retrying")
	require.NoError(t, p.tc.TerminateWorkflow(ctx, wfB, runB, "test: Kafka and MongoDB unreachable"))
	broken.Stop()

	// The oracle sees the gap: revision 2 has no audit document.
	rep, err := consistency.Check(ctx, p.pool, coll, k.Tenant)
	require.NoError(t, err)
	require.Len(t, rep.Discrepancies, 1, "%v", rep.Discrepancies)
	require.Equal(t, consistency.KindMissingAudit, rep.Discrepancies[0].Kind)
	require.EqualValues(t, 2, rep.Discrepancies[0].Revision)

	// A newer change commits on a healthy worker.
	p.startWorker(t, p.brokers)
	c := p.do(t, "PUT", routePath(k), map[string]any{"url": "https://c.example"}, "Idempotency-Key", "upd-c")
	require.Equal(t, http.StatusOK, c.Status, c.Raw)
	require.EqualValues(t, 3, outcomeOf(c.Body).Revision)
	awaitCompleted(t, p.platform, c.Body["workflow_id"].(string), "")

	newRun, err := mutations.Retry(ctx, p.tc, "default", wfB, "test retry")
	require.NoError(t, err)
	require.NotEqual(t, runB, newRun)
	st := awaitCompleted(t, p.platform, wfB, newRun)
	require.Equal(t, outcomeOf(b.Body), outcomeOf(st.Body), "the retried run reports the original commit")
	require.Equal(t, map[string]any{"committed": "done", "invalidated": "done", "published": "done", "audited": "done"}, st.Body["steps"])

	got := p.do(t, "GET", routePath(k), nil)
	require.Equal(t, http.StatusOK, got.Status, got.Raw)
	require.Equal(t, "https://c.example", got.Body["url"], "the newer change stands")
	require.EqualValues(t, 3, got.Body["revision"], "the retry made no revision")
	require.Equal(t, []int64{1, 2, 3}, auditRevisions(t, p.platform, k))
	eventIDs := map[int64]string{2: outcomeOf(b.Body).EventID, 3: outcomeOf(c.Body).EventID}
	for _, e := range p.eventsFor(t, k) {
		require.LessOrEqual(t, e.Revision, int64(3), "an event of a revision that does not exist: %+v", e)
		if id, ok := eventIDs[e.Revision]; ok {
			require.Equal(t, id, e.EventID, "revision %d published with another event id", e.Revision)
		}
	}
	requireConsistent(t, p.pool, coll, k.Tenant, 1, 3)

	// The same request again is the same mutation: its original answer.
	again := p.do(t, "PUT", routePath(k), map[string]any{"url": "https://b.example"}, "Idempotency-Key", "upd-b")
	require.Equal(t, http.StatusOK, again.Status, again.Raw)
	require.Equal(t, outcomeOf(b.Body), outcomeOf(again.Body))
	require.EqualValues(t, 3, p.do(t, "GET", routePath(k), nil).Body["revision"])
}

// `mutations retry` of a mutation terminated before its first workflow task
// completed (no worker was running): the retry starts it again with the
// same input, it commits once, and the same Idempotency-Key then answers
// that commit (not 409).
func TestARetriedMutationThatNeverRanCommitsOnce(t *testing.T) {
	t.Parallel()
	base := startPlatformWith(t, platformOptions{ackTimeout: 2 * time.Second, noWorker: true})
	p := &retryPlatform{platform: base, temporalAddr: testenv.Temporal(t).Address, audit: audit.NewStore(base.mongo)}
	ctx := context.Background()
	k := routes.Key{Tenant: testenv.Name(t, "retry-never-ran"), Service: "payments", Env: "prod", Version: "v1"}

	healthy := p.startWorker(t, p.brokers)
	createCompleted(t, p.platform, k, "https://a.example", true)
	healthy.Stop()

	// No worker: the write is accepted and nothing runs.
	res := p.do(t, "PUT", routePath(k), map[string]any{"url": "https://b.example"}, "Idempotency-Key", "early")
	require.Equal(t, http.StatusAccepted, res.Status, res.Raw)
	wfID, firstRun := res.Body["workflow_id"].(string), res.Body["run_id"].(string)
	require.NoError(t, p.tc.TerminateWorkflow(ctx, wfID, firstRun, "test: never ran"))
	got := p.do(t, "GET", routePath(k), nil)
	require.Equal(t, "https://a.example", got.Body["url"])
	require.EqualValues(t, 1, got.Body["revision"])

	p.startWorker(t, p.brokers)
	newRun, err := mutations.Retry(ctx, p.tc, "default", wfID, "test retry")
	require.NoError(t, err, "a run without a completed workflow task is started again")
	require.NotEqual(t, firstRun, newRun)
	st := awaitCompleted(t, p.platform, wfID, newRun)
	done := outcomeOf(st.Body)
	require.Equal(t, outcome{EventID: done.EventID, Changed: true, Revision: 2, URL: "https://b.example", Active: true}, done)
	require.NotEmpty(t, done.EventID)
	require.Equal(t, map[string]any{"committed": "done", "invalidated": "done", "published": "done", "audited": "done"}, st.Body["steps"])

	again := p.do(t, "PUT", routePath(k), map[string]any{"url": "https://b.example"}, "Idempotency-Key", "early")
	require.Equal(t, http.StatusOK, again.Status, "the key answers its commit: %s", again.Raw)
	require.Equal(t, done, outcomeOf(again.Body))
	require.Equal(t, wfID, again.Body["workflow_id"])

	got = p.do(t, "GET", routePath(k), nil)
	require.Equal(t, "https://b.example", got.Body["url"])
	require.EqualValues(t, 2, got.Body["revision"])
	require.Equal(t, []int64{1, 2}, auditRevisions(t, p.platform, k))
	requireConsistent(t, p.pool, p.mongo.Collection(audit.CollectionName), k.Tenant, 1, 2)
}
