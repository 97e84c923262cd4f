package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/activities"
	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/auth"
	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/worker"
)

// rolloutEnv is a service/env with active routes v1 and v2.
type rolloutEnv struct {
	p      *platform
	tenant string
	path   string // {t}/checkout/prod
}

func newRolloutEnv(t *testing.T, p *platform) *rolloutEnv {
	t.Helper()
	e := &rolloutEnv{p: p, tenant: testenv.Name(t, "team")}
	e.path = e.tenant + "/checkout/prod"
	for _, v := range []string{"v1", "v2"} {
		res := p.do(t, "POST", "/api/v1/routes", map[string]any{"tenant": e.tenant, "service": "checkout", "env": "prod",
			"version": v, "url": "https://" + v + ".checkout.example"})
		require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	}
	return e
}

func (e *rolloutEnv) start(t *testing.T, key string, steps []map[string]any, check map[string]any) response {
	t.Helper()
	body := map[string]any{"tenant": e.tenant, "service": "checkout", "env": "prod", "to": "v2", "steps": steps}
	if check != nil {
		body["check"] = check
	}
	return e.p.do(t, "POST", "/api/v1/rollouts", body, "Idempotency-Key", key)
}

func (e *rolloutEnv) status(t *testing.T, id string) response {
	t.Helper()
	return e.p.do(t, "GET", "/api/v1/rollouts/"+id, nil)
}

// await polls the rollout until cond holds.
func (e *rolloutEnv) await(t *testing.T, id string, timeout time.Duration, cond func(map[string]any) bool, msg string) map[string]any {
	t.Helper()
	var last response
	eventually(t, timeout, func() bool {
		last = e.status(t, id)
		return last.Status == http.StatusOK && cond(last.Body)
	}, msg)
	return last.Body
}

func (e *rolloutEnv) split(t *testing.T) (int, map[string]any) {
	t.Helper()
	res := e.p.do(t, "GET", "/api/v1/splits/"+e.path, nil)
	if res.Status != http.StatusOK {
		return res.Status, nil
	}
	return res.Status, res.Body["weights"].(map[string]any)
}

func statusIs(s string) func(map[string]any) bool {
	return func(b map[string]any) bool { return b["status"] == s }
}

func step(weight int, pause string) map[string]any {
	s := map[string]any{"weight": weight}
	if pause != "" {
		s["pause"] = pause
	}
	return s
}

func TestARolloutCompletesTo100AndASecondOneConflicts(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	e := newRolloutEnv(t, p)
	res := e.start(t, "first", []map[string]any{step(10, "2s"), step(50, "2s"), step(100, "")}, nil)
	require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	id := res.Body["id"].(string)
	require.Equal(t, e.path+"/first", id)
	require.Equal(t, "rollout/"+id, res.Body["workflow_id"])
	require.Equal(t, "running", res.Body["status"])

	other := e.start(t, "second", []map[string]any{step(100, "")}, nil)
	require.Equal(t, http.StatusConflict, other.Status, other.Raw)
	require.Contains(t, other.Raw, "rollout_conflict")

	mid := e.await(t, id, 10*time.Second, func(b map[string]any) bool { return b["weight"] == float64(10) }, "the first step is set")
	require.Equal(t, "running", mid["status"])
	_, w := e.split(t)
	require.Equal(t, map[string]any{"v1": float64(90), "v2": float64(10)}, w)

	done := e.await(t, id, 30*time.Second, statusIs("completed"), "the rollout completes")
	require.Equal(t, float64(100), done["weight"])
	for _, s := range done["steps"].([]any) {
		st := s.(map[string]any)
		require.Equal(t, "done", st["state"])
		require.NotEmpty(t, st["started_at"])
		require.NotEmpty(t, st["finished_at"])
	}
	_, w = e.split(t)
	require.Equal(t, map[string]any{"v2": float64(100)}, w)
	recordHistory(t, p, "rollout/"+id, "rollout_history.json")

	// The same request again is the same rollout (the first answer, from
	// the start update's recorded outcome); a finished rollout's actions
	// are 409.
	again := e.start(t, "first", []map[string]any{step(10, "2s"), step(50, "2s"), step(100, "")}, nil)
	require.Equal(t, http.StatusCreated, again.Status, again.Raw)
	require.Equal(t, id, again.Body["id"])
	abort := p.do(t, "POST", "/api/v1/rollouts/"+id+"/abort", nil)
	require.Equal(t, http.StatusConflict, abort.Status, abort.Raw)
	missing := p.do(t, "GET", "/api/v1/rollouts/"+e.path+"/nope", nil)
	require.Equal(t, http.StatusNotFound, missing.Status, missing.Raw)
	hist := p.do(t, "GET", "/api/v1/splits/"+e.path+"/history", nil)
	require.Len(t, hist.Body["revisions"], 3, hist.Raw)

	// The finished rollout freed the env's lock: a rollout back to v1 runs.
	back := p.do(t, "POST", "/api/v1/rollouts", map[string]any{"tenant": e.tenant, "service": "checkout", "env": "prod", "to": "v1",
		"steps": []map[string]any{step(100, "")}})
	require.Equal(t, http.StatusCreated, back.Status, back.Raw)
	e.await(t, back.Body["id"].(string), 10*time.Second, statusIs("completed"), "the rollout back completes")
	_, w = e.split(t)
	require.Equal(t, map[string]any{"v1": float64(100)}, w)
}

