package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/consistency"
	"github.com/trafficmanager/trafficmanager/internal/devstack"
	"github.com/trafficmanager/trafficmanager/routes"
)

// Helpers of the chaos tests (chaos_*_test.go). Nothing here calls
// t.Fatal from a goroutine other than the test's: writers and fault
// injectors report errors, the test goroutine decides.

// chaosWorker is one `trafficmanager worker` process the test may SIGKILL.
// Its stderr goes to a file (a killed worker logs errors by design); the
// tail is printed when the test fails.
type chaosWorker struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// chaosWorkers starts worker processes with one environment.
type chaosWorkers struct {
	t   *testing.T
	bin string
	env []string
	dir string

	mu  sync.Mutex
	all []*chaosWorker
}

func newChaosWorkers(t *testing.T, env []string) *chaosWorkers {
	t.Helper()
	w := &chaosWorkers{t: t, bin: binary(t), env: env, dir: t.TempDir()}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, p := range w.all {
			p.kill()
		}
		if t.Failed() {
			for i, p := range w.all {
				b, _ := os.ReadFile(p.log)
				if len(bytes.TrimSpace(b)) == 0 {
					b = []byte("(nothing logged)")
				}
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				if len(lines) > 15 {
					lines = lines[len(lines)-15:]
				}
				t.Logf("worker %d log tail:\n%s", i, strings.Join(lines, "\n"))
			}
		}
	})
	return w
}

// start starts a worker and waits until its health endpoint answers.
func (w *chaosWorkers) start() (*chaosWorker, error) {
	port, err := devstack.FreePort()
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	logPath := filepath.Join(w.dir, fmt.Sprintf("worker-%d.log", len(w.all)))
	w.mu.Unlock()
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(w.bin, "worker")
	cmd.Env = append(append(os.Environ(), w.env...), "TM_WORKER_ADDR="+addr)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &chaosWorker{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); close(p.done) }()
	w.mu.Lock()
	w.all = append(w.all, p)
	w.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("worker exited at start (log %s)", logPath)
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("worker not healthy within 30s (log %s)", logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *chaosWorker) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// chaosAnswer is an HTTP answer read without failing the test.
type chaosAnswer struct {
	status int
	body   map[string]any
	raw    string
}

var chaosHTTP = &http.Client{Timeout: 30 * time.Second}

