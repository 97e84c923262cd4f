package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
)

// routesPage lists the routes of the viewer's tenants: the API's filters
// (tenant, service, env, active) and a text search over the page.
func (c *Console) routesPage(g *gin.Context) {
	v := viewerOf(g)
	f := map[string]string{}
	q := url.Values{}
	for _, k := range []string{"tenant", "service", "env", "active"} {
		if val := strings.TrimSpace(g.Query(k)); val != "" {
			f[k] = val
			q.Set(k, val)
		}
	}
	if cur := g.Query("cursor"); cur != "" {
		q.Set("cursor", cur)
	}
	q.Set("limit", "100")
	a, err := c.call(g.Request.Context(), v, request{method: http.MethodGet, path: "/api/v1/routes?" + q.Encode()})
	if err != nil {
		c.fail(g, http.StatusInternalServerError, "internal error")
		return
	}
	if !a.OK() {
		c.apiFail(g, a, "Listing routes")
		return
	}
	var page routePage
	if err := a.decode(&page); err != nil {
		c.fail(g, http.StatusBadGateway, "The API answered something unexpected.")
		return
	}
	search := strings.ToLower(strings.TrimSpace(g.Query("q")))
	shown := page.Routes[:0]
	for _, r := range page.Routes {
		if search == "" || strings.Contains(strings.ToLower(r.Service+" "+r.Env+" "+r.Version+" "+r.URL), search) {
			shown = append(shown, r)
		}
	}
	next := ""
	if page.NextCursor != "" {
		nq := url.Values{}
		for k, val := range f {
			nq.Set(k, val)
		}
		if search != "" {
			nq.Set("q", search)
		}
		nq.Set("cursor", page.NextCursor)
		next = "/ui/routes?" + nq.Encode()
	}
	c.render(g, http.StatusOK, "routes", v, map[string]any{
		"Routes": shown, "Filter": f, "Search": g.Query("q"), "Next": next,
		"Tenants": tenantChoices(v), "IdemKey": uuid.NewString(), "Flash": v.sess.takeFlash(),
	})
}

// createRoute posts the new-route form as POST /api/v1/routes. The form's
// idempotency key makes a double submit one mutation.
func (c *Console) createRoute(g *gin.Context) {
	v := viewerOf(g)
	body := map[string]any{
		"tenant": g.PostForm("tenant"), "service": g.PostForm("service"), "env": g.PostForm("env"),
		"version": g.PostForm("version"), "url": strings.TrimSpace(g.PostForm("url")),
		"active": g.PostForm("active") != "",
	}
	a, err := c.call(g.Request.Context(), v, request{method: http.MethodPost, path: "/api/v1/routes", body: body,
		header: map[string]string{"Idempotency-Key": idemKey(g)}})
	if err != nil {
		c.fail(g, http.StatusInternalServerError, "internal error")
		return
	}
	if !a.OK() {
		c.apiFail(g, a, "Creating the route")
		return
	}
	v.sess.setFlash(writeOutcome("Created", a))
	afterWrite(g, a, routePath(g.PostForm("tenant"), g.PostForm("service"), g.PostForm("env"), g.PostForm("version")))
}

// idemKey is the form's idempotency key, if it is one the API accepts.
func idemKey(g *gin.Context) string {
	k := g.PostForm("idempotency_key")
	if _, err := uuid.Parse(k); err != nil {
		return ""
	}
	return k
}

// writeOutcome says what a write's answer means: applied, unchanged, or
// waiting (for approval or its time), with the workflow id.
func writeOutcome(done string, a apiAnswer) string {
	var w struct {
		Status     string `json:"status"`
		Changed    *bool  `json:"changed"`
		WorkflowID string `json:"workflow_id"`
		Route      struct {
			Revision int64 `json:"revision"`
		} `json:"route"`
	}
	_ = a.decode(&w)
	switch {
	case a.Status == http.StatusAccepted && w.Status == "awaiting_approval":
		return "Waiting for approval: another principal (an approver or admin of the tenant) must approve mutation " + w.WorkflowID + "."
	case a.Status == http.StatusAccepted && w.Status == "scheduled":
		return "Scheduled: mutation " + w.WorkflowID + " applies at its time."
	case a.Status == http.StatusAccepted:
		return "Accepted, not yet committed: follow mutation " + w.WorkflowID + "."
	case w.Changed != nil && !*w.Changed:
		return "Nothing to change: the route already was in that state."
	}
	return fmt.Sprintf("%s: the route is at revision %d.", done, w.Route.Revision)
}

