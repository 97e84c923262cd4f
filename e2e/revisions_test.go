package e2e

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

func errorCode(res response) any {
	e, _ := res.Body["error"].(map[string]any)
	return e["code"]
}

// GET route's ETag is its revision; a write with a stale If-Match is 412
// and changes nothing, one with the current revision applies, and of two
// writers with the same If-Match exactly one wins.
func TestIfMatchWritesApplyOnlyToTheRevisionTheyName(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	k := routes.Key{Tenant: testenv.Name(t, "team"), Service: "payments", Env: "prod", Version: "v1"}
	create(t, p, k, "https://a.example", true)
	path := routePath(k)

	got := p.do(t, "GET", path, nil)
	require.Equal(t, http.StatusOK, got.Status, got.Raw)
	require.Equal(t, `"1"`, got.Header.Get("ETag"))

	stale := p.do(t, "PUT", path, map[string]any{"url": "https://b.example"}, "If-Match", `"2"`)
	require.Equal(t, http.StatusPreconditionFailed, stale.Status, stale.Raw)
	require.Equal(t, "precondition_failed", errorCode(stale))
	again := p.do(t, "POST", path+"/deactivate", nil, "If-Match", "5")
	require.Equal(t, http.StatusPreconditionFailed, again.Status, again.Raw)
	got = p.do(t, "GET", path, nil)
	require.Equal(t, "https://a.example", got.Body["url"])
	require.Equal(t, true, got.Body["is_active"])
	require.Equal(t, `"1"`, got.Header.Get("ETag"), "nothing changed")

	for _, bad := range []string{"abc", `"0"`, "-1", `W/"1"`, "*"} {
		res := p.do(t, "PUT", path, map[string]any{"url": "https://b.example"}, "If-Match", bad)
		require.Equal(t, http.StatusBadRequest, res.Status, "If-Match %s: %s", bad, res.Raw)
		require.Equal(t, "invalid_argument", errorCode(res))
	}

	ok := p.do(t, "PUT", path, map[string]any{"url": "https://b.example"}, "If-Match", `"1"`)
	require.Equal(t, http.StatusOK, ok.Status, ok.Raw)
	require.EqualValues(t, 2, ok.Body["route"].(map[string]any)["revision"])

	// Two writers both read revision 2.
	var wg sync.WaitGroup
	answers := make([]response, 2)
	for i, url := range []string{"https://c.example", "https://d.example"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = p.do(t, "PUT", path, map[string]any{"url": url}, "If-Match", `"2"`)
		}()
	}
	wg.Wait()
	statuses := []int{answers[0].Status, answers[1].Status}
	require.ElementsMatch(t, []int{http.StatusOK, http.StatusPreconditionFailed}, statuses, "%s / %s", answers[0].Raw, answers[1].Raw)
	got = p.do(t, "GET", path, nil)
	require.Equal(t, `"3"`, got.Header.Get("ETag"))

	// A rejected mutation's key answers the same rejection later.
	rej := p.do(t, "POST", path+"/activate", nil, "If-Match", "1", "Idempotency-Key", "act-stale")
	require.Equal(t, http.StatusPreconditionFailed, rej.Status, rej.Raw)
	rej = p.do(t, "POST", path+"/activate", nil, "If-Match", "1", "Idempotency-Key", "act-stale")
	require.Equal(t, http.StatusPreconditionFailed, rej.Status, rej.Raw)
	requireConsistentTenant(t, p, k.Tenant)
}
