package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/api"
	"github.com/trafficmanager/trafficmanager/internal/devstack"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/routes"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// buildBinary builds cmd/trafficmanager into a temporary directory: the
// tests run the binary exactly as a user does.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "trafficmanager")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// cliResult is one run of the CLI binary.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs the binary with args and env (added to a TM_*-free
// environment) and returns its exit code and output.
func runCLI(t *testing.T, bin string, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		res.code = exitErr.ExitCode()
	default:
		t.Fatalf("run %s %v: %v", bin, args, err)
	}
	return res
}

// cleanEnv is this process's environment without TM_* and TEMPORAL_*
// variables, so the machine's settings cannot point a test elsewhere.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TM_") || strings.HasPrefix(kv, "TEMPORAL_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// devProcess is a running `trafficmanager dev`.
type devProcess struct {
	cmd     *exec.Cmd
	dataDir string
	stdout  syncBuffer // every line printed so far
	stderr  syncBuffer
	lines   chan string   // stdout lines, closed at EOF
	done    chan struct{} // closed once the process has exited and been reaped
	err     error         // Wait's result, valid after done
}

// devPorts are the fixed addresses of one dev stack, reused by a restart.
type devPorts struct {
	temporal                 int
	api, resolver, workerAdr string
}

func freeDevPorts(t *testing.T) devPorts {
	t.Helper()
	addr := func() string {
		p, err := devstack.FreePort()
		require.NoError(t, err)
		return "127.0.0.1:" + strconv.Itoa(p)
	}
	tp, err := devstack.FreePort()
	require.NoError(t, err)
	return devPorts{temporal: tp, api: addr(), resolver: addr(), workerAdr: addr()}
}

// readyLine matches the line `dev` prints once everything listens (a whole
// word, so "already in use" does not count).
var readyLine = regexp.MustCompile(`\bready\b`)

// startDev starts `bin dev` headless on the given ports with its data in
// dataDir (extra: more flags, which win over these) and waits (up to 3
// minutes) for the ready line.
func startDev(t *testing.T, bin, dataDir string, ports devPorts, extra ...string) *devProcess {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"dev", "--temporal-port", strconv.Itoa(ports.temporal), "--ui-port", "0"}, extra...)...)
	cmd.Env = append(cleanEnv(),
		"TM_DEV_DATA_DIR="+dataDir,
		"TM_API_ADDR="+ports.api,
		"TM_RESOLVER_ADDR="+ports.resolver,
		"TM_WORKER_ADDR="+ports.workerAdr,
	)
	// Should the test binary die, the dev process dies too (and its
	// dependencies with it, through their own parent-death signal).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	d := &devProcess{cmd: cmd, dataDir: dataDir, lines: make(chan string, 1024), done: make(chan struct{})}
	cmd.Stderr = &d.stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			d.stdout.Write([]byte(line + "\n"))
			select {
			case d.lines <- line:
			default: // nobody reads any more; the buffer keeps the output
			}
		}
		close(d.lines)
		d.err = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		// A failed test leaves no stack behind.
		select {
		case <-d.done:
		default:
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-d.done:
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				<-d.done
			}
		}
		if t.Failed() {
			t.Logf("dev stdout:\n%s\ndev stderr:\n%s\ndev.log (tail):\n%s", d.stdout.String(), d.stderr.String(), d.logTail())
		}
	})

	start := time.Now()
	timeout := time.After(3 * time.Minute)
	for {
		select {
		case line, ok := <-d.lines:
			if !ok {
				<-d.done
				t.Fatalf("dev exited before ready (%v)", d.err)
			}
			if readyLine.MatchString(line) {
				t.Logf("dev ready in %s: %s", time.Since(start).Round(time.Millisecond), line)
				return d
			}
		case <-timeout:
			t.Fatalf("dev not ready within 3 minutes")
		}
	}
}

func (d *devProcess) logTail() string {
	b, err := os.ReadFile(filepath.Join(d.dataDir, "dev.log"))
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// interrupt sends SIGINT and waits (up to 60 s) for the process to exit; it
// returns the exit code and how long the shutdown took.
func (d *devProcess) interrupt(t *testing.T) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	require.NoError(t, d.cmd.Process.Signal(os.Interrupt))
	select {
	case <-d.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("dev did not exit within 60 s of SIGINT")
	}
	code := 0
	var exitErr *exec.ExitError
	if errors.As(d.err, &exitErr) {
		code = exitErr.ExitCode()
	} else if d.err != nil {
		t.Fatalf("dev: %v", d.err)
	}
	return code, time.Since(start)
}