// routePage shows a route: its current state, its history with what
// changed, its pending mutations, and the actions the viewer may take.
func (c *Console) routePage(g *gin.Context) {
	v := viewerOf(g)
	t, s, e, ver := g.Param("tenant"), g.Param("service"), g.Param("env"), g.Param("version")
	ctx := g.Request.Context()
	a, err := c.call(ctx, v, request{method: http.MethodGet, path: apiRoutePath(t, s, e, ver)})
	if err != nil {
		c.fail(g, http.StatusInternalServerError, "internal error")
		return
	}
	if !a.OK() {
		c.apiFail(g, a, "Reading the route")
		return
	}
	var r route
	if err := a.decode(&r); err != nil {
		c.fail(g, http.StatusBadGateway, "The API answered something unexpected.")
		return
	}
	var hist historyPage
	if a, err := c.call(ctx, v, request{method: http.MethodGet, path: apiRoutePath(t, s, e, ver) + "/history?limit=50"}); err == nil && a.OK() {
		_ = a.decode(&hist)
	}
	describeChanges(hist.Revisions)
	pending := c.pendingOf(g, v, t, func(m listedMutation) bool {
		return m.Route.Service == s && m.Route.Env == e && m.Route.Version == ver
	})
	c.render(g, http.StatusOK, "route", v, map[string]any{
		"Route": r, "History": hist.Revisions, "MoreHistory": hist.NextCursor != "", "Pending": pending,
		"CanWrite": v.CanWrite(t), "IdemKey": uuid.NewString(), "Flash": v.sess.takeFlash(),
	})
}

// describeChanges fills each revision's Changes against the one before it
// (revisions are newest first).
func describeChanges(revs []revision) {
	for i := range revs {
		r := &revs[i]
		if i+1 >= len(revs) {
			if r.Action == "created" {
				r.Changes = []string{"created with url " + r.URL + ", " + activeWord(r.IsActive)}
			} else {
				r.Changes = []string{"url " + r.URL + ", " + activeWord(r.IsActive)}
			}
			continue
		}
		prev := revs[i+1]
		if prev.URL != r.URL {
			r.Changes = append(r.Changes, "url "+prev.URL+" → "+r.URL)
		}
		if prev.IsActive != r.IsActive {
			r.Changes = append(r.Changes, activeWord(prev.IsActive)+" → "+activeWord(r.IsActive))
		}
		if r.RollbackTo != nil {
			r.Changes = append(r.Changes, "state of revision "+strconv.FormatInt(*r.RollbackTo, 10)+" restored")
		}
		if len(r.Changes) == 0 {
			r.Changes = []string{"no change of url or state"}
		}
	}
}

func activeWord(active bool) string {
	if active {
		return "active"
	}
	return "inactive"
}

// pendingOf lists tenant's mutations awaiting approval or scheduled that
// keep says belong to the page. The listing is eventually consistent; a
// listing error shows as no pending mutations (the mutations page says more).
func (c *Console) pendingOf(g *gin.Context, v viewer, tenant string, keep func(listedMutation) bool) []listedMutation {
	var out []listedMutation
	for _, st := range []string{"awaiting_approval", "scheduled"} {
		q := url.Values{"status": {st}, "limit": {"100"}}
		if tenant != "" {
			q.Set("tenant", tenant)
		}
		a, err := c.call(g.Request.Context(), v, request{method: http.MethodGet, path: "/api/v1/mutations?" + q.Encode()})
		if err != nil || !a.OK() {
			continue
		}
		var l mutationList
		if a.decode(&l) != nil {
			continue
		}
		for _, m := range l.Mutations {
			if keep == nil || keep(m) {
				out = append(out, m)
			}
		}
	}
	return out
}

