package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/activities"
	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/internal/devstack"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/mutations"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/worker"
)

// retryPlatform is a platform whose worker the test replaces: the API and
// the servers stay, workers come and go on the same task queue.
type retryPlatform struct {
	*platform
	temporalAddr string
	audit        *audit.Store
}

func startRetryPlatform(t *testing.T) *retryPlatform {
	t.Helper()
	p := startPlatformWith(t, platformOptions{ackTimeout: 10 * time.Second, noWorker: true})
	return &retryPlatform{platform: p, temporalAddr: testenv.Temporal(t).Address, audit: audit.NewStore(p.mongo)}
}

// startWorker starts a worker on the platform's queue whose events go to
// brokers; the caller stops it (it is also stopped at the end of the test).
func (p *retryPlatform) startWorker(t *testing.T, brokers []string) sdkworker.Worker {
	t.Helper()
	return p.startWorkerWith(t, brokers, p.audit)
}

// startWorkerWith is startWorker with the audit store of the caller's
// choice.
func (p *retryPlatform) startWorkerWith(t *testing.T, brokers []string, auditLog activities.AuditWriter) stopWorker {
	t.Helper()
	pub := events.NewPublisher(brokers, topic)
	t.Cleanup(func() { pub.Close() })
	acts := &activities.Activities{
		Routes: routes.NewStore(p.pool), Cache: cache.NewRedis(p.rdb, time.Minute),
		Events: pub, AuditLog: auditLog, Log: zaptest.NewLogger(t),
	}
	w := worker.New(p.tc, p.queue, acts, worker.Options{StopTimeout: 5 * time.Second})
	require.NoError(t, w.Start())
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			w.Stop()
		}
	})
	return stopWorker{w, &stopped}
}

// stopWorker makes Stop idempotent (the SDK worker's Stop must run once).
type stopWorker struct {
	sdkworker.Worker
	stopped *bool
}

func (w stopWorker) Stop() {
	if !*w.stopped {
		*w.stopped = true
		w.Worker.Stop()
	}
}

// mutationStatus reads GET /api/v1/mutations/{id}.
func (p *retryPlatform) mutation(t *testing.T, wfID string) (status, runID, eventID string, steps map[string]any) {
	t.Helper()
	res := p.do(t, "GET", "/api/v1/mutations/"+wfID, nil)
	if res.Status != http.StatusOK {
		return "", "", "", nil
	}
	steps, _ = res.Body["steps"].(map[string]any)
	status, _ = res.Body["status"].(string)
	runID, _ = res.Body["run_id"].(string)
	eventID, _ = res.Body["event_id"].(string)
	return status, runID, eventID, steps
}

// failedRuns lists the failed mutations of tenant since the given time,
// polling (visibility is eventually consistent) until cond holds.
func failedRuns(t *testing.T, tc client.Client, since time.Time, tenant string, timeout time.Duration, cond func([]mutations.Failed) bool) []mutations.Failed {
	t.Helper()
	var list []mutations.Failed
	eventually(t, timeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		list, err = mutations.ListFailed(ctx, tc, "default", since, tenant)
		require.NoError(t, err)
		return cond(list)
	}, "mutations.ListFailed")
	return list
}

// retryCLI builds the trafficmanager binary into the test's directory.
func retryCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "trafficmanager")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/trafficmanager").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// cliFailed runs `trafficmanager mutations failed --output json`.
func cliFailed(t *testing.T, bin, temporalAddr, tenant string) []mutations.Failed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "mutations", "failed", "--temporal-address", temporalAddr,
		"--tenant", tenant, "--since", "1h", "--output", "json")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TM_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "mutations failed: %s", stderr.String())
	var list []mutations.Failed
	require.NoError(t, json.Unmarshal(out, &list), string(out))
	return list
}

