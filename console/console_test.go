package console

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/trafficmanager/trafficmanager/auth"
)

// fakeAuth knows one token.
type fakeAuth struct{}

func (fakeAuth) Authenticate(_ context.Context, secret string) (*auth.Principal, error) {
	if secret == "tm_good" {
		return &auth.Principal{ID: "tok_1", Name: "ci", Role: auth.RoleWriter, TenantList: []string{"team-a"}}, nil
	}
	return nil, auth.ErrUnknownToken
}

// serve mounts a console over an API that answers one route listing.
func serve(s Settings, a Authenticator) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/api/v1/routes", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"routes": []gin.H{
			{"tenant": "team-a", "service": "web", "env": "prod", "version": "v1", "url": "javascript:alert(1)", "is_active": true, "revision": 1},
			{"tenant": "team-a", "service": "web", "env": "prod", "version": "v2", "url": "https://ok.example/", "is_active": true, "revision": 1},
		}})
	})
	r.GET("/api/v1/routes/:t/:s/:e/:v", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"tenant": "team-a", "service": "web", "env": "prod", "version": c.Param("v"),
			"url": map[string]string{"v1": "javascript:alert(1)", "v2": "https://ok.example/"}[c.Param("v")], "is_active": true, "revision": 1})
	})
	r.GET("/api/v1/routes/:t/:s/:e/:v/history", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"revisions": []gin.H{}}) })
	r.GET("/api/v1/mutations", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"mutations": []gin.H{}}) })
	New(Options{Settings: s, API: r, Auth: a}).Register(r)
	return r
}

func TestTheSessionCookieIsSecureOnlyOverTLSOrATrustedProxy(t *testing.T) {
	cases := []struct {
		name       string
		tls, trust bool
		proto      string
		secure     bool
	}{
		{name: "plain HTTP", secure: false},
		{name: "TLS", tls: true, secure: true},
		{name: "a trusted proxy that says https", trust: true, proto: "https", secure: true},
		{name: "an untrusted X-Forwarded-Proto", proto: "https", secure: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := serve(Settings{TrustForwardedProto: tc.trust}, fakeAuth{})
			req := httptest.NewRequest(http.MethodGet, "/ui/login", nil)
			if tc.tls {
				req.TLS = &tls.ConnectionState{}
			}
			if tc.proto != "" {
				req.Header.Set("X-Forwarded-Proto", tc.proto)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			cookie := rec.Header().Get("Set-Cookie")
			if got := strings.Contains(cookie, "; Secure"); got != tc.secure {
				t.Fatalf("Set-Cookie %q: Secure %v, want %v", cookie, got, tc.secure)
			}
			if !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") {
				t.Fatalf("Set-Cookie %q lacks HttpOnly or SameSite=Strict", cookie)
			}
		})
	}
}

func TestWithAuthOffNoSignInIsNeededAndOnlyHTTPURLsAreLinks(t *testing.T) {
	h := serve(Settings{}, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/routes", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /ui/routes with auth off: %d %s", rec.Code, rec.Body)
	}
	body := rec.Body.String()
	if strings.Contains(body, `href="javascript:`) {
		t.Fatal("a javascript: URL became a link")
	}
	if !strings.Contains(body, "javascript:alert(1)") {
		t.Fatal("the javascript: URL is not shown as text")
	}
	for v, link := range map[string]bool{"v1": false, "v2": true} {
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/routes/team-a/web/prod/"+v, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("route page %s: %d %s", v, rec.Code, rec.Body)
		}
		page := rec.Body.String()
		if got := strings.Contains(page, `<a href="javascript`) || strings.Contains(page, `<a href="https://ok.example/"`); got != link {
			t.Errorf("route %s: its URL is a link: %v, want %v", v, got, link)
		}
		if !link && !strings.Contains(page, "javascript:alert(1)") {
			t.Errorf("route %s: its URL is not shown as text", v)
		}
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/login", nil))
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("sign-in page with auth off: %d, want a redirect to the console", rec.Code)
	}
}

func TestAMutationLinksToItsWorkflowInTheTemporalUI(t *testing.T) {
	c := New(Options{Settings: Settings{TemporalUI: "https://temporal.example/"}})
	got := c.workflowURL("route/team-a/web/prod/v1/created/k1", "run-1")
	want := "https://temporal.example/namespaces/default/workflows/route%2Fteam-a%2Fweb%2Fprod%2Fv1%2Fcreated%2Fk1/run-1/history"
	if got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}

func TestHistoryRowsSayWhatChanged(t *testing.T) {
	two := int64(1)
	revs := []revision{
		{Revision: 3, Action: "rolled_back", URL: "https://a", IsActive: true, RollbackTo: &two},
		{Revision: 2, Action: "updated", URL: "https://b", IsActive: false},
		{Revision: 1, Action: "created", URL: "https://a", IsActive: true},
	}
	describeChanges(revs)
	want := [][]string{
		{"url https://b → https://a", "inactive → active", "state of revision 1 restored"},
		{"url https://a → https://b", "active → inactive"},
		{"created with url https://a, active"},
	}
	for i := range revs {
		if strings.Join(revs[i].Changes, "|") != strings.Join(want[i], "|") {
			t.Errorf("revision %d: %q, want %q", revs[i].Revision, revs[i].Changes, want[i])
		}
	}
}
