package console

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// mutationsPage shows the mutations waiting (for an approval or their
// time) with the decisions the viewer may take, and the recent ones.
func (c *Console) mutationsPage(g *gin.Context) {
	v := viewerOf(g)
	tenant := strings.TrimSpace(g.Query("tenant"))
	pending := c.pendingOf(g, v, tenant, nil)
	q := url.Values{"limit": {"30"}}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	if st := g.Query("status"); st != "" {
		q.Set("status", st)
	}
	a, err := c.call(g.Request.Context(), v, request{method: http.MethodGet, path: "/api/v1/mutations?" + q.Encode()})
	if err != nil {
		c.fail(g, http.StatusInternalServerError, "internal error")
		return
	}
	if !a.OK() {
		c.apiFail(g, a, "Listing mutations")
		return
	}
	var recent mutationList
	_ = a.decode(&recent)
	c.render(g, http.StatusOK, "mutations", v, map[string]any{
		"Pending": pending, "Recent": c.withStatus(g, v, recent.Mutations), "Tenant": tenant, "Status": g.Query("status"),
		"Tenants": tenantChoices(v), "Flash": v.sess.takeFlash(), "Temporal": c.workflowURL,
	})
}

// mutationPage shows one mutation: status, steps, propagation, who asked
// and decided, and approve/reject/cancel for whoever may.
func (c *Console) mutationPage(g *gin.Context) {
	v := viewerOf(g)
	id := strings.TrimPrefix(g.Param("id"), "/")
	var m mutationStatus
	if !c.read(g, v, "/api/v1/mutations/"+escapeSegments(id), "Reading the mutation", &m) {
		return
	}
	if len(m.RouteRaw) > 0 {
		_ = json.Unmarshal(m.RouteRaw, &m.Route)
	}
	if m.Route.Tenant == "" {
		m.Route.Tenant = m.Tenant
	}
	c.render(g, http.StatusOK, "mutation", v, map[string]any{
		"M": m, "TemporalURL": c.workflowURL(m.WorkflowID, m.RunID), "Flash": v.sess.takeFlash(),
	})
}

// decide posts approve, reject or cancel (POST /ui/mutations/{id}/{verb})
// to the API, which decides who may.
func (c *Console) decide(g *gin.Context) {
	v := viewerOf(g)
	id := strings.TrimPrefix(g.Param("id"), "/")
	i := strings.LastIndexByte(id, '/')
	if i < 0 {
		c.fail(g, http.StatusNotFound, "No such action.")
		return
	}
	wfID, verb := id[:i], id[i+1:]
	done := map[string]string{"approve": "Approved", "reject": "Rejected", "cancel": "Cancelled"}[verb]
	if done == "" {
		c.fail(g, http.StatusNotFound, "No such action.")
		return
	}
	var body any
	if comment := strings.TrimSpace(g.PostForm("comment")); comment != "" && verb != "cancel" {
		body = map[string]string{"comment": comment}
	}
	a, err := c.call(g.Request.Context(), v, request{method: http.MethodPost, path: "/api/v1/mutations/" + escapeSegments(wfID) + "/" + verb, body: body})
	if err != nil {
		c.fail(g, http.StatusInternalServerError, "internal error")
		return
	}
	if !a.OK() {
		c.apiFail(g, a, done)
		return
	}
	var m mutationStatus
	_ = a.decode(&m)
	v.sess.setFlash(done + ": the mutation is now " + m.Status + ".")
	back := "/ui/mutations/" + escapeSegments(wfID)
	switch r := g.PostForm("return"); {
	case r == "list":
		back = "/ui/mutations"
	case r == "rollout" && strings.HasPrefix(wfID, "rollout/"):
		// Decided from the rollout's page: back to it.
		back = "/ui/rollouts/" + escapeSegments(strings.TrimPrefix(wfID, "rollout/"))
	}
	g.Redirect(http.StatusSeeOther, back)
}

// recentMutation is a listed mutation with its status (steps and
// propagation) when it could be read in time.
type recentMutation struct {
	listedMutation
	S *mutationStatus
}

// statusesShown bounds how many recent mutations get their status read
// (one workflow query each) for the mutations page.
const statusesShown = 10

// withStatus reads the status of the first statusesShown mutations, at
// most four at a time and within two seconds in all; the others (and any
// that did not answer) link to their page.
func (c *Console) withStatus(g *gin.Context, v viewer, ms []listedMutation) []recentMutation {
	out := make([]recentMutation, len(ms))
	ctx, cancel := context.WithTimeout(g.Request.Context(), 2*time.Second)
	defer cancel()
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, m := range ms {
		out[i].listedMutation = m
		if i >= statusesShown {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			a, err := c.call(ctx, v, request{method: http.MethodGet, path: "/api/v1/mutations/" + escapeSegments(m.WorkflowID)})
			if err != nil || !a.OK() {
				return
			}
			var st mutationStatus
			if a.decode(&st) == nil {
				out[i].S = &st
			}
		}()
	}
	wg.Wait()
	return out
}
