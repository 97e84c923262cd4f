package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/trafficmanager/trafficmanager/routes"
)

// The figures of docs/performance.md "Waiting mutations": how late a
// scheduled write commits after its not_before (timer accuracy, p50/p99
// over TM_TEST_SCHEDULED writes, default 50, each 2 to 5 s ahead), and how
// many history events waiting costs a mutation (a plain update, a
// scheduled one, an approved one, one with a revert). It logs the figures
// and asserts no timing: the machine's load decides them.
func TestWaitingMutationsTimerAccuracyAndHistoryCost(t *testing.T) {
	t.Parallel()
	n := 50
	if v := os.Getenv("TM_TEST_SCHEDULED"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err)
	}
	ap := startApprovalPlatform(t)
	k := func(env, v string) routes.Key {
		return routes.Key{Tenant: ap.tenant, Service: "costs", Env: env, Version: v}
	}
	for _, rk := range []routes.Key{k("staging", "plain"), k("staging", "scheduled"), k("staging", "revert"), k("prod", "approved")} {
		ap.createRoute(t, rk, "https://a.example")
	}
	ap.requireApproval(t, "prod")
	key := func(i int) routes.Key {
		return routes.Key{Tenant: ap.tenant, Service: "timers", Env: "staging", Version: "v" + strconv.Itoa(i)}
	}

	// n routes in one batch, then n updates scheduled 2 to 5 s ahead.
	var batch []map[string]any
	for i := range n {
		k := key(i)
		batch = append(batch, map[string]any{"tenant": k.Tenant, "service": k.Service, "env": k.Env, "version": k.Version, "url": "https://a.example"})
	}
	res := ap.do(t, "POST", "/api/v1/routes/batch", map[string]any{"routes": batch}, ap.admin...)
	require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	notBefore := make([]time.Time, n)
	ids := make([]string, n)
	for i := range n {
		notBefore[i] = time.Now().Add(2*time.Second + time.Duration(i)*3*time.Second/time.Duration(n)).UTC()
		res := ap.do(t, "PUT", routePath(key(i)), map[string]any{"url": "https://b.example", "not_before": notBefore[i].Format(time.RFC3339Nano)}, ap.writer...)
		require.Equal(t, http.StatusAccepted, res.Status, res.Raw)
		ids[i] = res.Body["workflow_id"].(string)
	}
	late, fired := make([]time.Duration, n), make([]time.Duration, n)
	for i := range n {
		var committed time.Time
		eventually(t, 60*time.Second, func() bool {
			h := ap.do(t, "GET", routePath(key(i))+"/history?limit=1", nil, ap.admin...)
			revs, _ := h.Body["revisions"].([]any)
			if len(revs) == 0 || revs[0].(map[string]any)["revision"] != 2.0 {
				return false
			}
			var err error
			committed, err = time.Parse(time.RFC3339Nano, revs[0].(map[string]any)["occurred_at"].(string))
			require.NoError(t, err)
			return true
		}, "scheduled write "+strconv.Itoa(i)+" commits")
		late[i] = committed.Sub(notBefore[i])
		fired[i] = timerFired(t, ap.platform, ids[i]).Sub(notBefore[i])
	}
	summary := func(ds []time.Duration) string {
		ds = slices.Clone(ds)
		slices.Sort(ds)
		pct := func(p float64) time.Duration {
			return ds[min(len(ds)-1, int(p*float64(len(ds))))].Round(time.Millisecond)
		}
		return fmt.Sprintf("min %s, p50 %s, p99 %s, max %s", ds[0].Round(time.Millisecond), pct(0.5), pct(0.99), ds[len(ds)-1].Round(time.Millisecond))
	}
	t.Logf("timer accuracy, %d scheduled writes 2-5 s ahead: not_before -> commit (route history's occurred_at) %s; not_before -> TimerFired %s",
		n, summary(late), summary(fired))
	require.Positive(t, slices.Min(late), "no write commits before its not_before")

	// The history of each kind of mutation, once it has ended.
	write := func(rk routes.Key, body map[string]any, want int) string {
		body["url"] = "https://b.example"
		res := ap.do(t, "PUT", routePath(rk), body, ap.writer...)
		require.Equal(t, want, res.Status, res.Raw)
		return res.Body["workflow_id"].(string)
	}
	kinds := []struct{ name, wfID string }{
		{"plain update", write(k("staging", "plain"), map[string]any{}, http.StatusOK)},
		{"scheduled (not_before 2 s)", write(k("staging", "scheduled"), map[string]any{"not_before": fromNow(2 * time.Second)}, http.StatusAccepted)},
		{"approved", write(k("prod", "approved"), map[string]any{}, http.StatusAccepted)},
		{"revert_after 2 s, reverted", write(k("staging", "revert"), map[string]any{"revert_after": "2s"}, http.StatusOK)},
	}
	ap.awaitStatus(t, kinds[2].wfID, "awaiting_approval")
	approved := ap.do(t, "POST", "/api/v1/mutations/"+kinds[2].wfID+"/approve", nil, ap.approver...)
	require.Equal(t, http.StatusOK, approved.Status, approved.Raw)
	base := 0
	for i, kd := range kinds {
		ap.awaitStatus(t, kd.wfID, "completed")
		events, types := historyEvents(t, ap.platform, kd.wfID)
		if i == 0 {
			base = events
		}
		t.Logf("history events, %s: %d (%+d) %v", kd.name, events, events-base, types)
	}
}

// timerFired returns when the first timer of the workflow fired (its
// TimerFired event's time).
func timerFired(t *testing.T, p *platform, wfID string) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	it := p.tc.GetWorkflowHistory(ctx, wfID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		if ev.GetEventType() == enumspb.EVENT_TYPE_TIMER_FIRED {
			return ev.GetEventTime().AsTime()
		}
	}
	t.Fatalf("%s: no TimerFired event", wfID)
	return time.Time{}
}
