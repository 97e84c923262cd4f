package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/internal/devstack"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary builds cmd/trafficmanager once per test run.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tm-e2e-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "trafficmanager")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/trafficmanager").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	require.NoError(t, binErr)
	return binPath
}

// process runs the binary with env and waits for its listener.
type process struct {
	cmd  *exec.Cmd
	done chan error
}

func startProcess(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "error") || strings.Contains(sc.Text(), "ERROR") {
				t.Log(args[0], "|", sc.Text())
			}
		}
	}()
	p := &process{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return p
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	eventually(t, 30*time.Second, func() bool {
		res, err := http.Get(url)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	}, "listening: "+url)
}

// processEnv is the TM_* environment pointing a process at the test's servers.
func processEnv(t *testing.T, p *platform, mongoURI, temporal string) []string {
	return []string{
		"TM_DATABASE_URL=" + testenvDSN(p), "TM_REDIS_URL=" + testenv.RedisURL(t),
		"TM_KAFKA_BROKERS=" + strings.Join(p.brokers, ","), "TM_MONGO_URI=" + mongoURI,
		"TM_MONGO_DATABASE=" + p.mongo.Name(), "TM_TEMPORAL_ADDRESS=" + temporal,
		"TM_TEMPORAL_TASK_QUEUE=" + p.queue, "TM_LOG_LEVEL=warn", "TM_AUTH=off",
	}
}

func testenvDSN(p *platform) string { return p.pool.Config().ConnString() }

func TestAKilledWorkerIsReplacedAndItsMutationsFinish(t *testing.T) {
	t.Parallel()
	kport, err := devstack.FreePort()
	require.NoError(t, err)
	kf, err := devstack.StartKafka(kport, topic, 3)
	require.NoError(t, err)
	t.Cleanup(func() { _ = kf.Stop() })
	// The in-process platform has no worker of its own on this queue: the
	// worker is a separate process we can SIGKILL.
	p := startPlatformWith(t, platformOptions{ackTimeout: 10 * time.Second, brokers: kf.Brokers, noWorker: true})
	env := processEnv(t, p, testenv.MongoURI(t), testenv.Temporal(t).Address)
	waddr, err := devstack.FreePort()
	require.NoError(t, err)
	workerA := startProcess(t, append(env, fmt.Sprintf("TM_WORKER_ADDR=127.0.0.1:%d", waddr)), "worker")
	waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", waddr))

	// Side effects cannot finish while Kafka refuses writes: the commit is
	// acknowledged, the publish keeps retrying on worker A.
	kf.RefuseProduce(true)
	tenant := testenv.Name(t, "kill")
	var ids []string
	for i := 0; i < 3; i++ {
		res := p.do(t, "POST", "/api/v1/routes", map[string]any{"tenant": tenant, "service": "s", "env": "prod", "version": fmt.Sprintf("v%d", i), "url": "https://a.example"})
		require.Equal(t, http.StatusCreated, res.Status, res.Raw)
		ids = append(ids, res.Body["workflow_id"].(string)+"|"+res.Body["event_id"].(string))
	}
	require.NoError(t, workerA.cmd.Process.Signal(syscall.SIGKILL))
	<-workerA.done
	kf.RefuseProduce(false)

	wb, err := devstack.FreePort()
	require.NoError(t, err)
	startProcess(t, append(env, fmt.Sprintf("TM_WORKER_ADDR=127.0.0.1:%d", wb)), "worker")
	for _, id := range ids {
		wf, eventID, _ := strings.Cut(id, "|")
		eventually(t, 60*time.Second, func() bool {
			return p.do(t, "GET", "/api/v1/mutations/"+wf, nil).Body["status"] == "completed"
		}, "worker B finishes "+wf)
		require.EqualValues(t, 1, p.auditDocs(t, eventID))
	}
	all := p.allEvents(t)
	for _, id := range ids {
		_, eventID, _ := strings.Cut(id, "|")
		n := 0
		for _, e := range all {
			if e.EventID == eventID {
				n++
			}
		}
		require.GreaterOrEqual(t, n, 1, "event %s delivered", eventID)
	}
}

func TestSIGTERMDrainsTwoHundredInFlightWrites(t *testing.T) {
	t.Parallel()
	p := startPlatformWith(t, platformOptions{ackTimeout: 10 * time.Second})
	aport, err := devstack.FreePort()
	require.NoError(t, err)
	addr := fmt.Sprintf("127.0.0.1:%d", aport)
	env := append(processEnv(t, p, testenv.MongoURI(t), testenv.Temporal(t).Address),
		"TM_API_ADDR="+addr, "TM_SHUTDOWN_TIMEOUT=60s", "TM_TENANT_WRITE_RPS=10000", "TM_TENANT_WRITE_BURST=10000")
	apiProc := startProcess(t, env, "api", "--insecure-no-auth")
	waitHTTP(t, "http://"+addr+"/healthz")

	tenant := testenv.Name(t, "drain")
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: 256}, Timeout: 90 * time.Second}
	const n = 200
	codes := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			body := fmt.Sprintf(`{"tenant":%q,"service":"s","env":"prod","version":"v%d","url":"https://a.example"}`, tenant, i)
			res, err := client.Post("http://"+addr+"/api/v1/routes", "application/json", strings.NewReader(body))
			if err != nil {
				codes[i] = -1
				return
			}
			res.Body.Close()
			codes[i] = res.StatusCode
		}()
	}
	close(start)
	time.Sleep(300 * time.Millisecond) // the requests are on the wire (some still in the listen backlog)
	sigAt := time.Now()
	require.NoError(t, apiProc.cmd.Process.Signal(syscall.SIGTERM))
	wg.Wait()
	select {
	case err := <-apiProc.done:
		require.NoError(t, err, "api exits cleanly")
	case <-time.After(60 * time.Second):
		t.Fatal("api did not exit within its shutdown timeout")
	}
	exited := time.Since(sigAt)
	failed := 0
	for _, c := range codes {
		if c != http.StatusCreated && c != http.StatusAccepted {
			failed++
		}
	}
	t.Logf("drain: %d requests in flight at SIGTERM, %d failed, exited %s after the signal", n, failed, exited.Round(time.Millisecond))
	require.Zero(t, failed, "codes: %v", codes)
}
