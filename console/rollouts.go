package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
)

// rolloutStep is one step of a rollout's status.
type rolloutStep struct {
	Weight     int            `json:"weight"`
	Pause      string         `json:"pause"`
	State      string         `json:"state"`
	Weights    map[string]int `json:"weights"`
	StartedAt  *time.Time     `json:"started_at"`
	FinishedAt *time.Time     `json:"finished_at"`
}

// rolloutStatus is GET /api/v1/rollouts/{t}/{s}/{e}/{key}.
type rolloutStatus struct {
	ID         string `json:"id"`
	WorkflowID string `json:"workflow_id"`
	Key        struct {
		Tenant  string `json:"tenant"`
		Service string `json:"service"`
		Env     string `json:"env"`
	} `json:"key"`
	To            string         `json:"to"`
	Status        string         `json:"status"`
	Step          int            `json:"step"`
	Weight        int            `json:"weight"`
	Steps         []rolloutStep  `json:"steps"`
	Reason        string         `json:"reason"`
	Error         string         `json:"error"`
	Starting      map[string]int `json:"starting_split"`
	CheckFailures int            `json:"check_failures"`
	RequestedBy   *actor         `json:"requested_by"`
	ApprovedBy    *actor         `json:"approved_by"`
	RejectedBy    *actor         `json:"rejected_by"`
	Comment       string         `json:"comment"`
	ExpiresAt     *time.Time     `json:"expires_at"`
}

// Running reports whether pause/resume/promote/abort may apply.
func (r rolloutStatus) Running() bool { return r.Status == "running" || r.Status == "paused" }

// RequesterID is who started the rollout: an approver may not approve
// their own (the API's four-eyes rule, shown here so the buttons match).
func (r rolloutStatus) RequesterID() string {
	if r.RequestedBy == nil {
		return ""
	}
	return r.RequestedBy.ID
}

// listedRollout is one rollout of GET /api/v1/rollouts.
type listedRollout struct {
	ID         string     `json:"id"`
	WorkflowID string     `json:"workflow_id"`
	Status     string     `json:"status"`
	Service    string     `json:"service"`
	Env        string     `json:"env"`
	To         string     `json:"to"`
	StartedAt  *time.Time `json:"started_at"`
}

type rolloutList struct {
	Rollouts   []listedRollout `json:"rollouts"`
	NextCursor string          `json:"next_cursor"`
}

// rolloutFilterStates are the status filter's choices (the API's).
var rolloutFilterStates = []string{"running", "paused", "awaiting_approval", "completed", "aborted", "rejected", "expired", "cancelled", "failed"}

// rolloutsPage lists the viewer's rollouts (GET /api/v1/rollouts, by
// tenant and status, a page at a time), opens one by id and has the
// start form.
func (c *Console) rolloutsPage(g *gin.Context) {
	v := viewerOf(g)
	if id := strings.Trim(g.Query("id"), "/ "); id != "" {
		g.Redirect(http.StatusSeeOther, "/ui/rollouts/"+escapeSegments(id))
		return
	}
	tenant, status := strings.TrimSpace(g.Query("tenant")), g.Query("status")
	q := url.Values{"limit": {"30"}}
	for name, val := range map[string]string{"tenant": tenant, "status": status, "cursor": g.Query("cursor")} {
		if val != "" {
			q.Set(name, val)
		}
	}
	a, err := c.call(g.Request.Context(), v, request{method: http.MethodGet, path: "/api/v1/rollouts?" + q.Encode()})
	if err != nil {
		c.fail(g, http.StatusInternalServerError, "internal error")
		return
	}
	if !a.OK() {
		c.apiFail(g, a, "Listing rollouts")
		return
	}
	var list rolloutList
	_ = a.decode(&list)
	next := ""
	if list.NextCursor != "" {
		q.Set("cursor", list.NextCursor)
		q.Del("limit")
		next = "/ui/rollouts?" + q.Encode()
	}
	c.render(g, http.StatusOK, "rollouts", v, map[string]any{
		"Tenants": tenantChoices(v), "IdemKey": uuid.NewString(), "Flash": v.sess.takeFlash(),
		"Started": v.sess.startedRollouts(), "Rollouts": list.Rollouts, "Next": next,
		"Tenant": tenant, "Status": status, "States": rolloutFilterStates,
	})
}

