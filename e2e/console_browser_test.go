package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/resolver"
	"github.com/trafficmanager/trafficmanager/routes"
)

// browser is one headless chromium (its own profile, so its own cookies)
// driven through the DevTools protocol.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
}

// chromiumPath finds Debian's chromium (installed by `go tool task setup`).
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: run `go tool task setup` (it installs Debian's chromium)")
	return ""
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.WindowSize(1280, 860),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // chromium refuses to run as root with its sandbox
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first Do starts chromium; it lives as long as ctx (no timeout
	// here: it would stop the browser).
	require.NoError(t, chromedp.Do(ctx), "start chromium")
	// The console's only script asks before a deactivation, a reject or a
	// cancel: say yes, as the user would.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return &browser{t: t, ctx: ctx, base: base}
}

// step bounds one interaction.
func (b *browser) step() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, 30*time.Second)
}

func (b *browser) run(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	require.NoError(b.t, chromedp.Do(ctx, actions...))
}

// text is the text of the first element matching the CSS selector sel.
func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(b.t, err, sel)
	return strings.TrimSpace(s)
}

// awaitText reloads until sel's text contains want (pages do not refresh
// themselves).
func (b *browser) awaitText(sel, want string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if got := b.text(sel); strings.Contains(got, want) {
			return
		} else if time.Now().After(deadline) {
			b.t.Fatalf("%s says %q, want %q", sel, got, want)
		}
		time.Sleep(200 * time.Millisecond)
		b.run(chromedp.Reload())
	}
}

func (b *browser) has(sel string) bool {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf("document.querySelector(%q) !== null", sel)))
	require.NoError(b.t, err)
	return ok
}

func (b *browser) location() string {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	u, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(b.t, err)
	return u
}