// procInfo is what /proc says about one process.
type procInfo struct {
	pid, ppid int
	comm      string
	state     string
}

// readProc parses /proc/<pid>/stat; comm may hold spaces and parentheses,
// so the fields after it are taken from the last ')'.
func readProc(pid int) (procInfo, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procInfo{}, false
	}
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return procInfo{}, false
	}
	fields := strings.Fields(s[closing+1:])
	if len(fields) < 2 {
		return procInfo{}, false
	}
	ppid, _ := strconv.Atoi(fields[1])
	return procInfo{pid: pid, ppid: ppid, comm: s[open+1 : closing], state: fields[0]}, true
}

// descendants returns every process below root (children, their children...).
func descendants(t *testing.T, root int) []procInfo {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	children := map[int][]procInfo{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			children[p.ppid] = append(children[p.ppid], p)
		}
	}
	var out []procInfo
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			out = append(out, c)
			queue = append(queue, c.pid)
		}
	}
	return out
}

// requireAllGone asserts that none of procs is alive (kill(pid, 0) gives
// ESRCH), allowing a few seconds for init to reap reparented processes.
func requireAllGone(t *testing.T, procs []procInfo) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var alive []string
		for _, p := range procs {
			if err := syscall.Kill(p.pid, 0); !errors.Is(err, syscall.ESRCH) {
				now, _ := readProc(p.pid)
				alive = append(alive, fmt.Sprintf("%d %s (state %s, kill: %v)", p.pid, p.comm, now.state, err))
			}
		}
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left behind after dev stopped: %s", strings.Join(alive, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// resolve polls the resolver (up to 2 s) until it answers 200 and returns the body.
func resolve(t *testing.T, resolverAddr string, k routes.Key) (string, http.Header) {
	t.Helper()
	u := fmt.Sprintf("http://%s/api/v1/resolve/%s/%s/%s/%s", resolverAddr, k.Tenant, k.Service, k.Env, k.Version)
	deadline := time.Now().Add(2 * time.Second)
	var last string
	for {
		res, err := http.Get(u)
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return string(body), res.Header
			}
			last = fmt.Sprintf("%d %s", res.StatusCode, body)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: not 200 within 2 s, last: %s", u, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDevStack runs `trafficmanager dev` as a user does: ready line, a route
// written through the CLI and resolved over HTTP, its workflow found by
// search attribute, dev.env, a clean SIGINT that leaves no process behind,
// and a restart on the same data that still knows the route.
func TestDevStack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole dev stack")
	}
	if _, err := devstack.TemporalBinary(); err != nil {
		t.Skip(err)
	}
	if _, err := devstack.PostgresBinDir(); err != nil {
		t.Skip(err)
	}
	bin := buildBinary(t)
	dataDir := t.TempDir()
	ports := freeDevPorts(t)
	apiURL := "http://" + ports.api
	temporalAddr := "127.0.0.1:" + strconv.Itoa(ports.temporal)
	k := routes.Key{Tenant: "t", Service: "s", Env: "prod", Version: "v1"}
	const target = "https://a.example"

	d := startDev(t, bin, dataDir, ports)

	// 1. create through the CLI binary
	res := runCLI(t, bin, nil, "routes", "create", "--api-url", apiURL,
		"--tenant", k.Tenant, "--service", k.Service, "--env", k.Env, "--version", k.Version, "--url", target, "--output", "json")
	require.Equal(t, 0, res.code, "routes create: stdout %s stderr %s", res.stdout, res.stderr)
	var created mutationAnswer
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &created), res.stdout)
	require.Equal(t, "created", created.Action)
	require.True(t, created.Changed)
	require.Equal(t, target, created.Route.URL)

	// 2. resolve it over HTTP
	body, _ := resolve(t, ports.resolver, k)
	require.Contains(t, body, target)

	// a missing route through the real api: exit 1, the API's message on stderr
	res = runCLI(t, bin, nil, "routes", "get", "--api-url", apiURL, "--tenant", k.Tenant, "--service", k.Service, "--env", k.Env, "--version", "nope")
	require.Equal(t, 1, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	require.Contains(t, res.stderr, "route_not_found")

	// 2b. a bulk import through the CLI: 2500 routes of two tenants in
	// batches; running it again changes nothing.
	var lines strings.Builder
	for i := range 2500 {
		tenant := []string{"imp-a", "imp-b"}[i%2]
		fmt.Fprintf(&lines, `{"tenant":%q,"service":"svc","env":"prod","version":"v%d","url":"https://imp.example/%d"}`+"\n", tenant, i, i)
	}
	importFile := filepath.Join(t.TempDir(), "routes.ndjson")
	require.NoError(t, os.WriteFile(importFile, []byte(lines.String()), 0o644))
	for run, want := range []importSummary{{Routes: 2500, Batches: 4, Created: 2500}, {Routes: 2500, Batches: 4, Unchanged: 2500}} {
		res = runCLI(t, bin, nil, "routes", "import", importFile, "--api-url", apiURL, "--output", "json")
		require.Equal(t, 0, res.code, "routes import (run %d): stdout %s stderr %s", run+1, res.stdout, res.stderr)
		var got importSummary
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &got), res.stdout)
		require.Equal(t, want.Routes, got.Routes)
		require.Equal(t, want.Batches, got.Batches)
		require.Equal(t, want.Created, got.Created, "run %d", run+1)
		require.Equal(t, want.Unchanged, got.Unchanged, "run %d", run+1)
		require.Empty(t, got.Pending)
		if run == 0 { // the first batch, through `mutations status`
			res = runCLI(t, bin, nil, "mutations", "status", "batch/imp-a/created/"+got.KeyPrefix+"-1", "--api-url", apiURL)
			require.Equal(t, 0, res.code, "mutations status: stdout %s stderr %s", res.stdout, res.stderr)
			require.Contains(t, res.stdout, "1000 routes: 1000 created, 0 unchanged")
		}
	}
	body, _ = resolve(t, ports.resolver, routes.Key{Tenant: "imp-b", Service: "svc", Env: "prod", Version: "v2499"})
	require.Contains(t, body, "https://imp.example/2499")

	// 3. the workflow, by search attribute, through the SDK ...
	tc, err := client.Dial(client.Options{HostPort: temporalAddr, Namespace: "default", Logger: quietTemporalLogger{}})
	require.NoError(t, err)
	defer tc.Close()
	var ids []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		list, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default", Query: "TmTenant='" + k.Tenant + "'"})
		cancel()
		require.NoError(t, err)
		ids = ids[:0]
		for _, e := range list.GetExecutions() {
			ids = append(ids, e.GetExecution().GetWorkflowId())
		}
		if len(ids) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.Equal(t, []string{created.WorkflowID}, ids, "workflows with TmTenant='%s'", k.Tenant)
	require.True(t, strings.HasPrefix(created.WorkflowID, "route/t/s/prod/v1/created/"), created.WorkflowID)

	// ... and `mutations failed` (Temporal directly): nothing failed
	res = runCLI(t, bin, nil, "mutations", "failed", "--temporal-address", temporalAddr, "--tenant", k.Tenant, "--output", "json")
	require.Equal(t, 0, res.code, "mutations failed: stdout %s stderr %s", res.stdout, res.stderr)
	var failed []map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &failed), res.stdout)
	require.NotNil(t, failed, "an empty JSON list, not null: %s", res.stdout)
	require.Empty(t, failed)

	// 4. dev.env has an export line per dependency
	env, err := os.ReadFile(filepath.Join(dataDir, "dev.env"))
	require.NoError(t, err)
	exports := map[string]string{}
	for _, line := range strings.Split(string(env), "\n") {
		if kv, ok := strings.CutPrefix(line, "export "); ok {
			name, value, _ := strings.Cut(kv, "=")
			exports[name] = value
		}
	}
	for _, name := range []string{"TM_DATABASE_URL", "TM_REDIS_URL", "TM_KAFKA_BROKERS", "TM_MONGO_URI", "TM_TEMPORAL_ADDRESS"} {
		require.NotEmpty(t, exports[name], "dev.env has no export line for %s:\n%s", name, env)
	}
	require.Equal(t, temporalAddr, exports["TM_TEMPORAL_ADDRESS"])

	// 5. SIGINT: exit 0, and every process dev started is gone
	procs := descendants(t, d.cmd.Process.Pid)
	names := map[string]bool{}
	for _, p := range procs {
		names[p.comm] = true
	}
	for _, want := range []string{"postgres", "redis-server", "temporal"} {
		require.True(t, names[want], "no %s below the dev process; found %v", want, procs)
	}
	code, took := d.interrupt(t)
	t.Logf("dev stopped in %s (%d processes below it before)", took.Round(time.Millisecond), len(procs))
	require.Equal(t, 0, code, "dev exit code; stderr:\n%s", d.stderr.String())
	require.Contains(t, d.stdout.String(), "stopped cleanly", "a clean stop says so")
	requireAllGone(t, procs)

	// 6. restart on the same data: Postgres kept the route. Fresh ports:
	// while dev was down, a parallel test may have taken the old ones.
	ports = freeDevPorts(t)
	apiURL = "http://" + ports.api
	d = startDev(t, bin, dataDir, ports)
	res = runCLI(t, bin, nil, "routes", "get", "--api-url", apiURL, "--output", "json",
		"--tenant", k.Tenant, "--service", k.Service, "--env", k.Env, "--version", k.Version)
	require.Equal(t, 0, res.code, "routes get after restart: stdout %s stderr %s", res.stdout, res.stderr)
	var got routes.Route
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &got), res.stdout)
	require.Equal(t, target, got.URL)
	require.EqualValues(t, 1, got.Revision)
	body, _ = resolve(t, ports.resolver, k)
	require.Contains(t, body, target)
	// The dependencies kept their ports (ports.json), so a shell that
	// sourced dev.env before the restart still reaches them; only a port
	// someone else took meanwhile moves, and dev says so.
	env, err = os.ReadFile(filepath.Join(dataDir, "dev.env"))
	require.NoError(t, err)
	for _, name := range []string{"TM_DATABASE_URL", "TM_REDIS_URL", "TM_KAFKA_BROKERS", "TM_MONGO_URI"} {
		if !strings.Contains(string(env), "export "+name+"="+exports[name]+"\n") {
			require.Contains(t, d.stdout.String(), "of the last start is taken: moved", "%s changed across the restart:\n%s", name, env)
		}
	}

	procs = descendants(t, d.cmd.Process.Pid)
	code, took = d.interrupt(t)
	t.Logf("dev stopped again in %s", took.Round(time.Millisecond))
	require.Equal(t, 0, code, "dev exit code; stderr:\n%s", d.stderr.String())
	requireAllGone(t, procs)
}

