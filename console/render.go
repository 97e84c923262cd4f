package console

import (
	"bytes"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"
)

type pageTemplate = template.Template

// pageNames are the templates of templates/, each rendered in layout.html.
var pageNames = []string{"login", "routes", "route", "rollback", "mutations", "mutation", "rollouts", "rollout", "error"}

var funcs = template.FuncMap{
	// isHTTP decides whether a URL becomes a link: only http(s), so a
	// javascript: or data: URL shows as text even if it got stored.
	"isHTTP": func(s string) bool {
		u, err := url.Parse(s)
		return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
	},
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05Z")
		case *time.Time:
			if v == nil || v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05Z")
		}
		return ""
	},
	"steps": func() []string { return stepOrder },
	"next":  func(n int64) int64 { return n + 1 },
	"inc":   func(i int) int { return i + 1 },
	// shortID is a workflow id's key, shortened for tables (the full id
	// is the link's title and on the mutation's page).
	"shortID": func(id string) string {
		k := id[strings.LastIndexByte(id, '/')+1:]
		if len(k) > 8 {
			k = k[:8] + "…"
		}
		return k
	},
	"routePath": routePath,
	"mutationPath": func(workflowID string) string {
		return "/ui/mutations/" + escapeSegments(workflowID)
	},
}

// parsePages parses every page with the layout once, at start.
func parsePages() map[string]*pageTemplate {
	pages := make(map[string]*pageTemplate, len(pageNames))
	for _, name := range pageNames {
		pages[name] = template.Must(template.New("layout.html").Funcs(funcs).
			ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return pages
}

// render writes page with data; the layout gets the viewer and the page's
// data under .V and .D.
func (c *Console) render(g *gin.Context, status int, page string, v viewer, data map[string]any) {
	var buf bytes.Buffer
	if err := c.pages[page].Execute(&buf, map[string]any{"V": v, "D": data, "Page": page}); err != nil {
		c.log.Error("console: render", zap.String("page", page), zap.Error(err))
		g.Data(http.StatusInternalServerError, "text/plain; charset=utf-8", []byte("internal error"))
		g.Abort()
		return
	}
	g.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// fail answers an error page and stops the chain.
func (c *Console) fail(g *gin.Context, status int, msg string) {
	v := viewerOf(g)
	if v.sess == nil {
		v.sess = &session{}
	}
	c.render(g, status, "error", v, map[string]any{"Status": status, "StatusText": http.StatusText(status), "Message": msg})
	g.Abort()
}

// apiFail shows an API error answer with its own status, so a 403, 404 or
// 412 reaches the browser as the API decided it.
func (c *Console) apiFail(g *gin.Context, a apiAnswer, what string) {
	_, msg := a.Err()
	if msg == "" {
		msg = http.StatusText(a.Status)
	}
	if a.Status == http.StatusPreconditionFailed {
		msg = "This route changed after the page you acted on was loaded, so nothing was changed. " +
			"Reload the route's page to see the newer revision, then decide again. (" + msg + ")"
	}
	c.fail(g, a.Status, what+": "+msg)
}

// routePath is a route's console page; names are validated by the API, and
// escaped here anyway.
func routePath(t, s, e, v string) string {
	return "/ui/routes/" + url.PathEscape(t) + "/" + url.PathEscape(s) + "/" + url.PathEscape(e) + "/" + url.PathEscape(v)
}

// apiRoutePath is the route's API path.
func apiRoutePath(t, s, e, v string) string {
	return "/api/v1/routes/" + url.PathEscape(t) + "/" + url.PathEscape(s) + "/" + url.PathEscape(e) + "/" + url.PathEscape(v)
}

// escapeSegments escapes each '/'-separated part of a workflow id.
func escapeSegments(id string) string {
	parts := strings.Split(id, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}
