package console

import (
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
	var page routePage
	if !c.read(g, v, "/api/v1/routes?"+q.Encode(), "Listing routes", &page) {
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

// routePage shows a route: its current state, its history with what
// changed, its pending mutations, and the actions the viewer may take.
func (c *Console) routePage(g *gin.Context) {
	v := viewerOf(g)
	t, s, e, ver := g.Param("tenant"), g.Param("service"), g.Param("env"), g.Param("version")
	ctx := g.Request.Context()
	var r route
	if !c.read(g, v, apiRoutePath(t, s, e, ver), "Reading the route", &r) {
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