func TestAnAbortedRolloutRestoresTheStartingSplit(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	e := newRolloutEnv(t, p)
	put := p.do(t, "PUT", "/api/v1/splits/"+e.path, map[string]any{"weights": map[string]int{"v1": 90, "v2": 10}})
	require.Equal(t, http.StatusCreated, put.Status, put.Raw)

	res := e.start(t, "abort-me", []map[string]any{step(40, "1m"), step(100, "")}, nil)
	require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	id := res.Body["id"].(string)
	e.await(t, id, 10*time.Second, func(b map[string]any) bool { return b["weight"] == float64(40) }, "the first step is set")
	_, w := e.split(t)
	require.Equal(t, map[string]any{"v1": float64(60), "v2": float64(40)}, w)

	ab := p.do(t, "POST", "/api/v1/rollouts/"+id+"/abort", nil)
	require.Equal(t, http.StatusOK, ab.Status, ab.Raw)
	require.Equal(t, "aborted", ab.Body["status"])
	require.Equal(t, "manual", ab.Body["reason"])
	require.Equal(t, float64(10), ab.Body["weight"])
	_, w = e.split(t)
	require.Equal(t, map[string]any{"v1": float64(90), "v2": float64(10)}, w)
	again := p.do(t, "POST", "/api/v1/rollouts/"+id+"/abort", nil)
	require.Equal(t, http.StatusConflict, again.Status, again.Raw)
	e.await(t, id, 10*time.Second, statusIs("aborted"), "the rollout has ended")
	recordHistory(t, p, "rollout/"+id, "rollout_abort_history.json")
}

func TestAFailingCheckAbortsTheRolloutAfterMaxFailures(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	check := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(check.Close)
	p := startPlatform(t, 10*time.Second)
	e := newRolloutEnv(t, p)
	res := e.start(t, "checked", []map[string]any{step(20, "5m"), step(100, "")},
		map[string]any{"url": check.URL + "/health", "interval": "1s", "max_failures": 2})
	require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	id := res.Body["id"].(string)
	done := e.await(t, id, 30*time.Second, statusIs("aborted"), "the check aborts the rollout")
	require.Equal(t, "check_failed", done["reason"])
	require.Equal(t, float64(2), done["check_failures"])
	require.EqualValues(t, 2, calls.Load())
	code, _ := e.split(t)
	require.Equal(t, http.StatusNotFound, code, "no split before the rollout: the abort deletes it")
	recordHistory(t, p, "rollout/"+id, "rollout_check_failed_history.json")
}