// parseSteps reads "10:5m, 50:10m, 100" as weights with pauses.
func parseSteps(s string) []map[string]any {
	var out []map[string]any
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		w, pause, _ := strings.Cut(part, ":")
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(w), "%"))
		if err != nil {
			n = -1 // the API names the bad step
		}
		st := map[string]any{"weight": n}
		if p := strings.TrimSpace(pause); p != "" {
			st["pause"] = p
		}
		out = append(out, st)
	}
	return out
}

// startRollout posts the form as POST /api/v1/rollouts; the form's
// idempotency key becomes the rollout's key.
func (c *Console) startRollout(g *gin.Context) {
	v := viewerOf(g)
	body := map[string]any{
		"tenant": g.PostForm("tenant"), "service": g.PostForm("service"), "env": g.PostForm("env"),
		"to": g.PostForm("to"), "steps": parseSteps(g.PostForm("steps")),
	}
	if u := strings.TrimSpace(g.PostForm("check_url")); u != "" {
		maxF, _ := strconv.Atoi(g.PostForm("check_max_failures"))
		body["check"] = map[string]any{"url": u, "interval": strings.TrimSpace(g.PostForm("check_interval")), "max_failures": maxF}
	}
	a, err := c.call(g.Request.Context(), v, request{method: http.MethodPost, path: "/api/v1/rollouts", body: body,
		header: map[string]string{"Idempotency-Key": idemKey(g)}})
	if err != nil {
		c.fail(g, http.StatusInternalServerError, "internal error")
		return
	}
	if !a.OK() {
		c.apiFail(g, a, "Starting the rollout")
		return
	}
	var st struct {
		ID         string `json:"id"`
		WorkflowID string `json:"workflow_id"`
		Status     string `json:"status"`
	}
	_ = a.decode(&st)
	if st.ID == "" { // a 202: the id is the workflow id's rest
		st.ID = strings.TrimPrefix(st.WorkflowID, "rollout/")
	}
	if st.ID != "" {
		v.sess.startedRollout(st.ID)
	}
	v.sess.setFlash("Rollout started: " + st.Status + ".")
	g.Redirect(http.StatusSeeOther, "/ui/rollouts/"+escapeSegments(st.ID))
}

// rolloutPage shows a rollout's progress and, for writers, pause, resume,
// promote and abort.
func (c *Console) rolloutPage(g *gin.Context) {
	v := viewerOf(g)
	id := strings.TrimPrefix(g.Param("id"), "/")
	var r rolloutStatus
	if !c.read(g, v, "/api/v1/rollouts/"+escapeSegments(id), "Reading the rollout", &r) {
		return
	}
	if r.ID == "" {
		r.ID = id
	}
	c.render(g, http.StatusOK, "rollout", v, map[string]any{
		"R": r, "CanWrite": v.CanWrite(r.Key.Tenant), "TemporalURL": c.workflowURL(r.WorkflowID, ""), "Flash": v.sess.takeFlash(),
	})
}

// actOnRollout posts pause, resume, promote or abort.
func (c *Console) actOnRollout(g *gin.Context) {
	v := viewerOf(g)
	id := strings.TrimPrefix(g.Param("id"), "/")
	i := strings.LastIndexByte(id, '/')
	if i < 0 {
		c.fail(g, http.StatusNotFound, "No such action.")
		return
	}
	rid, verb := id[:i], id[i+1:]
	done := map[string]string{"pause": "Paused", "resume": "Resumed", "promote": "Promoted", "abort": "Aborted"}[verb]
	if done == "" {
		c.fail(g, http.StatusNotFound, "No such action.")
		return
	}
	a, err := c.call(g.Request.Context(), v, request{method: http.MethodPost, path: "/api/v1/rollouts/" + escapeSegments(rid) + "/" + verb})
	if err != nil {
		c.fail(g, http.StatusInternalServerError, "internal error")
		return
	}
	if !a.OK() {
		c.apiFail(g, a, done)
		return
	}
	var r rolloutStatus
	_ = a.decode(&r)
	v.sess.setFlash(done + ": the rollout is " + r.Status + ".")
	g.Redirect(http.StatusSeeOther, "/ui/rollouts/"+escapeSegments(rid))
}
