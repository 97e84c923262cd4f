package console

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
)

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
