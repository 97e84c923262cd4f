package console

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/auth"
)

// viewer is who looks at a page: the signed-in token, or nobody in
// particular with TM_AUTH=off (p nil: everything is shown, as the API
// allows everything). It only decides which buttons to show.
type viewer struct {
	p    *auth.Principal
	sess *session
}

func (v viewer) Name() string {
	if v.p == nil {
		return "anonymous (TM_AUTH=off)"
	}
	return v.p.Name
}

func (v viewer) Role() string {
	if v.p == nil {
		return "auth off"
	}
	return string(v.p.Role)
}

// Tenants lists the tenants of a tenant-scoped token; nil for an admin or
// with auth off (every tenant).
func (v viewer) Tenants() []string {
	if v.p == nil {
		return nil
	}
	return v.p.Tenants()
}

func (v viewer) CanWrite(tenant string) bool { return v.p == nil || v.p.Allows(tenant, true) }

// CanWriteSome reports whether the viewer may write to any tenant (the
// new-route form).
func (v viewer) CanWriteSome() bool {
	return v.p == nil || v.p.Role == auth.RoleAdmin || (v.p.Role == auth.RoleWriter && len(v.p.TenantList) > 0)
}

// CanApprove: an admin or an approver of the tenant, but never the
// principal that requested the mutation (four eyes).
func (v viewer) CanApprove(tenant, requesterID string) bool {
	if v.p == nil {
		return true
	}
	return v.p.Approves(tenant) && (requesterID == "" || requesterID != v.p.ID)
}

// CanReject: as CanApprove, except that an admin may reject its own request
// (the API's rule).
func (v viewer) CanReject(tenant, requesterID string) bool {
	if v.p == nil {
		return true
	}
	return v.p.Approves(tenant) && (requesterID == "" || requesterID != v.p.ID || v.p.Role == auth.RoleAdmin)
}

func (v viewer) SignedIn() bool { return v.p != nil }

func (v viewer) CSRF() string { return v.sess.csrf }

// signedIn loads the session and its principal. With auth on, a browser
// without a signed-in session goes to /ui/login; the token is checked
// again on every request (the authenticator caches it for seconds), so a
// revoked token ends its sessions. Every POST must carry the session's
// CSRF token.
func (c *Console) signedIn(g *gin.Context) {
	id, s := c.current(g)
	if c.o.Auth == nil {
		if s == nil {
			if g.Request.Method != http.MethodGet {
				c.fail(g, http.StatusForbidden, "Your session expired. Reload the page and try again.")
				return
			}
			s = c.startSession(g, "")
		}
		g.Set("viewer", viewer{sess: s})
	} else {
		if s == nil || s.secret == "" {
			if g.Request.Method == http.MethodGet {
				g.Redirect(http.StatusSeeOther, "/ui/login")
				g.Abort()
				return
			}
			c.fail(g, http.StatusForbidden, "You are not signed in (or your session expired). Sign in and try again.")
			return
		}
		ctx, cancel := context.WithTimeout(g.Request.Context(), 3*time.Second)
		p, err := c.o.Auth.Authenticate(ctx, s.secret)
		cancel()
		if errors.Is(err, auth.ErrUnknownToken) {
			c.sessions.drop(id)
			c.setCookie(g, "", -1)
			g.Redirect(http.StatusSeeOther, "/ui/login")
			g.Abort()
			return
		}
		if err != nil {
			c.log.Warn("console: token lookup failed", zap.Error(err))
			c.fail(g, http.StatusServiceUnavailable, "Cannot check your token right now; try again shortly.")
			return
		}
		g.Set("viewer", viewer{p: p, sess: s})
	}
	if g.Request.Method == http.MethodPost && !csrfOK(g, s) {
		c.fail(g, http.StatusForbidden, "The form's CSRF token is missing or wrong. Reload the page and try again.")
		return
	}
	g.Next()
}

func viewerOf(g *gin.Context) viewer {
	v, _ := g.Get("viewer")
	vw, _ := v.(viewer)
	return vw
}

// loginPage shows the sign-in form, with a pre-sign-in session whose CSRF
// token the form carries (so another site cannot sign a browser in with its
// own token).
func (c *Console) loginPage(g *gin.Context) {
	if c.o.Auth == nil {
		g.Redirect(http.StatusSeeOther, "/ui/")
		return
	}
	_, s := c.current(g)
	if s == nil {
		s = c.startSession(g, "")
	}
	c.render(g, http.StatusOK, "login", viewer{sess: s}, map[string]any{"Flash": s.takeFlash()})
}

// login checks the token with the token store and starts a signed-in
// session under a new id.
func (c *Console) login(g *gin.Context) {
	if c.o.Auth == nil {
		g.Redirect(http.StatusSeeOther, "/ui/")
		return
	}
	_, s := c.current(g)
	if !csrfOK(g, s) {
		c.fail(g, http.StatusForbidden, "The sign-in form expired. Reload the page and try again.")
		return
	}
	secret := strings.TrimSpace(g.PostForm("token"))
	ctx, cancel := context.WithTimeout(g.Request.Context(), 3*time.Second)
	defer cancel()
	var p *auth.Principal
	var err error
	if secret == "" {
		err = auth.ErrUnknownToken
	} else {
		p, err = c.o.Auth.Authenticate(ctx, secret)
	}
	switch {
	case errors.Is(err, auth.ErrUnknownToken):
		c.render(g, http.StatusUnauthorized, "login", viewer{sess: s}, map[string]any{"Flash": "Unknown or revoked token."})
		return
	case err != nil:
		c.log.Warn("console: sign-in lookup failed", zap.Error(err))
		c.render(g, http.StatusServiceUnavailable, "login", viewer{sess: s}, map[string]any{"Flash": "Cannot check the token right now; try again shortly."})
		return
	case p.Role == auth.RoleResolver:
		c.render(g, http.StatusForbidden, "login", viewer{sess: s}, map[string]any{"Flash": "A resolver token only resolves routes; sign in with an admin, writer, approver or reader token."})
		return
	}
	c.startSession(g, secret)
	c.log.Info("console: signed in", zap.String("token_id", p.ID), zap.String("name", p.Name))
	g.Redirect(http.StatusSeeOther, "/ui/")
}

// logout forgets the session on the server and in the browser.
func (c *Console) logout(g *gin.Context) {
	id, _ := c.current(g)
	c.sessions.drop(id)
	c.setCookie(g, "", -1)
	if c.o.Auth == nil {
		g.Redirect(http.StatusSeeOther, "/ui/")
		return
	}
	g.Redirect(http.StatusSeeOther, "/ui/login")
}

// tenantChoices are the tenants a filter offers: the token's own.
func tenantChoices(v viewer) []string {
	t := slices.Clone(v.Tenants())
	slices.Sort(t)
	return t
}