func (b *browser) signIn(secret, name string) {
	b.t.Helper()
	b.run(chromedp.Navigate(b.base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	b.shot("login")
	b.run(chromedp.SendKeys(chromedp.CSS("#token"), secret), chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#whoami")))
	require.Equal(b.t, name, b.text("#whoami"))
}

// createRoute fills the new-route form of the routes page.
func (b *browser) createRoute(service, env, version, url string) {
	b.t.Helper()
	b.run(chromedp.Navigate(b.base+"/ui/routes"), chromedp.WaitVisible(chromedp.CSS("#create")),
		chromedp.SendKeys(chromedp.CSS("#n-service"), service),
		chromedp.SendKeys(chromedp.CSS("#n-env"), env),
		chromedp.SendKeys(chromedp.CSS("#n-version"), version),
		chromedp.SendKeys(chromedp.CSS("#n-url"), url),
		chromedp.Click(chromedp.CSS("#create")),
		chromedp.WaitVisible(chromedp.CSS("#flash")))
}

// shot saves a screenshot of the page as docs/console/<name>.png when
// TM_CONSOLE_SCREENSHOTS names the directory (relative to the module root).
func (b *browser) shot(name string) {
	b.t.Helper()
	dir := os.Getenv("TM_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join("..", dir) // tests run in e2e/
	}
	require.NoError(b.t, os.MkdirAll(dir, 0o755))
	ctx, cancel := b.step()
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(b.t, err)
	require.NoError(b.t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
}

// resolves polls the resolver until it answers url for the route, or (url
// "") until it answers no route.
func resolves(t *testing.T, resolverURL string, k routes.Key, url string) {
	t.Helper()
	u := resolverURL + resolver.ResolvePrefix + k.Tenant + "/" + k.Service + "/" + k.Env + "/" + k.Version
	hc := &http.Client{Timeout: 5 * time.Second}
	if url != "" {
		_, err := awaitURL(hc, u, url, time.Now().Add(20*time.Second))
		require.NoError(t, err, "resolve %s", u)
		return
	}
	eventually(t, 20*time.Second, func() bool {
		res, err := hc.Get(u)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusNotFound
	}, "the resolver still resolves the deactivated route")
}

// In a real browser (headless chromium): a writer signs in, creates a
// route from the form and sees it resolve, deactivates it and rolls it
// back to its first revision through the confirmation page; a write that
// needs approval waits, its requester is offered no approval, and a second
// user (an approver) approves it from the mutations page, after which it
// resolves. TM_CONSOLE_SCREENSHOTS=docs/console saves each page.
func TestTheConsoleInABrowser(t *testing.T) {
	t.Parallel()
	ap := startApprovalPlatform(t)
	resolverURL := startResolver(t, ap.platform)
	ap.requireApproval(t, "prod")
	for i, svc := range []string{"payments", "search", "checkout-api"} {
		ap.createRoute(t, routes.Key{Tenant: ap.tenant, Service: svc, Env: "staging", Version: fmt.Sprintf("v%d", i+1)},
			fmt.Sprintf("https://%s-v%d.staging.internal", svc, i+1))
	}

	writer := newBrowser(t, ap.api.URL)
	writer.signIn(secretOf(ap.writer), "ci")

	// Create from the form; the resolver answers it.
	k := routes.Key{Tenant: ap.tenant, Service: "checkout", Env: "staging", Version: "v1"}
	writer.createRoute(k.Service, k.Env, k.Version, "https://checkout-v1.internal")
	require.Equal(t, "1", writer.text("#route-revision"))
	require.Contains(t, writer.text("#route-state"), "active")
	resolves(t, resolverURL, k, "https://checkout-v1.internal")

	// Deactivate (the page asks first), then roll back to revision 1.
	writer.run(chromedp.Click(chromedp.CSS("#deactivate")), chromedp.WaitVisible(chromedp.CSS("#activate")))
	require.Equal(t, "2", writer.text("#route-revision"))
	resolves(t, resolverURL, k, "")
	writer.run(chromedp.Click(chromedp.CSS("#rollback-1")), chromedp.WaitVisible(chromedp.CSS("#confirm-rollback")))
	writer.shot("rollback")
	writer.run(chromedp.Click(chromedp.CSS("#confirm-rollback")), chromedp.WaitVisible(chromedp.CSS("#deactivate")))
	require.Equal(t, "3", writer.text("#route-revision"))
	require.Contains(t, writer.text("#history"), "state of revision 1 restored")
	resolves(t, resolverURL, k, "https://checkout-v1.internal")
	writer.shot("route")
	writer.run(chromedp.Navigate(ap.api.URL + "/ui/routes"))
	writer.shot("routes")

	// A prod write waits for approval; its requester may cancel it but
	// not approve it.
	prod := routes.Key{Tenant: ap.tenant, Service: "checkout", Env: "prod", Version: "v1"}
	writer.createRoute(prod.Service, prod.Env, prod.Version, "https://checkout-v1.prod.internal")
	require.Contains(t, writer.text("#flash"), "Waiting for approval")
	require.Contains(t, writer.text("#mutation-status"), "awaiting_approval")
	require.False(t, writer.has("#approve"), "the requester is offered no approval")
	require.True(t, writer.has("#cancel"))
	mutationPage := writer.location()

	approver := newBrowser(t, ap.api.URL)
	approver.signIn(secretOf(ap.approver), "alice")
	approver.run(chromedp.Navigate(ap.api.URL + "/ui/mutations"))
	approver.awaitText("#pending", "checkout/prod/v1")
	approver.shot("mutations")
	approver.run(chromedp.Navigate(mutationPage), chromedp.WaitVisible(chromedp.CSS("#approve")),
		chromedp.SendKeys(chromedp.CSS("#comment"), "checked the prod URL"))
	approver.shot("mutation")
	approver.run(chromedp.Click(chromedp.CSS("#approve")), chromedp.WaitVisible(chromedp.CSS("#approved-by")))
	require.Equal(t, "alice", approver.text("#approved-by"))
	approver.awaitText("#mutation-status", "completed")
	resolves(t, resolverURL, prod, "https://checkout-v1.prod.internal")
	approver.shot("mutation-approved")
}

// A writer starts a rollout from the console's form, watches it hold at
// its first step, pauses it and aborts it (the page asks first); the
// rollout ends aborted.
func TestARolloutIsStartedPausedAndAbortedFromTheConsole(t *testing.T) {
	t.Parallel()
	ap := startApprovalPlatform(t)
	for _, v := range []string{"v1", "v2"} {
		ap.createRoute(t, routes.Key{Tenant: ap.tenant, Service: "checkout", Env: "staging", Version: v}, "https://"+v+".checkout.internal")
	}
	writer := newBrowser(t, ap.api.URL)
	writer.signIn(secretOf(ap.writer), "ci")
	writer.run(chromedp.Navigate(ap.api.URL+"/ui/rollouts"), chromedp.WaitVisible(chromedp.CSS("#start-rollout")),
		chromedp.SendKeys(chromedp.CSS("#r-service"), "checkout"),
		chromedp.SendKeys(chromedp.CSS("#r-env"), "staging"),
		chromedp.SendKeys(chromedp.CSS("#r-to"), "v2"),
		chromedp.Clear(chromedp.CSS("#r-steps")),
		chromedp.SendKeys(chromedp.CSS("#r-steps"), "10:1h, 50:1h, 100"))
	writer.shot("rollouts")
	writer.run(chromedp.Click(chromedp.CSS("#start-rollout")), chromedp.WaitVisible(chromedp.CSS("#rollout-status")))
	writer.awaitText("#rollout-weight", "10%")
	require.Contains(t, writer.text("#rollout-status"), "running")
	writer.shot("rollout")
	writer.run(chromedp.Click(chromedp.CSS("#pause")), chromedp.WaitVisible(chromedp.CSS("#resume")))
	require.Contains(t, writer.text("#rollout-status"), "paused")
	writer.run(chromedp.Click(chromedp.CSS("#abort")), chromedp.WaitNotPresent(chromedp.CSS("#resume")))
	writer.awaitText("#rollout-status", "aborted")
	id := strings.TrimPrefix(writer.location(), ap.api.URL+"/ui/rollouts/")
	res := ap.do(t, "GET", "/api/v1/rollouts/"+id, nil, ap.admin...)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	require.Equal(t, "aborted", res.Body["status"], res.Raw)
	writer.run(chromedp.Navigate(ap.api.URL + "/ui/rollouts"))
	require.Contains(t, writer.text("#started"), id, "the session lists the rollouts it started")
}