// rollbackConfirm is the confirmation step of a rollback: the current
// state next to the revision's, and the form that does it.
func (c *Console) rollbackConfirm(g *gin.Context) {
	v := viewerOf(g)
	t, s, e, ver := g.Param("tenant"), g.Param("service"), g.Param("env"), g.Param("version")
	target, err := strconv.ParseInt(g.Query("revision"), 10, 64)
	if err != nil || target < 1 {
		c.fail(g, http.StatusBadRequest, "Pick a revision of the route to roll back to.")
		return
	}
	ctx := g.Request.Context()
	a, err := c.call(ctx, v, request{method: http.MethodGet, path: apiRoutePath(t, s, e, ver)})
	if err != nil {
		c.fail(g, http.StatusInternalServerError, "internal error")
		return
	}
	if !a.OK() {
		c.apiFail(g, a, "Reading the route")
		return
	}
	var r route
	_ = a.decode(&r)
	var hist historyPage
	if a, err := c.call(ctx, v, request{method: http.MethodGet, path: apiRoutePath(t, s, e, ver) + "/history?limit=1000"}); err == nil && a.OK() {
		_ = a.decode(&hist)
	}
	var rev *revision
	for i := range hist.Revisions {
		if hist.Revisions[i].Revision == target {
			rev = &hist.Revisions[i]
		}
	}
	if rev == nil {
		c.fail(g, http.StatusNotFound, fmt.Sprintf("The route has no revision %d.", target))
		return
	}
	c.render(g, http.StatusOK, "rollback", v, map[string]any{
		"Route": r, "Target": rev, "CanWrite": v.CanWrite(t), "IdemKey": uuid.NewString(),
	})
}

// routeAction posts activate, deactivate or rollback with the revision the
// page showed as If-Match: a page loaded before a newer change cannot
// overwrite it (412).
func (c *Console) routeAction(g *gin.Context) {
	v := viewerOf(g)
	t, s, e, ver := g.Param("tenant"), g.Param("service"), g.Param("env"), g.Param("version")
	verb := g.Param("verb")
	var body any
	done := map[string]string{"activate": "Activated", "deactivate": "Deactivated", "rollback": "Rolled back"}[verb]
	switch verb {
	case "activate", "deactivate":
	case "rollback":
		n, err := strconv.ParseInt(g.PostForm("revision"), 10, 64)
		if err != nil || n < 1 {
			c.fail(g, http.StatusBadRequest, "Rolling back: the form names no revision.")
			return
		}
		body = map[string]any{"revision": n}
	default:
		c.fail(g, http.StatusNotFound, "No such action.")
		return
	}
	ifMatch := g.PostForm("if_match")
	if n, err := strconv.ParseInt(ifMatch, 10, 64); err != nil || n < 1 {
		c.fail(g, http.StatusBadRequest, "The form does not say which revision it was made for; reload the route's page.")
		return
	}
	a, err := c.call(g.Request.Context(), v, request{method: http.MethodPost, path: apiRoutePath(t, s, e, ver) + "/" + verb, body: body,
		header: map[string]string{"If-Match": `"` + ifMatch + `"`, "Idempotency-Key": idemKey(g)}})
	if err != nil {
		c.fail(g, http.StatusInternalServerError, "internal error")
		return
	}
	if !a.OK() {
		c.apiFail(g, a, done)
		return
	}
	v.sess.setFlash(writeOutcome(done, a))
	afterWrite(g, a, routePath(t, s, e, ver))
}

// afterWrite sends the browser on after a write: to the mutation's page
// while it waits (an approval, its time; a new route has no page yet),
// else to the route's.
func afterWrite(g *gin.Context, a apiAnswer, routePage string) {
	var w struct {
		WorkflowID string `json:"workflow_id"`
	}
	if a.Status == http.StatusAccepted && a.decode(&w) == nil && w.WorkflowID != "" {
		g.Redirect(http.StatusSeeOther, "/ui/mutations/"+escapeSegments(w.WorkflowID))
		return
	}
	g.Redirect(http.StatusSeeOther, routePage)
}