// TestARetriedMutationCompletesWithItsOriginalEventID forces a mutation not to
// complete (its worker cannot reach Kafka, then the workflow is terminated),
// finds it with `mutations failed`, runs it again with `mutations retry` on a
// healthy worker and checks that the new run completes every step with the
// event id of the original 201: one event on the topic, one audit document.
func TestARetriedMutationCompletesWithItsOriginalEventID(t *testing.T) {
	t.Parallel()
	p := startRetryPlatform(t)
	ctx := context.Background()
	bin := retryCLI(t)
	k := routes.Key{Tenant: testenv.Name(t, "team"), Service: "payments", Env: "prod", Version: "v2"}
	const target = "https://payments.example/v2"
	since := time.Now().Add(-time.Minute)

	// Worker A publishes to an address where nothing listens: the commit
	// succeeds, the publish keeps failing and retrying.
	deadPort, err := devstack.FreePort()
	require.NoError(t, err)
	workerA := p.startWorker(t, []string{"127.0.0.1:" + strconv.Itoa(deadPort)})

	res := p.do(t, "POST", "/api/v1/routes", map[string]any{
		"tenant": k.Tenant, "service": k.Service, "env": k.Env, "version": k.Version, "url": target, "changed_by": "alice",
	})
	require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	eventID := res.Body["event_id"].(string)
	wfID := res.Body["workflow_id"].(string)
	firstRun := res.Body["run_id"].(string)
	require.NotEmpty(t, eventID)
	require.NotEmpty(t, firstRun)

	// The other side effects went through; the publish did not.
	eventually(t, 10*time.Second, func() bool { return p.auditDocs(t, eventID) == 1 }, "audit document of the first run")
	time.Sleep(time.Second) // a few failed publish attempts
	require.Empty(t, p.eventsFor(t, k), "no event while Kafka is unreachable")
	desc, err := p.tc.DescribeWorkflowExecution(ctx, wfID, firstRun)
	require.NoError(t, err)
	require.Equal(t, "Running", desc.GetWorkflowExecutionInfo().GetStatus().String())

	// An operator gives up on it; the broken worker goes away.
	require.NoError(t, p.tc.TerminateWorkflow(ctx, wfID, firstRun, "test: publish cannot reach Kafka"))
	workerA.Stop()

	// `mutations failed` finds it, through the package and through the CLI.
	list := failedRuns(t, p.tc, since, k.Tenant, 15*time.Second, func(l []mutations.Failed) bool { return len(l) > 0 })
	require.Len(t, list, 1)
	require.Equal(t, wfID, list[0].WorkflowID)
	require.Equal(t, firstRun, list[0].RunID)
	require.Equal(t, "terminated", list[0].Status)
	require.Equal(t, k.Tenant, list[0].Tenant)
	require.Equal(t, "created", list[0].Action)
	require.False(t, list[0].CloseTime.IsZero())
	cli := cliFailed(t, bin, p.temporalAddr, k.Tenant)
	require.Len(t, cli, 1, "CLI: %+v", cli)
	require.Equal(t, wfID, cli[0].WorkflowID)
	require.Equal(t, "terminated", cli[0].Status)

	// Worker B can reach Kafka; the retry runs the same input again.
	p.startWorker(t, p.brokers)
	newRun, err := mutations.Retry(ctx, p.tc, "default", wfID, "test retry")
	require.NoError(t, err)
	require.NotEmpty(t, newRun)
	require.NotEqual(t, firstRun, newRun)

	eventually(t, 30*time.Second, func() bool {
		status, runID, _, _ := p.mutation(t, wfID)
		return status == "completed" && runID == newRun
	}, "the retried run completes")
	status, runID, gotEventID, steps := p.mutation(t, wfID)
	require.Equal(t, "completed", status)
	require.Equal(t, newRun, runID)
	require.Equal(t, eventID, gotEventID, "the retried run keeps the original event id")
	require.Equal(t, map[string]any{"committed": "done", "invalidated": "done", "published": "done", "audited": "done"}, steps)

	// Exactly one event, with the original id; exactly one audit document.
	evs := p.eventsFor(t, k)
	require.Len(t, evs, 1)
	require.Equal(t, eventID, evs[0].EventID)
	require.Equal(t, target, evs[0].URL)
	require.EqualValues(t, 1, evs[0].Revision)
	require.EqualValues(t, 1, p.auditDocs(t, eventID))
	got := p.do(t, "GET", "/api/v1/routes/"+k.Tenant+"/payments/prod/v2", nil)
	require.Equal(t, http.StatusOK, got.Status, got.Raw)
	require.EqualValues(t, 1, got.Body["revision"], "the re-run did not change the route again")

	// A completed mutation is not retried.
	_, err = mutations.Retry(ctx, p.tc, "default", wfID, "")
	require.True(t, errors.Is(err, mutations.ErrNotRetryable), "Retry of a completed mutation: %v", err)

	// Once retried successfully it is no longer listed as failed (visibility
	// still holds the terminated run; its workflow's latest run completed).
	list, err = mutations.ListFailed(ctx, p.tc, "default", since, k.Tenant)
	require.NoError(t, err)
	require.Empty(t, list, "a retried, completed mutation is still listed as failed")
	require.Empty(t, cliFailed(t, bin, p.temporalAddr, k.Tenant))
}
