package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/trafficmanager/trafficmanager/internal/devstack"
	"github.com/trafficmanager/trafficmanager/routes"
)

// TestDevTemporalCluster runs `dev --temporal cluster --workers 2
// --resolvers 2` as a user does: the Temporal server on the dev PostgreSQL
// with its UI, two workers and two resolvers on their own addresses, a
// route written over HTTP, resolved by both resolvers, its workflow found
// in SQL visibility and run by an identified worker, dev.env, Ctrl-C
// leaving no process behind, and a restart that keeps the cluster (its
// shard count, its workflows) and the route.
func TestDevTemporalCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole dev stack on a Temporal cluster")
	}
	if _, _, _, err := devstack.TemporalClusterBinaries(true); err != nil {
		// `go tool task test` runs setup first, which installs them.
		t.Fatalf("DEV --TEMPORAL CLUSTER NOT TESTED: %v", err)
	}
	if _, err := devstack.PostgresBinDir(); err != nil {
		t.Skip(err)
	}
	bin := buildBinary(t)
	dataDir := t.TempDir()
	ports := freeDevPorts(t)
	uiPort, err := devstack.FreePort()
	require.NoError(t, err)
	k := routes.Key{Tenant: "tc", Service: "s", Env: "prod", Version: "v1"}
	const target = "https://cluster.example"

	d := startDev(t, bin, dataDir, ports, "--temporal", "cluster", "--temporal-shards", "4", "--ui-port", strconv.Itoa(uiPort),
		"--workers", "2", "--resolvers", "2")
	require.Contains(t, d.stdout.String(), "(cluster: temporal-server "+devstack.TemporalServerVersion+", 4 history shards")
	uiURL := fmt.Sprintf("http://127.0.0.1:%d", uiPort)
	require.Contains(t, d.stdout.String(), "temporal-ui "+uiURL)
	resolvers := []string{ports.resolver, plus100(t, ports.resolver)}
	workers := []string{ports.workerAdr, plus100(t, ports.workerAdr)}
	require.Contains(t, d.stdout.String(), fmt.Sprintf("resolvers http://%s,http://%s  workers http://%s/metrics,http://%s/metrics",
		resolvers[0], resolvers[1], workers[0], workers[1]))
	for _, u := range []string{uiURL, "http://" + workers[0] + "/metrics", "http://" + workers[1] + "/metrics", "http://" + resolvers[1] + "/metrics"} {
		res, err := http.Get(u)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode, u)
	}

	// A route through the api (update-with-start on the cluster), resolved.
	body, _ := json.Marshal(map[string]any{"tenant": k.Tenant, "service": k.Service, "env": k.Env, "version": k.Version, "url": target, "changed_by": "test"})
	req, err := http.NewRequest(http.MethodPost, "http://"+ports.api+"/api/v1/routes", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "cluster-1")
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var created mutationAnswer
	require.NoError(t, json.NewDecoder(res.Body).Decode(&created))
	res.Body.Close()
	require.Equal(t, http.StatusCreated, res.StatusCode)
	t.Logf("first write on the cluster answered in %s", time.Since(start).Round(time.Millisecond))
	for _, r := range resolvers {
		got, _ := resolve(t, r, k)
		require.Contains(t, got, target, "resolver %s", r)
	}

	temporalAddr := "127.0.0.1:" + strconv.Itoa(ports.temporal)
	listed := func() []string {
		tc, err := client.Dial(client.Options{HostPort: temporalAddr, Namespace: "default", Logger: quietTemporalLogger{}})
		require.NoError(t, err)
		defer tc.Close()
		var ids []string
		deadline := time.Now().Add(10 * time.Second)
		for len(ids) == 0 && time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			list, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default", Query: "TmTenant='" + k.Tenant + "'"})
			cancel()
			require.NoError(t, err)
			for _, e := range list.GetExecutions() {
				ids = append(ids, e.GetExecution().GetWorkflowId())
			}
			time.Sleep(100 * time.Millisecond)
		}
		return ids
	}
	require.Equal(t, []string{created.WorkflowID}, listed(), "workflows with TmTenant='%s' in SQL visibility", k.Tenant)
	tc, err := client.Dial(client.Options{HostPort: temporalAddr, Namespace: "default", Logger: quietTemporalLogger{}})
	require.NoError(t, err)
	var identities []string
	hist := tc.GetWorkflowHistory(context.Background(), created.WorkflowID, "", false, 0)
	for hist.HasNext() {
		e, err := hist.Next()
		require.NoError(t, err)
		if a := e.GetWorkflowTaskStartedEventAttributes(); a != nil {
			identities = append(identities, a.GetIdentity())
		}
	}
	tc.Close()
	require.NotEmpty(t, identities)
	require.Regexp(t, `@worker-[12]$`, identities[0], "the workflow task was run by an identified worker instance")

	env, err := os.ReadFile(filepath.Join(dataDir, "dev.env"))
	require.NoError(t, err)
	require.Contains(t, string(env), "export TEMPORAL_ADDRESS="+temporalAddr+"\n")
	require.Contains(t, string(env), "# Temporal UI: "+uiURL+"\n")
	require.Contains(t, string(env), "# Temporal server metrics: http://127.0.0.1:")
	require.Contains(t, string(env), fmt.Sprintf("export TM_RESOLVER_URLS=http://%s,http://%s\n", resolvers[0], resolvers[1]))
	require.Contains(t, string(env), fmt.Sprintf("export TM_WORKER_URLS=http://%s,http://%s\n", workers[0], workers[1]))

	// Ctrl-C: exit 0, the server, the UI and everything else gone.
	procs := descendants(t, d.cmd.Process.Pid)
	names := map[string]bool{}
	for _, p := range procs {
		names[p.comm] = true
	}
	for _, want := range []string{"postgres", "temporal-server", "temporal-ui-ser"} { // comm is cut at 15 bytes
		require.True(t, names[want], "no %s below the dev process; found %v", want, procs)
	}
	code, took := d.interrupt(t)
	t.Logf("dev stopped in %s (%d processes below it before)", took.Round(time.Millisecond), len(procs))
	require.Equal(t, 0, code, "dev exit code; stderr:\n%s", d.stderr.String())
	requireAllGone(t, procs)

	// Restart without --temporal-shards on fresh ports: the cluster keeps 4
	// shards, its workflow history and the route.
	ports = freeDevPorts(t)
	d = startDev(t, bin, dataDir, ports, "--temporal", "cluster")
	require.Contains(t, d.stdout.String(), "4 history shards")
	got, _ := resolve(t, ports.resolver, k)
	require.Contains(t, got, target)
	require.Contains(t, d.stdout.String(), "  resolver http://"+ports.resolver+"  worker http://"+ports.workerAdr+"/metrics  ", "one of each by default")
	temporalAddr = "127.0.0.1:" + strconv.Itoa(ports.temporal)
	require.Equal(t, []string{created.WorkflowID}, listed(), "after restart")
	require.True(t, strings.HasPrefix(created.WorkflowID, "route/tc/s/prod/v1/created/"), created.WorkflowID)

	procs = descendants(t, d.cmd.Process.Pid)
	code, _ = d.interrupt(t)
	require.Equal(t, 0, code, "dev exit code; stderr:\n%s", d.stderr.String())
	requireAllGone(t, procs)
}

// plus100 is addr with its port + 100: where `dev` puts a second instance.
func plus100(t *testing.T, addr string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	p, err := strconv.Atoi(port)
	require.NoError(t, err)
	return net.JoinHostPort(host, strconv.Itoa(p+100))
}
