package console

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// serveRollouts mounts a console over an API with one rollout awaiting
// approval; queries records the listing's query strings.
func serveRollouts(queries *[]string) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/api/v1/rollouts", func(c *gin.Context) {
		*queries = append(*queries, c.Request.URL.RawQuery)
		c.JSON(http.StatusOK, gin.H{"rollouts": []gin.H{{
			"id": "team-a/web/prod/k1", "workflow_id": "rollout/team-a/web/prod/k1", "status": "awaiting_approval",
			"service": "web", "env": "prod", "to": "<script>x</script>", "started_at": "2026-11-29T21:00:00Z",
		}}, "next_cursor": "c2"})
	})
	r.GET("/api/v1/rollouts/:t/:s/:e/:k", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"id": "team-a/web/prod/k1", "workflow_id": "rollout/team-a/web/prod/k1",
			"key": gin.H{"tenant": "team-a", "service": "web", "env": "prod"}, "to": "v2", "status": "awaiting_approval",
			"step": 0, "weight": 0, "steps": []gin.H{{"weight": 100, "state": "pending"}},
			"requested_by": gin.H{"id": "tok_9", "name": "ci"}, "expires_at": "2026-11-30T21:00:00Z"})
	})
	New(Options{API: r}).Register(r)
	return r
}

func TestTheRolloutsPageListsTheTenantsRolloutsFromTheAPI(t *testing.T) {
	var queries []string
	h := serveRollouts(&queries)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/rollouts?tenant=team-a&status=awaiting_approval", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /ui/rollouts: %d %s", rec.Code, rec.Body)
	}
	if len(queries) != 1 || queries[0] != "limit=30&status=awaiting_approval&tenant=team-a" {
		t.Fatalf("the listing asked the API %q", queries)
	}
	page := rec.Body.String()
	for _, want := range []string{
		`href="/ui/rollouts/team-a/web/prod/k1"`, "awaiting_approval", `/ui/rollouts/team-a/web/prod/k1#decide`,
		`&lt;script&gt;x&lt;/script&gt;`, `<option value="awaiting_approval" selected>`,
		`id="rollouts-next"`, "cursor=c2",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(page, "<script>x</script>") {
		t.Error("a listed field is not escaped")
	}
}

func TestARolloutAwaitingApprovalHasTheDecisionsOfAMutation(t *testing.T) {
	var queries []string
	h := serveRollouts(&queries)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/rollouts/team-a/web/prod/k1", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET the rollout: %d %s", rec.Code, rec.Body)
	}
	page := rec.Body.String()
	for _, want := range []string{
		`id="decide"`, `name="csrf"`, `name="return" value="rollout"`,
		`formaction="/ui/mutations/rollout/team-a/web/prod/k1/approve"`,
		`formaction="/ui/mutations/rollout/team-a/web/prod/k1/reject"`,
		`action="/ui/mutations/rollout/team-a/web/prod/k1/cancel"`, "Approval expires",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(page, `id="pause"`) {
		t.Error("a rollout awaiting approval offers pause")
	}
}