func TestAPausedRolloutHoldsAcrossAWorkerRestart(t *testing.T) {
	t.Parallel()
	p := startPlatformWith(t, platformOptions{ackTimeout: 10 * time.Second, noWorker: true})
	pub := events.NewPublisher(p.brokers, topic)
	t.Cleanup(func() { pub.Close() })
	acts := &activities.Activities{Routes: routes.NewStore(p.pool), Events: pub, AuditLog: audit.NewStore(p.mongo), Log: zaptest.NewLogger(t)}
	w1 := worker.New(p.tc, p.queue, acts, worker.Options{StopTimeout: time.Second})
	require.NoError(t, w1.Start())
	e := newRolloutEnv(t, p)
	res := e.start(t, "paused", []map[string]any{step(10, "4s"), step(100, "")}, nil)
	require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	id := res.Body["id"].(string)
	e.await(t, id, 10*time.Second, func(b map[string]any) bool { return b["weight"] == float64(10) }, "the first step is set")
	pause := p.do(t, "POST", "/api/v1/rollouts/"+id+"/pause", nil)
	require.Equal(t, http.StatusOK, pause.Status, pause.Raw)
	require.Equal(t, "paused", pause.Body["status"])
	require.Equal(t, http.StatusConflict, p.do(t, "POST", "/api/v1/rollouts/"+id+"/pause", nil).Status)

	w1.Stop()
	time.Sleep(6 * time.Second) // longer than the step's pause
	w2 := worker.New(p.tc, p.queue, acts, worker.Options{StopTimeout: time.Second})
	require.NoError(t, w2.Start())
	t.Cleanup(w2.Stop)
	time.Sleep(2 * time.Second)
	held := e.await(t, id, 10*time.Second, statusIs("paused"), "still paused after the restart")
	require.Equal(t, float64(10), held["weight"])
	_, sw := e.split(t)
	require.Equal(t, map[string]any{"v1": float64(90), "v2": float64(10)}, sw)

	resumed := time.Now()
	r := p.do(t, "POST", "/api/v1/rollouts/"+id+"/resume", nil)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.Equal(t, "running", r.Body["status"])
	done := e.await(t, id, 20*time.Second, statusIs("completed"), "the rollout completes after the resume")
	require.Equal(t, float64(100), done["weight"])
	require.Greater(t, time.Since(resumed), time.Second, "the rest of the pause ran after the resume")
	recordHistory(t, p, "rollout/"+id, "rollout_pause_history.json")
}

