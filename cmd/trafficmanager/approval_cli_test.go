package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeAPI answers each "METHOD escaped-path" with a canned status and body
// and records every request's path, query and body.
type fakeAPI struct {
	mu       sync.Mutex
	answers  map[string]fakeAnswer
	requests []fakeRequest
}

type fakeAnswer struct {
	status int
	body   string
}

type fakeRequest struct {
	line, query, auth string
	body              map[string]any
}

func newFakeAPI(t *testing.T, answers map[string]fakeAnswer) (*fakeAPI, string) {
	f := &fakeAPI{answers: answers}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		line := r.Method + " " + r.URL.EscapedPath()
		req := fakeRequest{line: line, query: r.URL.RawQuery, auth: r.Header.Get("Authorization")}
		if raw, _ := io.ReadAll(r.Body); len(raw) > 0 {
			require.NoError(t, json.Unmarshal(raw, &req.body), "%s sends JSON", line)
		}
		f.requests = append(f.requests, req)
		a, ok := f.answers[line]
		if !ok {
			a = fakeAnswer{http.StatusNotFound, `{"error":{"code":"mutation_not_found","message":"no such thing"}}`}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		_, _ = w.Write([]byte(a.body))
	}))
	t.Cleanup(ts.Close)
	return f, ts.URL
}

func (f *fakeAPI) sent() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.requests...)
}

const awaitingWF = "route/team-a/payments/prod/v1/updated/k1"

// The waiting fields of a mutation status: who asked, who approved, until
// when it waits, when it reverts.
const approvedStatus = `{"workflow_id":"` + awaitingWF + `","run_id":"r1","status":"running","action":"updated",
 "route":{"tenant":"team-a","service":"payments","env":"prod","version":"v1"},"event_id":"e1",
 "steps":{"committed":"done","invalidated":"done","published":"done","audited":"done"},
 "requested_by":{"id":"t1","name":"ci"},"approved_by":{"id":"t2","name":"alice"},
 "revert_at":"2026-12-02T10:00:00Z","revert":{"state":"pending","at":"2026-12-02T10:00:00Z"}}`