// TestCLIExitCodes checks the CLI's documented exit codes against a real api
// (in-process, on a fresh Postgres database): 1 for an API error with its
// message on stderr, 2 for bad flags, 3 when the api cannot be reached.
func TestCLIExitCodes(t *testing.T) {
	bin := buildBinary(t)
	pool := testenv.Postgres(t)
	log := zaptest.NewLogger(t)
	// Nothing here reaches Temporal: reads come from Postgres and a bad
	// tenant is rejected before any workflow starts.
	tc, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1", Logger: quietTemporalLogger{}})
	require.NoError(t, err)
	defer tc.Close()
	reg := observability.NewRegistry()
	srv := api.New(api.Options{
		Temporal: tc, TaskQueue: testenv.Name(t, "tq"), Routes: routes.NewStore(pool),
		Metrics: observability.NewWriteMetrics(reg), Registry: reg, Log: log,
	})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	key := []string{"--tenant", testenv.Name(t, "team"), "--service", "payments", "--env", "prod", "--version", "v1"}
	with := func(args ...string) []string { return append(args, key...) }

	t.Run("missing route: 1 with the API's message", func(t *testing.T) {
		res := runCLI(t, bin, nil, with("routes", "get", "--api-url", ts.URL)...)
		require.Equal(t, 1, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
		require.Contains(t, res.stderr, "route_not_found")
		require.Contains(t, res.stderr, "404")
		require.Empty(t, res.stdout)
	})
	t.Run("bad tenant: 1 invalid_argument", func(t *testing.T) {
		res := runCLI(t, bin, nil, "routes", "create", "--api-url", ts.URL,
			"--tenant", "Bad_Tenant!", "--service", "payments", "--env", "prod", "--version", "v1", "--url", "https://a.example")
		require.Equal(t, 1, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
		require.Contains(t, res.stderr, "invalid_argument")
		require.Contains(t, res.stderr, "tenant")
	})
	t.Run("--output yaml: 2", func(t *testing.T) {
		res := runCLI(t, bin, nil, with("routes", "get", "--api-url", ts.URL, "--output", "yaml")...)
		require.Equal(t, 2, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
		require.Contains(t, res.stderr, "--output")
	})
	t.Run("unreachable api: 3", func(t *testing.T) {
		port, err := devstack.FreePort() // nothing listens there
		require.NoError(t, err)
		res := runCLI(t, bin, nil, with("routes", "get", "--api-url", "http://127.0.0.1:"+strconv.Itoa(port))...)
		require.Equal(t, 3, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
		require.Contains(t, res.stderr, "cannot reach the api")
	})
	t.Run("TM_API_URL is the default --api-url", func(t *testing.T) {
		res := runCLI(t, bin, []string{"TM_API_URL=" + ts.URL}, with("routes", "get")...)
		require.Equal(t, 1, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
		require.Contains(t, res.stderr, "route_not_found")
	})
}
