// Package console is the web console at /ui/ on the api: routes, their
// history and rollback, pending and recent mutations with approve, reject
// and cancel, rollouts with pause, resume, promote and abort, links into
// the Temporal UI.
//
// The console has no rules of its own: every read and write is a request to
// the api's own handler, in process, with the signed-in token as its bearer
// token (or none with TM_AUTH=off). Tokens, roles, tenant scoping,
// If-Match, Idempotency-Key and error answers are therefore the API's. The
// console only decides which buttons to show; the API decides what happens
// when a form is posted anyway.
//
// Pages are html/template (escaping every value, route URLs and names
// included) embedded in the binary with a small CSS file and a few lines of
// JavaScript; there is no build step.
package console

import (
	"context"
	"embed"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/auth"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/*
var staticFS embed.FS

// Authenticator resolves a token (auth.Authenticator); the api's own.
type Authenticator interface {
	Authenticate(ctx context.Context, secret string) (*auth.Principal, error)
}

// Settings are the console's configuration (config.Config's TM_* values).
type Settings struct {
	// TemporalUI is the base URL of the Temporal UI that mutation links
	// point at (TM_TEMPORAL_UI_URL); default DefaultTemporalUI.
	TemporalUI string
	// Namespace is the Temporal namespace of the workflows; default "default".
	Namespace string
	// TrustForwardedProto makes "X-Forwarded-Proto: https" mark the
	// session cookie Secure, for an api behind a TLS-terminating proxy
	// (the header is the client's to set when nothing strips it).
	TrustForwardedProto bool
	// SessionIdle and SessionMax bound a session: idle time and absolute
	// lifetime (defaults 1h and 12h).
	SessionIdle, SessionMax time.Duration
}

// DefaultTemporalUI is the dev stack's Temporal UI.
const DefaultTemporalUI = "http://127.0.0.1:8233"

// Options build a Console.
type Options struct {
	Settings
	// API is the api's handler: every request of the console goes to it.
	API http.Handler
	// Auth is the api's authenticator; nil means TM_AUTH=off (no sign-in).
	Auth Authenticator
	Log  *zap.Logger
}

// Console serves /ui/.
type Console struct {
	o        Options
	sessions *sessions
	pages    map[string]*pageTemplate
	log      *zap.Logger
}

// New returns a console; Register mounts it.
func New(o Options) *Console {
	if o.TemporalUI == "" {
		o.TemporalUI = DefaultTemporalUI
	}
	o.TemporalUI = strings.TrimRight(o.TemporalUI, "/")
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.SessionIdle <= 0 {
		o.SessionIdle = time.Hour
	}
	if o.SessionMax <= 0 {
		o.SessionMax = 12 * time.Hour
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	return &Console{o: o, sessions: newSessions(o.SessionIdle, o.SessionMax), pages: parsePages(), log: o.Log}
}

// Register mounts /ui/ and its pages on r.
func (c *Console) Register(r gin.IRouter) {
	ui := r.Group("/ui", securityHeaders)
	ui.StaticFileFS("/static/console.css", "static/console.css", http.FS(staticFS))
	ui.StaticFileFS("/static/console.js", "static/console.js", http.FS(staticFS))
	ui.GET("/login", c.loginPage)
	ui.POST("/login", c.login)

	in := ui.Group("", c.signedIn)
	in.GET("/", c.routesPage)
	in.POST("/logout", c.logout)
	in.GET("/routes", c.routesPage)
	in.POST("/routes", c.createRoute)
	in.GET("/routes/:tenant/:service/:env/:version", c.routePage)
	in.GET("/routes/:tenant/:service/:env/:version/rollback", c.rollbackConfirm)
	in.POST("/routes/:tenant/:service/:env/:version/:verb", c.routeAction)
	in.GET("/mutations", c.mutationsPage)
	in.GET("/mutations/*id", c.mutationPage)
	in.POST("/mutations/*id", c.decide)
	in.GET("/rollouts", c.rolloutsPage)
	in.POST("/rollouts", c.startRollout)
	in.GET("/rollouts/*id", c.rolloutPage)
	in.POST("/rollouts/*id", c.actOnRollout)
}

// securityHeaders are on every console answer: a strict CSP (no inline
// script or style, nothing from elsewhere, no framing), no MIME sniffing,
// no Referer leaving the console, and nothing cached (pages show tokens'
// views of routes).
func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	c.Next()
}

// workflowURL is a mutation's workflow in the Temporal UI.
func (c *Console) workflowURL(workflowID, runID string) string {
	u := c.o.TemporalUI + "/namespaces/" + url.PathEscape(c.o.Namespace) + "/workflows/" + url.PathEscape(workflowID)
	if runID != "" {
		u += "/" + url.PathEscape(runID)
	}
	return u + "/history"
}