func TestMutationsListApproveAndReject(t *testing.T) {
	bin := buildBinary(t)
	f, api := newFakeAPI(t, map[string]fakeAnswer{
		"GET /api/v1/mutations": {200, `{"mutations":[
			{"workflow_id":"` + awaitingWF + `","run_id":"r1","status":"awaiting_approval","action":"updated",
			 "route":{"tenant":"team-a","service":"payments","env":"prod","version":"v1"},"requested_by":"ci"},
			{"workflow_id":"route/team-a/payments/prod/v2/deactivated/k2","run_id":"r2","status":"scheduled","action":"deactivated",
			 "route":{"tenant":"team-a","service":"payments","env":"prod","version":"v2"},"not_before":"2026-12-02T09:00:00Z"}],
			"next_cursor":"c2"}`},
		"POST /api/v1/mutations/" + awaitingWF + "/approve": {200, approvedStatus},
		"POST /api/v1/mutations/" + awaitingWF + "/reject":  {409, `{"error":{"code":"mutation_not_pending","message":"the mutation is not awaiting approval"}}`},
	})
	flags := []string{"--api-url", api, "--token", "tm_approver"}

	res := runCLI(t, bin, nil, append([]string{"mutations", "list", "--tenant", "team-a", "--status", "awaiting_approval", "--limit", "2", "--cursor", "c1"}, flags...)...)
	require.Equal(t, 0, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	require.Len(t, lines, 4, res.stdout)
	for _, col := range []string{"WORKFLOW", "STATUS", "ACTION", "ROUTE", "NOT BEFORE", "REQUESTED BY"} {
		require.Contains(t, lines[0], col)
	}
	require.Regexp(t, `^route/team-a/payments/prod/v1/updated/k1\s+awaiting_approval\s+updated\s+team-a/payments/prod/v1\s+-\s+ci$`, lines[1])
	require.Regexp(t, `scheduled\s+deactivated\s+team-a/payments/prod/v2\s+2026-12-02T09:00:00Z\s+-$`, lines[2])
	require.Equal(t, "next page: --cursor c2", lines[3])

	res = runCLI(t, bin, nil, append([]string{"mutations", "list", "-o", "json"}, flags...)...)
	require.Equal(t, 0, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	var listed map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &listed))
	require.Equal(t, "c2", listed["next_cursor"], "json output is the api's answer")

	res = runCLI(t, bin, nil, append([]string{"mutations", "list", "--limit", "201"}, flags...)...)
	require.Equal(t, 2, res.code, "stdout %s stderr %s", res.stdout, res.stderr)

	res = runCLI(t, bin, nil, append([]string{"mutations", "approve", awaitingWF, "--comment", "looks good"}, flags...)...)
	require.Equal(t, 0, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	lines = strings.Split(strings.TrimSpace(res.stdout), "\n")
	require.Len(t, lines, 2, res.stdout)
	for _, col := range []string{"REQUESTED BY", "APPROVED BY", "REVERT AT", "REVERT"} {
		require.Contains(t, lines[0], col)
	}
	require.NotContains(t, lines[0], "NOT BEFORE", "absent fields get no column")
	require.NotContains(t, lines[0], "REJECTED BY")
	require.Regexp(t, `\s+ci\s+alice\s+2026-12-02T10:00:00Z\s+pending$`, lines[1])

	res = runCLI(t, bin, nil, append([]string{"mutations", "reject", awaitingWF}, flags...)...)
	require.Equal(t, 1, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	require.Contains(t, res.stderr, "mutation_not_pending")

	sent := f.sent()
	require.Len(t, sent, 4)
	require.Equal(t, "GET /api/v1/mutations", sent[0].line)
	require.Equal(t, "cursor=c1&limit=2&status=awaiting_approval&tenant=team-a", sent[0].query)
	require.Equal(t, "Bearer tm_approver", sent[0].auth)
	require.Equal(t, "POST /api/v1/mutations/"+awaitingWF+"/approve", sent[2].line)
	require.Equal(t, map[string]any{"comment": "looks good"}, sent[2].body)
	require.Equal(t, "POST /api/v1/mutations/"+awaitingWF+"/reject", sent[3].line)
	require.Nil(t, sent[3].body, "no --comment, no body")
}

func TestMutationsStatusShowsWhatAWaitingMutationWaitsFor(t *testing.T) {
	bin := buildBinary(t)
	_, api := newFakeAPI(t, map[string]fakeAnswer{
		"GET /api/v1/mutations/" + awaitingWF: {200, `{"workflow_id":"` + awaitingWF + `","run_id":"r1","status":"awaiting_approval","action":"updated",
			"route":{"tenant":"team-a","service":"payments","env":"prod","version":"v1"},"event_id":"e1",
			"steps":{"committed":"pending","invalidated":"pending","published":"pending","audited":"pending"},
			"not_before":"2026-12-02T09:00:00Z","requested_by":"ci","expires_at":"2026-12-05T09:00:00Z"}`},
		"GET /api/v1/mutations/route/team-a/payments/prod/v1/updated/k3": {200, `{"workflow_id":"route/team-a/payments/prod/v1/updated/k3","status":"completed","action":"updated",
			"steps":{"committed":"rejected","invalidated":"skipped","published":"skipped","audited":"skipped"},
			"error":{"code":"precondition_failed","message":"the route is at revision 3, not 2"}}`},
		"GET /api/v1/mutations/route/team-a/payments/prod/v1/updated/k4": {200, `{"workflow_id":"route/team-a/payments/prod/v1/updated/k4","status":"completed","action":"updated",
			"steps":{"committed":"done","invalidated":"done","published":"done","audited":"done"},
			"revert_at":"2026-12-02T10:00:00Z","revert":{"state":"skipped","at":"2026-12-02T10:00:00Z","reason":"the route changed since (revision 4)"}}`},
		"GET /api/v1/mutations/route/team-a/payments/prod/v1/updated/k5": {200, `{"workflow_id":"route/team-a/payments/prod/v1/updated/k5","status":"rejected","action":"updated",
			"steps":{"committed":"skipped","invalidated":"skipped","published":"skipped","audited":"skipped"},
			"requested_by":{"id":"t1","name":"ci"},"rejected_by":{"id":"t2","name":"alice"},"comment":"not during the freeze"}`},
	})
	res := runCLI(t, bin, nil, "mutations", "status", "--api-url", api, awaitingWF)
	require.Equal(t, 0, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	require.Len(t, lines, 2, res.stdout)
	require.Regexp(t, `AUDITED\s+NOT BEFORE\s+REQUESTED BY\s+EXPIRES AT$`, lines[0])
	require.Regexp(t, `awaiting_approval\s+updated\s+e1\s+pending\s+pending\s+pending\s+pending\s+2026-12-02T09:00:00Z\s+ci\s+2026-12-05T09:00:00Z$`, lines[1])

	res = runCLI(t, bin, nil, "mutations", "status", "--api-url", api, "route/team-a/payments/prod/v1/updated/k3")
	require.Equal(t, 0, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	require.Contains(t, res.stdout, "precondition_failed: the route is at revision 3, not 2")

	res = runCLI(t, bin, nil, "mutations", "status", "--api-url", api, "route/team-a/payments/prod/v1/updated/k4")
	require.Equal(t, 0, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	require.Contains(t, res.stdout, "skipped (the route changed since (revision 4))")

	res = runCLI(t, bin, nil, "mutations", "status", "--api-url", api, "route/team-a/payments/prod/v1/updated/k5")
	require.Equal(t, 0, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	require.Regexp(t, `REQUESTED BY\s+REJECTED BY\s+COMMENT`, res.stdout)
	require.Regexp(t, `rejected\s+updated.*ci\s+alice\s+not during the freeze`, res.stdout)
}

func TestTenantsPolicyGetAndSet(t *testing.T) {
	bin := buildBinary(t)
	policy := `{"tenant":"team-a","require_approval":{"envs":["prod","staging"]},"approval_timeout":"72h0m0s"}`
	f, api := newFakeAPI(t, map[string]fakeAnswer{
		"PUT /api/v1/tenants/team-a/policy": {200, policy},
		"GET /api/v1/tenants/team-a/policy": {200, policy},
		"PUT /api/v1/tenants/team-b/policy": {403, `{"error":{"code":"permission_denied","message":"admin only"}}`},
	})
	res := runCLI(t, bin, nil, "tenants", "policy", "set", "team-a", "--api-url", api,
		"--require-approval-env", "prod", "--require-approval-env", "staging", "--approval-timeout", "72h")
	require.Equal(t, 0, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	require.Regexp(t, `team-a\s+prod,staging\s+72h0m0s`, res.stdout)

	res = runCLI(t, bin, nil, "tenants", "policy", "get", "team-a", "--api-url", api)
	require.Equal(t, 0, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	require.Contains(t, res.stdout, "REQUIRE APPROVAL")
	require.Regexp(t, `team-a\s+prod,staging\s+72h0m0s`, res.stdout)

	res = runCLI(t, bin, nil, "tenants", "policy", "set", "team-b", "--api-url", api)
	require.Equal(t, 1, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	require.Contains(t, res.stderr, "permission_denied")

	res = runCLI(t, bin, nil, "tenants", "policy", "set", "team-a", "--api-url", api, "--approval-timeout", "soon")
	require.Equal(t, 2, res.code, "stdout %s stderr %s", res.stdout, res.stderr)

	sent := f.sent()
	require.Len(t, sent, 3, "a bad --approval-timeout sends nothing")
	require.Equal(t, map[string]any{"require_approval": map[string]any{"envs": []any{"prod", "staging"}}, "approval_timeout": "72h"}, sent[0].body)
	require.Equal(t, map[string]any{"require_approval": map[string]any{"envs": []any{}}}, sent[2].body, "no env: no approval needed")
}

// --revert-after goes into the body of every write to an existing route;
// an answer awaiting approval prints its workflow; a bad duration sends nothing.
func TestRevertAfterAndAwaitingApprovalAnswers(t *testing.T) {
	bin := buildBinary(t)
	f, api := newFakeAPI(t, map[string]fakeAnswer{
		"PUT /api/v1/routes/team-a/payments/prod/v1": {202, `{"workflow_id":"` + awaitingWF + `","run_id":"r1","status":"awaiting_approval"}`},
		"POST /api/v1/routes/team-a/payments/prod/v1/deactivate": {200, `{"route":{"tenant":"team-a","service":"payments","env":"prod","version":"v1","url":"https://a.example","is_active":false,"revision":2},
			"action":"deactivated","changed":true,"event_id":"e2","workflow_id":"route/team-a/payments/prod/v1/deactivated/k2","run_id":"r2","revert_at":"2026-12-02T10:00:00Z"}`},
	})
	key := []string{"--api-url", api, "--tenant", "team-a", "--service", "payments", "--env", "prod", "--version", "v1"}
	res := runCLI(t, bin, nil, append([]string{"routes", "update", "--url", "https://b.example", "--revert-after", "1h"}, key...)...)
	require.Equal(t, 0, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	require.Regexp(t, `awaiting_approval\s+-\s+`+awaitingWF, res.stdout)

	res = runCLI(t, bin, nil, append([]string{"routes", "deactivate", "--revert-after", "30m"}, key...)...)
	require.Equal(t, 0, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	require.Contains(t, res.stdout, "REVERT AT")
	require.Contains(t, res.stdout, "2026-12-02T10:00:00Z")

	res = runCLI(t, bin, nil, append([]string{"routes", "activate", "--revert-after", "a while"}, key...)...)
	require.Equal(t, 2, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	require.Contains(t, res.stderr, "--revert-after")

	res = runCLI(t, bin, nil, append([]string{"routes", "create", "--url", "https://a.example", "--revert-after", "1h"}, key...)...)
	require.Equal(t, 2, res.code, "a create has no --revert-after: stdout %s stderr %s", res.stdout, res.stderr)

	sent := f.sent()
	require.Len(t, sent, 2)
	require.Equal(t, "1h", sent[0].body["revert_after"])
	require.Equal(t, "30m", sent[1].body["revert_after"])
}

// `routes import --not-before` schedules every batch; a scheduled batch is
// listed as pending.
func TestImportNotBeforeSchedulesEveryBatch(t *testing.T) {
	bin := buildBinary(t)
	f, api := newFakeAPI(t, map[string]fakeAnswer{
		"POST /api/v1/routes/batch": {202, `{"workflow_id":"batch/team-a/created/k1","run_id":"r1","status":"scheduled","not_before":"2026-12-02T09:00:00Z"}`},
	})
	file := t.TempDir() + "/routes.json"
	require.NoError(t, os.WriteFile(file, []byte(`{"tenant":"team-a","service":"s","env":"prod","version":"v1","url":"https://a.example"}`), 0o644))
	res := runCLI(t, bin, nil, "routes", "import", file, "--api-url", api, "--not-before", "2026-12-02T09:00:00Z", "-o", "json")
	require.Equal(t, 0, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	require.Contains(t, res.stdout, "batch/team-a/created/k1")
	sent := f.sent()
	require.Len(t, sent, 1)
	require.Equal(t, "2026-12-02T09:00:00Z", sent[0].body["not_before"])

	res = runCLI(t, bin, nil, "routes", "import", file, "--api-url", api, "--not-before", "someday")
	require.Equal(t, 2, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
}
