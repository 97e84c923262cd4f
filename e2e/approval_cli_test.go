package e2e

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/routes"
)

// The CLI drives the whole flow against the api: the admin sets the policy,
// a writer's update with --revert-after waits, the approver finds it with
// `mutations list` and approves it (the writer cannot), `mutations status`
// shows who asked, who approved and when it reverts, and `mutations cancel`
// cancels the pending revert.
func TestTheCLIDrivesAnApprovalAndCancelsItsRevert(t *testing.T) {
	t.Parallel()
	ap := startApprovalPlatform(t)
	k := routes.Key{Tenant: ap.tenant, Service: "payments", Env: "prod", Version: "v1"}
	ap.createRoute(t, k, "https://a.example")
	cli := func(who []string, args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(binary(t), append(args, "--api-url", ap.api.URL, "--token", strings.TrimPrefix(who[1], "Bearer "))...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		return stdout.String(), stderr.String(), code
	}
	key := []string{"--tenant", k.Tenant, "--service", k.Service, "--env", k.Env, "--version", k.Version}

	out, errOut, code := cli(ap.admin, "tenants", "policy", "set", ap.tenant, "--require-approval-env", "prod", "--approval-timeout", "2h")
	require.Equal(t, 0, code, "%s%s", out, errOut)
	require.Regexp(t, ap.tenant+`\s+prod\s+2h`, out)
	out, errOut, code = cli(ap.writer, "tenants", "policy", "set", ap.tenant)
	require.Equal(t, 1, code, "only an admin sets a policy: %s%s", out, errOut)
	require.Contains(t, errOut, "permission_denied")

	out, errOut, code = cli(ap.writer, append([]string{"routes", "update", "--url", "https://b.example", "--revert-after", "1h", "-o", "json"}, key...)...)
	require.Equal(t, 0, code, "%s%s", out, errOut)
	require.Equal(t, "awaiting_approval", jsonField(t, out, "status"))
	wfID := jsonField(t, out, "workflow_id")

	eventually(t, 15*time.Second, func() bool {
		out, errOut, code = cli(ap.approver, "mutations", "list", "--tenant", ap.tenant, "--status", "awaiting_approval")
		require.Equal(t, 0, code, "%s%s", out, errOut)
		return strings.Contains(out, wfID)
	}, "mutations list shows it")
	require.Regexp(t, `awaiting_approval\s+updated\s+`+k.Tenant+`/payments/prod/v1\s+-\s+ci`, out)

	out, errOut, code = cli(ap.writer, "mutations", "approve", wfID)
	require.Equal(t, 1, code, "%s%s", out, errOut)
	require.Contains(t, errOut, "permission_denied")
	out, errOut, code = cli(ap.approver, "mutations", "approve", wfID, "--comment", "CR-42")
	require.Equal(t, 0, code, "%s%s", out, errOut)
	require.Contains(t, out, "alice")

	eventually(t, 15*time.Second, func() bool {
		out, errOut, code = cli(ap.approver, "mutations", "status", wfID)
		require.Equal(t, 0, code, "%s%s", out, errOut)
		return strings.Contains(out, "REVERT AT") && strings.Contains(out, "pending")
	}, "the status shows the pending revert")
	require.Regexp(t, `REQUESTED BY\s+APPROVED BY`, out)
	require.Regexp(t, `\sci\s+alice\s`, out)
	out, errOut, code = cli(ap.writer, "mutations", "cancel", wfID)
	require.Equal(t, 0, code, "%s%s", out, errOut)
	require.Regexp(t, `REVERT\s*\n.*cancelled`, out)
	got := ap.do(t, "GET", routePath(k), nil, ap.admin...)
	require.Equal(t, "https://b.example", got.Body["url"], got.Raw)

	out, errOut, code = cli(ap.admin, "tokens", "create", "--role", "approver", "--tenant", ap.tenant, "--name", "carol")
	require.Equal(t, 0, code, "%s%s", out, errOut)
	require.Regexp(t, `carol\s+approver\s+`+ap.tenant, out)
}

// jsonField returns the string field name of the JSON object in s.
func jsonField(t *testing.T, s, name string) string {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(s), &m), s)
	v, _ := m[name].(string)
	return v
}