// chaosDo sends a request; headers are name, value pairs.
func chaosDo(method, url string, body any, headers ...string) (chaosAnswer, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return chaosAnswer{}, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return chaosAnswer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := chaosHTTP.Do(req)
	if err != nil {
		return chaosAnswer{}, err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	a := chaosAnswer{status: res.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a, nil
}

// outcome is what a mutation reported: the fields a re-run must repeat.
type outcome struct {
	EventID  string
	Changed  bool
	Revision int64
	URL      string
	Active   bool
}

// outcomeOf reads a mutation response or a mutation status.
func outcomeOf(body map[string]any) outcome {
	o := outcome{}
	o.EventID, _ = body["event_id"].(string)
	o.Changed, _ = body["changed"].(bool)
	if r, ok := body["route"].(map[string]any); ok {
		rev, _ := r["revision"].(float64)
		o.Revision = int64(rev)
		o.URL, _ = r["url"].(string)
		o.Active, _ = r["is_active"].(bool)
	}
	return o
}

// awaitMutations polls GET /api/v1/mutations/{id} until every id is
// completed or timeout passes; it returns the last status of each and the
// ids that did not complete.
func awaitMutations(apiURL string, ids []string, timeout time.Duration) (map[string]map[string]any, []string) {
	last := map[string]map[string]any{}
	pending := append([]string(nil), ids...)
	deadline := time.Now().Add(timeout)
	for len(pending) > 0 {
		var still []string
		for _, id := range pending {
			a, err := chaosDo("GET", apiURL+"/api/v1/mutations/"+id, nil)
			if err == nil && a.status == http.StatusOK {
				last[id] = a.body
				if a.body["status"] == "completed" {
					continue
				}
			}
			still = append(still, id)
		}
		pending = still
		if len(pending) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return last, pending
}

// resetFirstTask is resetToFirstWorkflowTask without failing the test
// (callable from any goroutine): `temporal workflow reset --type
// FirstWorkflowTask` on the latest run. It returns the new run's id.
func resetFirstTask(ctx context.Context, tc client.Client, wfID string) (string, error) {
	desc, err := tc.DescribeWorkflowExecution(ctx, wfID, "")
	if err != nil {
		return "", err
	}
	runID := desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	var first int64
	it := tc.GetWorkflowHistory(ctx, wfID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() && first == 0 {
		ev, err := it.Next()
		if err != nil {
			return "", err
		}
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
			first = ev.GetEventId()
		}
	}
	if first == 0 {
		return "", errors.New(wfID + " has no completed workflow task")
	}
	res, err := tc.ResetWorkflowExecution(ctx, &workflowservice.ResetWorkflowExecutionRequest{
		Namespace:                 "default",
		WorkflowExecution:         &commonpb.WorkflowExecution{WorkflowId: wfID, RunId: runID},
		Reason:                    "chaos test: reset to the first workflow task",
		WorkflowTaskFinishEventId: first,
		RequestId:                 uuid.NewString(),
	})
	if err != nil {
		return "", err
	}
	return res.GetRunId(), nil
}

// auditRevisionsIn is auditRevisions on any audit collection.
func auditRevisionsIn(t *testing.T, coll *mongo.Collection, k routes.Key) []int64 {
	t.Helper()
	cur, err := coll.Find(context.Background(), bson.D{
		{Key: "route.tenant", Value: k.Tenant}, {Key: "route.service", Value: k.Service},
		{Key: "route.env", Value: k.Env}, {Key: "route.version", Value: k.Version},
	})
	require.NoError(t, err)
	var docs []audit.Document
	require.NoError(t, cur.All(context.Background(), &docs))
	revs := make([]int64, len(docs))
	for i, d := range docs {
		revs[i] = d.Metadata.Revision
	}
	sort.Slice(revs, func(i, j int) bool { return revs[i] < revs[j] })
	return revs
}

// requireConsistent runs the oracle on tenant and fails on any discrepancy.
// It also checks that the oracle saw what the test wrote (routes and the
// sum of their revisions), so an empty read cannot pass for a clean one.
func requireConsistent(t *testing.T, pool *pgxpool.Pool, coll *mongo.Collection, tenant string, routes int, revisions int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := consistency.Check(ctx, pool, coll, tenant)
	require.NoError(t, err)
	for _, d := range rep.Discrepancies {
		t.Errorf("oracle: %s", d)
	}
	require.True(t, rep.Consistent(), "the oracle found %d discrepancies", len(rep.Discrepancies))
	require.Equal(t, routes, rep.Routes, "routes the oracle checked")
	require.Equal(t, revisions, rep.Revisions, "revisions the oracle checked")
	require.EqualValues(t, revisions, rep.AuditDocs, "audit documents the oracle read")
}

// runCheckCLI runs `trafficmanager check --tenant T` and returns its exit
// code and output.
func runCheckCLI(t *testing.T, dsn, mongoURI, mongoDB, tenant string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), "check", "--tenant", tenant)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TM_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "TM_DATABASE_URL="+dsn, "TM_MONGO_URI="+mongoURI, "TM_MONGO_DATABASE="+mongoDB)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), string(out)
	}
	require.NoError(t, err, string(out))
	return 0, string(out)
}

// createCompleted creates a route, accepting 201 or (on a slow machine) 202,
// waits for its mutation to complete and returns its workflow id.
func createCompleted(t *testing.T, p *platform, k routes.Key, url string, active bool) string {
	t.Helper()
	res := p.do(t, "POST", "/api/v1/routes", map[string]any{
		"tenant": k.Tenant, "service": k.Service, "env": k.Env, "version": k.Version, "url": url, "active": active,
	})
	require.Contains(t, []int{http.StatusCreated, http.StatusAccepted}, res.Status, res.Raw)
	wfID := res.Body["workflow_id"].(string)
	awaitCompleted(t, p, wfID, "")
	return wfID
}
