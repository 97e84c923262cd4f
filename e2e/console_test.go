package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/auth"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

// browserless is a console client without a browser: a cookie jar, no
// redirects followed (the tests look at them), and the last page's CSRF
// token.
type browserless struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
}

func newBrowserless(t *testing.T, base string) *browserless {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &browserless{t: t, base: base, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// get fetches path and remembers the page's CSRF token.
func (b *browserless) get(path string, headers ...string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.base+path, nil)
	require.NoError(b.t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := b.hc.Do(req)
	require.NoError(b.t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if m := csrfField.FindSubmatch(body); m != nil {
		b.csrf = string(m[1])
	}
	return res, string(body)
}

// post sends a form (with the remembered CSRF token unless form has one).
func (b *browserless) post(path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrf)
	}
	res, err := b.hc.PostForm(b.base+path, form)
	require.NoError(b.t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(body)
}

func (b *browserless) signIn(token string) {
	b.t.Helper()
	b.get("/ui/login")
	res, body := b.post("/ui/login", url.Values{"token": {token}})
	require.Equal(b.t, http.StatusSeeOther, res.StatusCode, body)
	require.Equal(b.t, "/ui/", res.Header.Get("Location"))
}

func secretOf(h []string) string { return strings.TrimPrefix(h[1], "Bearer ") }

func consolePath(k routes.Key) string {
	return "/ui/routes/" + k.Tenant + "/" + k.Service + "/" + k.Env + "/" + k.Version
}

// The console keeps the API's rules: a reader sees no write buttons and
// is refused when it posts anyway, a form without the session's CSRF token
// is refused, a page of an older revision cannot overwrite a newer one,
// another tenant's route does not exist, user input is text, and every
// page carries the security headers.
func TestTheConsoleKeepsTheAPIsRules(t *testing.T) {
	t.Parallel()
	ap := startApprovalPlatform(t)
	base := ap.api.URL
	k := routes.Key{Tenant: ap.tenant, Service: "web", Env: "staging", Version: "v1"}
	evil := "https://evil.example/?q=<script>alert(1)</script>"
	ap.createRoute(t, k, evil)
	other := routes.Key{Tenant: testenv.Name(t, "other"), Service: "web", Env: "staging", Version: "v1"}
	ap.createRoute(t, other, "https://other.example")
	_, readerSecret, err := ap.tokens.Create(context.Background(), "rita", auth.RoleReader, []string{ap.tenant})
	require.NoError(t, err)
	revision := func() float64 {
		res := ap.do(t, "GET", routePath(k), nil, ap.admin...)
		require.Equal(t, http.StatusOK, res.Status, res.Raw)
		return res.Body["revision"].(float64)
	}

	t.Run("every page has the security headers and the session cookie is HttpOnly and SameSite=Strict", func(t *testing.T) {
		b := newBrowserless(t, base)
		res, _ := b.get("/ui/login")
		require.Equal(t, http.StatusOK, res.StatusCode)
		csp := res.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
			require.Contains(t, csp, want)
		}
		require.NotContains(t, csp, "unsafe-inline")
		require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
		require.Equal(t, "no-referrer", res.Header.Get("Referrer-Policy"))
		cookie := res.Header.Get("Set-Cookie")
		require.Contains(t, cookie, "HttpOnly")
		require.Contains(t, cookie, "SameSite=Strict")
		require.NotContains(t, cookie, "Secure", "plain HTTP: a Secure cookie would be dropped")
		res, _ = b.get("/ui/static/console.css")
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
	})

	t.Run("a browser without a session is sent to sign in and an unknown token is refused", func(t *testing.T) {
		b := newBrowserless(t, base)
		res, _ := b.get("/ui/routes")
		require.Equal(t, http.StatusSeeOther, res.StatusCode)
		require.Equal(t, "/ui/login", res.Header.Get("Location"))
		b.get("/ui/login")
		res, body := b.post("/ui/login", url.Values{"token": {"tm_nope"}})
		require.Equal(t, http.StatusUnauthorized, res.StatusCode)
		require.Contains(t, body, "Unknown or revoked token")
		res, _ = b.post("/ui/login", url.Values{"token": {ap.adminSecret()}, "csrf": {"forged"}})
		require.Equal(t, http.StatusForbidden, res.StatusCode, "a sign-in form without its CSRF token")
	})

	t.Run("a reader sees no write buttons and is refused when it posts anyway", func(t *testing.T) {
		b := newBrowserless(t, base)
		b.signIn(readerSecret)
		res, body := b.get(consolePath(k))
		require.Equal(t, http.StatusOK, res.StatusCode, body)
		for _, button := range []string{`id="deactivate"`, `id="activate"`, "Roll back to this", `id="create"`} {
			require.NotContains(t, body, button)
		}
		_, list := b.get("/ui/routes")
		require.NotContains(t, list, `id="new-route"`)
		rev := revision()
		res, body = b.post(consolePath(k)+"/deactivate", url.Values{"if_match": {"1"}})
		require.Equal(t, http.StatusForbidden, res.StatusCode, body)
		require.Contains(t, body, "may not change routes")
		require.Equal(t, rev, revision(), "nothing changed")
	})

	t.Run("a form without the session's CSRF token is refused", func(t *testing.T) {
		b := newBrowserless(t, base)
		b.signIn(ap.adminSecret())
		b.get(consolePath(k))
		rev := revision()
		wrong := "x" + b.csrf[1:]
		if wrong == b.csrf {
			wrong = "y" + b.csrf[1:]
		}
		for name, csrf := range map[string]string{"missing": "", "wrong": wrong} {
			res, body := b.post(consolePath(k)+"/deactivate", url.Values{"csrf": {csrf}, "if_match": {"1"}})
			require.Equal(t, http.StatusForbidden, res.StatusCode, "%s: %s", name, body)
			require.Contains(t, body, "CSRF")
		}
		// Another session's token is no better than a wrong one.
		other := newBrowserless(t, base)
		other.signIn(ap.adminSecret())
		other.get("/ui/routes")
		res, _ := b.post(consolePath(k)+"/deactivate", url.Values{"csrf": {other.csrf}, "if_match": {"1"}})
		require.Equal(t, http.StatusForbidden, res.StatusCode)
		require.Equal(t, rev, revision(), "nothing changed")
	})

	t.Run("a page of an older revision cannot overwrite a newer change", func(t *testing.T) {
		b := newBrowserless(t, base)
		b.signIn(ap.adminSecret())
		_, page := b.get(consolePath(k))
		shown := regexp.MustCompile(`name="if_match" value="(\d+)"`).FindStringSubmatch(page)
		require.NotNil(t, shown, page)
		// Someone else changes the route after the page was loaded.
		res := ap.do(t, "PUT", routePath(k), map[string]any{"url": "https://newer.example"}, ap.admin...)
		require.Equal(t, http.StatusOK, res.Status, res.Raw)
		rev := revision()
		r, body := b.post(consolePath(k)+"/deactivate", url.Values{"if_match": {shown[1]}})
		require.Equal(t, http.StatusPreconditionFailed, r.StatusCode, body)
		require.Contains(t, body, "changed after the page")
		require.Equal(t, rev, revision(), "nothing changed")
		// The reloaded page acts on the newer revision.
		b.get(consolePath(k))
		_, page = b.get(consolePath(k))
		shown = regexp.MustCompile(`name="if_match" value="(\d+)"`).FindStringSubmatch(page)
		r, body = b.post(consolePath(k)+"/deactivate", url.Values{"if_match": {shown[1]}})
		require.Equal(t, http.StatusSeeOther, r.StatusCode, body)
		require.Equal(t, rev+1, revision())
	})

	t.Run("another tenant's route is not reachable by URL", func(t *testing.T) {
		b := newBrowserless(t, base)
		b.signIn(readerSecret)
		res, body := b.get(consolePath(other))
		require.Equal(t, http.StatusNotFound, res.StatusCode, body)
		require.NotContains(t, body, "other.example")
		res, body = b.get("/ui/routes?tenant=" + other.Tenant)
		require.Equal(t, http.StatusForbidden, res.StatusCode, body)
		_, body = b.get("/ui/routes")
		require.NotContains(t, body, other.Tenant)
	})

	t.Run("a route URL containing <script> renders as text", func(t *testing.T) {
		k2 := routes.Key{Tenant: ap.tenant, Service: "web", Env: "staging", Version: "v2"}
		ap.createRoute(t, k2, evil)
		b := newBrowserless(t, base)
		b.signIn(readerSecret)
		for _, path := range []string{consolePath(k2), "/ui/routes?tenant=" + ap.tenant} {
			res, body := b.get(path)
			require.Equal(t, http.StatusOK, res.StatusCode, body)
			require.NotContains(t, body, "<script>alert(1)", path)
			require.Contains(t, body, "&lt;script&gt;alert(1)&lt;/script&gt;", path)
			require.NotRegexp(t, `<script(?:\s+src="/ui/static/console.js" defer)?>[^<]`, body, "only the console's own script tag")
		}
	})

	t.Run("a browser asking for / is sent to the console, an API client gets the JSON 404", func(t *testing.T) {
		b := newBrowserless(t, base)
		res, _ := b.get("/", "Accept", "text/html,application/xhtml+xml")
		require.Equal(t, http.StatusSeeOther, res.StatusCode)
		require.Equal(t, "/ui/", res.Header.Get("Location"))
		res, body := b.get("/", "Accept", "application/json")
		require.Equal(t, http.StatusNotFound, res.StatusCode)
		require.Contains(t, body, `"not_found"`)
	})

	t.Run("signing out ends the session on the server", func(t *testing.T) {
		b := newBrowserless(t, base)
		b.signIn(readerSecret)
		u, _ := url.Parse(base + "/ui/")
		cookies := b.hc.Jar.Cookies(u)
		require.Len(t, cookies, 1)
		b.get("/ui/routes")
		res, _ := b.post("/ui/logout", url.Values{})
		require.Equal(t, http.StatusSeeOther, res.StatusCode)
		// The old cookie, replayed, is worth nothing.
		replay := newBrowserless(t, base)
		replay.hc.Jar.SetCookies(u, cookies)
		res, _ = replay.get("/ui/routes")
		require.Equal(t, http.StatusSeeOther, res.StatusCode)
		require.Equal(t, "/ui/login", res.Header.Get("Location"))
	})

	t.Run("the rollouts page lists a rollout awaiting approval and an approver rejects it there", func(t *testing.T) {
		for _, v := range []string{"v1", "v2"} {
			ap.createRoute(t, routes.Key{Tenant: ap.tenant, Service: "shop", Env: "prod", Version: v}, "https://"+v+".shop.example")
		}
		ap.requireApproval(t, "prod")
		res := ap.do(t, "POST", "/api/v1/rollouts", map[string]any{"tenant": ap.tenant, "service": "shop", "env": "prod", "to": "v2",
			"steps": []map[string]any{step(100, "")}}, append([]string{"Idempotency-Key", "console-gated"}, ap.writer...)...)
		require.Equal(t, http.StatusAccepted, res.Status, res.Raw)
		id := res.Body["id"].(string)
		b := newBrowserless(t, base)
		b.signIn(secretOf(ap.approver))
		eventually(t, 15*time.Second, func() bool {
			_, body := b.get("/ui/rollouts?status=awaiting_approval&tenant=" + ap.tenant)
			return strings.Contains(body, `href="/ui/rollouts/`+id+`"`)
		}, "the rollouts page lists the rollout awaiting approval")
		_, page := b.get("/ui/rollouts/" + id)
		require.Contains(t, page, `id="approve"`)
		r, body := b.post("/ui/mutations/rollout/"+id+"/reject", url.Values{"return": {"rollout"}, "comment": {"not now"}})
		require.Equal(t, http.StatusSeeOther, r.StatusCode, body)
		require.Equal(t, "/ui/rollouts/"+id, r.Header.Get("Location"))
		require.Equal(t, "rejected", ap.do(t, "GET", "/api/v1/rollouts/"+id, nil, ap.admin...).Body["status"])
	})
}

// adminSecret is the platform's admin token.
func (ap *approvalPlatform) adminSecret() string { return secretOf(ap.admin) }