// The CLI drives a rollout with a writer's token; a reader may only look,
// another tenant's token finds nothing.
func TestRolloutsThroughTheCLIWithTokens(t *testing.T) {
	t.Parallel()
	p := startPlatformWith(t, platformOptions{ackTimeout: 10 * time.Second, auth: true})
	ctx := context.Background()
	tenant := testenv.Name(t, "team")
	token := func(name string, role auth.Role, tenants ...string) string {
		_, secret, err := p.tokens.Create(ctx, name, role, tenants)
		require.NoError(t, err)
		return secret
	}
	writer, reader, foreign := token("ci", auth.RoleWriter, tenant), token("dash", auth.RoleReader, tenant), token("them", auth.RoleWriter, testenv.Name(t, "other"))
	bearer := func(s string) []string { return []string{"Authorization", "Bearer " + s} }
	for _, v := range []string{"v1", "v2"} {
		res := p.do(t, "POST", "/api/v1/routes", map[string]any{"tenant": tenant, "service": "checkout", "env": "prod",
			"version": v, "url": "https://" + v + ".checkout.example"}, bearer(writer)...)
		require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	}
	cli := func(tok string, args ...string) (string, error) {
		cmd := exec.Command(binary(t), append(args, "--api-url", p.api.URL, "--token", tok)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := cli(reader, "rollouts", "start", "--tenant", tenant, "--service", "checkout", "--env", "prod", "--to", "v2", "--step", "10:1m", "--step", "100")
	require.Error(t, err, "a reader may not start a rollout: %s", out)
	out, err = cli(writer, "rollouts", "start", "--tenant", tenant, "--service", "checkout", "--env", "prod", "--to", "v2",
		"--step", "10:1m", "--step", "100", "--idempotency-key", "cli", "-o", "json")
	require.NoError(t, err, out)
	var started struct{ ID, Status string }
	require.NoError(t, json.Unmarshal([]byte(out), &started), out)
	require.Equal(t, tenant+"/checkout/prod/cli", started.ID)

	path := "/api/v1/rollouts/" + started.ID
	require.Equal(t, http.StatusOK, p.do(t, "GET", path, nil, bearer(reader)...).Status)
	require.Equal(t, http.StatusForbidden, p.do(t, "POST", path+"/pause", nil, bearer(reader)...).Status)
	require.Equal(t, http.StatusNotFound, p.do(t, "GET", path, nil, bearer(foreign)...).Status)
	require.Equal(t, http.StatusNotFound, p.do(t, "POST", path+"/abort", nil, bearer(foreign)...).Status)

	eventually(t, 10*time.Second, func() bool {
		out, err := cli(reader, "rollouts", "status", started.ID)
		return err == nil && strings.Contains(out, "running") && strings.Contains(out, "v1=90,v2=10")
	}, "the first step shows in `rollouts status`")
	out, err = cli(writer, "rollouts", "pause", started.ID)
	require.NoError(t, err, out)
	require.Contains(t, out, "paused")
	out, err = cli(writer, "rollouts", "resume", started.ID)
	require.NoError(t, err, out)
	out, err = cli(writer, "rollouts", "promote", started.ID, "-o", "json")
	require.NoError(t, err, out)
	var done struct {
		Status string
		Weight int
	}
	require.NoError(t, json.Unmarshal([]byte(out), &done), out)
	require.Equal(t, "completed", done.Status)
	require.Equal(t, 100, done.Weight)
	out, err = cli(writer, "rollouts", "abort", started.ID)
	require.Error(t, err, "a completed rollout cannot be aborted: %s", out)
}

// A terminated rollout frees its env's lock (the lock workflow is its
// child with the terminate parent-close policy) and reports "terminated".
func TestATerminatedRolloutFreesTheEnv(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	e := newRolloutEnv(t, p)
	res := e.start(t, "stuck", []map[string]any{step(10, "1h"), step(100, "")}, nil)
	require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	id := res.Body["id"].(string)
	e.await(t, id, 10*time.Second, func(b map[string]any) bool { return b["weight"] == float64(10) }, "the first step is set")
	require.NoError(t, p.tc.TerminateWorkflow(context.Background(), "rollout/"+id, "", "test"))
	st := e.await(t, id, 10*time.Second, statusIs("terminated"), "GET reports the termination")
	require.Equal(t, "rollout/"+id, st["workflow_id"])
	eventually(t, 10*time.Second, func() bool {
		next := e.start(t, testenv.Name(t, "next"), []map[string]any{step(100, "")}, nil)
		return next.Status == http.StatusCreated
	}, "a new rollout of the env starts")
}

// A rollout of an env the tenant's policy lists waits for approval before
// its first step, as the tenant's other writes there do: 202
// awaiting_approval, listed with the mutations awaiting approval, four
// eyes; approved, it runs to completion. A rejected or cancelled one ends
// without touching the split and frees the env for the next rollout.
func TestARolloutOfAnEnvThatNeedsApprovalWaitsForAnApprover(t *testing.T) {
	t.Parallel()
	ap := startApprovalPlatform(t)
	for _, v := range []string{"v1", "v2"} {
		ap.createRoute(t, routes.Key{Tenant: ap.tenant, Service: "checkout", Env: "prod", Version: v}, "https://"+v+".checkout.example")
	}
	ap.requireApproval(t, "prod")
	path := ap.tenant + "/checkout/prod"
	start := func(key, to string, headers []string) response {
		return ap.do(t, "POST", "/api/v1/rollouts", map[string]any{"tenant": ap.tenant, "service": "checkout", "env": "prod", "to": to,
			"steps": []map[string]any{step(50, "1s"), step(100, "")}}, append([]string{"Idempotency-Key", key}, headers...)...)
	}
	splitOf := func() response { return ap.do(t, "GET", "/api/v1/splits/"+path, nil, ap.admin...) }
	rollout := func(id string) response { return ap.do(t, "GET", "/api/v1/rollouts/"+id, nil, ap.admin...) }

	res := start("gated", "v2", ap.writer)
	require.Equal(t, http.StatusAccepted, res.Status, res.Raw)
	require.Equal(t, "awaiting_approval", res.Body["status"], res.Raw)
	id, wfID := res.Body["id"].(string), res.Body["workflow_id"].(string)
	require.Equal(t, "rollout/"+id, wfID)
	again := start("gated", "v2", ap.writer)
	require.Equal(t, http.StatusAccepted, again.Status, "the same request joins the rollout: %s", again.Raw)
	require.Equal(t, id, again.Body["id"])

	st := rollout(id)
	require.Equal(t, http.StatusOK, st.Status, st.Raw)
	require.Equal(t, "awaiting_approval", st.Body["status"], st.Raw)
	require.EqualValues(t, 0, st.Body["step"])
	require.Contains(t, st.Raw, `"ci"`, "requested_by names the writer")
	require.NotEmpty(t, st.Body["expires_at"], st.Raw)
	require.Equal(t, http.StatusNotFound, splitOf().Status, "no step before the approval")
	eventually(t, 15*time.Second, func() bool {
		l := ap.do(t, "GET", "/api/v1/mutations?status=awaiting_approval&tenant="+ap.tenant, nil, ap.approver...)
		require.Equal(t, http.StatusOK, l.Status, l.Raw)
		return strings.Contains(l.Raw, wfID)
	}, "GET /api/v1/mutations?status=awaiting_approval lists the rollout")
	eventually(t, 15*time.Second, func() bool {
		l := ap.do(t, "GET", "/api/v1/rollouts?status=awaiting_approval&service=checkout&tenant="+ap.tenant, nil, ap.approver...)
		require.Equal(t, http.StatusOK, l.Status, l.Raw)
		return strings.Contains(l.Raw, `{"id":"`+id+`","workflow_id":"`+wfID+`","status":"awaiting_approval","service":"checkout","env":"prod","to":"v2"`)
	}, "GET /api/v1/rollouts?status=awaiting_approval lists the rollout with its target")
	require.Equal(t, "awaiting_approval", ap.do(t, "GET", "/api/v1/mutations/"+wfID, nil, ap.approver...).Body["status"])

	pause := ap.do(t, "POST", "/api/v1/rollouts/"+id+"/pause", nil, ap.writer...)
	require.Equal(t, http.StatusConflict, pause.Status, "a rollout awaiting approval is not paused: %s", pause.Raw)
	approve := "/api/v1/mutations/" + wfID + "/approve"
	mine := ap.do(t, "POST", approve, nil, ap.writer...)
	require.Equal(t, http.StatusForbidden, mine.Status, "the requester (a writer) cannot approve: %s", mine.Raw)
	foreign := ap.do(t, "POST", approve, nil, ap.foreign...)
	require.Equal(t, http.StatusNotFound, foreign.Status, "an approver of another tenant does not see it: %s", foreign.Raw)
	other := start("other", "v2", ap.admin)
	require.Equal(t, http.StatusConflict, other.Status, "the rollout awaiting approval holds the env: %s", other.Raw)
	require.Contains(t, other.Raw, "rollout_conflict")

	ok := ap.do(t, "POST", approve, map[string]any{"comment": "CR-7"}, ap.approver...)
	require.Equal(t, http.StatusOK, ok.Status, ok.Raw)
	require.Contains(t, ok.Raw, `"alice"`, "approved_by names the approver")
	require.Equal(t, http.StatusConflict, ap.do(t, "POST", approve, nil, ap.admin...).Status, "a second principal's approval")
	var done response
	eventually(t, 30*time.Second, func() bool {
		done = rollout(id)
		return done.Body["status"] == "completed"
	}, "the approved rollout completes")
	require.EqualValues(t, 100, done.Body["weight"], done.Raw)
	require.Contains(t, done.Raw, `"approved_by":{`, done.Raw)
	sp := splitOf()
	require.Equal(t, map[string]any{"v2": float64(100)}, sp.Body["weights"], sp.Raw)
	hist := ap.do(t, "GET", "/api/v1/splits/"+path+"/history", nil, ap.admin...)
	require.Len(t, hist.Body["revisions"], 2, "the two steps, not gated again: %s", hist.Raw)
	recordClosedHistory(t, ap.platform, wfID, "rollout_approval_history.json")

	// Four eyes binds the admin too; a rejection ends the rollout without
	// a step and frees the env.
	back := start("back", "v1", ap.admin)
	require.Equal(t, http.StatusAccepted, back.Status, back.Raw)
	backID := back.Body["workflow_id"].(string)
	self := ap.do(t, "POST", "/api/v1/mutations/"+backID+"/approve", nil, ap.admin...)
	require.Equal(t, http.StatusForbidden, self.Status, "self-approval: %s", self.Raw)
	require.Equal(t, "permission_denied", errorCode(self))
	rej := ap.do(t, "POST", "/api/v1/mutations/"+backID+"/reject", map[string]any{"comment": "freeze"}, ap.approver...)
	require.Equal(t, http.StatusOK, rej.Status, rej.Raw)
	require.Equal(t, "rejected", rej.Body["status"], rej.Raw)
	eventually(t, 15*time.Second, func() bool { return rollout(back.Body["id"].(string)).Body["status"] == "rejected" }, "the rejected rollout ends")
	recordClosedHistory(t, ap.platform, backID, "rollout_rejected_history.json")
	require.Equal(t, http.StatusConflict, start("back", "v1", ap.admin).Status, "its key answers the rejection")

	// The env is free again: the writer's next rollout waits, and its
	// writer cancels it.
	var next response
	eventually(t, 15*time.Second, func() bool {
		next = start("next", "v1", ap.writer)
		return next.Status == http.StatusAccepted
	}, "the rejected rollout released the env's lock")
	c := ap.do(t, "POST", "/api/v1/mutations/"+next.Body["workflow_id"].(string)+"/cancel", nil, ap.writer...)
	require.Equal(t, http.StatusOK, c.Status, c.Raw)
	require.Equal(t, "cancelled", c.Body["status"], c.Raw)

	sp = splitOf()
	require.Equal(t, map[string]any{"v2": float64(100)}, sp.Body["weights"], "neither the rejected nor the cancelled rollout touched the split: %s", sp.Raw)
	requireConsistentTenant(t, ap.platform, ap.tenant)
}
