package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/internal/devstack"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

func TestCreateAndDeactivateEndWithRowInvalidationOneEventAndOneAuditDocument(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	ctx := context.Background()
	k := routes.Key{Tenant: testenv.Name(t, "team"), Service: "payments", Env: "prod", Version: "v2"}
	// A negative entry cached before the route exists must be dropped by the create.
	require.NoError(t, p.rdb.Set(ctx, cache.Key(k), `{"found":false,"revision":0}`, time.Minute).Err())

	res := p.do(t, "POST", "/api/v1/routes", map[string]any{
		"tenant": k.Tenant, "service": k.Service, "env": k.Env, "version": k.Version,
		"url": "https://payments.example/v2", "changed_by": "alice@example.com",
	})
	require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	require.Equal(t, "created", res.Body["action"])
	require.Equal(t, true, res.Body["changed"])
	createdID := res.Body["event_id"].(string)
	require.NotEmpty(t, createdID)
	require.True(t, strings.HasPrefix(res.Body["workflow_id"].(string), "route/"+k.Tenant+"/payments/prod/v2/created/"))
	route := res.Body["route"].(map[string]any)
	require.EqualValues(t, 1, route["revision"])
	require.Equal(t, true, route["is_active"])

	// The Postgres row is there at once: the answer came after the commit.
	got := p.do(t, "GET", "/api/v1/routes/"+k.Tenant+"/payments/prod/v2", nil)
	require.Equal(t, http.StatusOK, got.Status, got.Raw)
	require.Equal(t, "https://payments.example/v2", got.Body["url"])

	eventually(t, 10*time.Second, func() bool { return p.auditDocs(t, createdID) == 1 }, "audit document of the create")
	eventually(t, 10*time.Second, func() bool { return p.rdb.Exists(ctx, cache.Key(k)).Val() == 0 }, "redis key dropped")

	res = p.do(t, "POST", "/api/v1/routes/"+k.Tenant+"/payments/prod/v2/deactivate", nil, "X-Changed-By", "bob")
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	require.Equal(t, "deactivated", res.Body["action"])
	deactivatedID := res.Body["event_id"].(string)
	require.EqualValues(t, 2, res.Body["route"].(map[string]any)["revision"])

	wfID := res.Body["workflow_id"].(string)
	eventually(t, 10*time.Second, func() bool {
		st := p.do(t, "GET", "/api/v1/mutations/"+wfID, nil)
		return st.Status == 200 && st.Body["status"] == "completed"
	}, "deactivation workflow completed")
	st := p.do(t, "GET", "/api/v1/mutations/"+wfID, nil)
	require.Equal(t, map[string]any{"committed": "done", "invalidated": "done", "published": "done", "audited": "done"}, st.Body["steps"])

	evs := p.eventsFor(t, k)
	require.Len(t, evs, 2, "exactly one event per change")
	require.Equal(t, createdID, evs[0].EventID)
	require.Equal(t, deactivatedID, evs[1].EventID)
	require.Equal(t, "bob", evs[1].ChangedBy)
	require.Equal(t, "https://payments.example/v2", evs[1].PreviousURL)
	require.EqualValues(t, 2, evs[1].Revision)
	require.False(t, evs[1].IsActive)
	require.EqualValues(t, 1, p.auditDocs(t, createdID))
	require.EqualValues(t, 1, p.auditDocs(t, deactivatedID))

	// Deactivating again changes nothing: no event, no audit.
	res = p.do(t, "POST", "/api/v1/routes/"+k.Tenant+"/payments/prod/v2/deactivate", nil)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	require.Equal(t, false, res.Body["changed"])
	require.EqualValues(t, 2, res.Body["route"].(map[string]any)["revision"])
	time.Sleep(300 * time.Millisecond)
	require.Len(t, p.eventsFor(t, k), 2)
}

func TestTheSameIdempotencyKeyIsTheSameMutation(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	tenant := testenv.Name(t, "team")
	body := map[string]any{"tenant": tenant, "service": "payments", "env": "prod", "version": "v1", "url": "https://a.example"}

	first := p.do(t, "POST", "/api/v1/routes", body, "Idempotency-Key", "req-42")
	require.Equal(t, http.StatusCreated, first.Status, first.Raw)
	second := p.do(t, "POST", "/api/v1/routes", body, "Idempotency-Key", "req-42")
	require.Equal(t, http.StatusCreated, second.Status, second.Raw)
	require.Equal(t, first.Body["event_id"], second.Body["event_id"])
	require.Equal(t, first.Body["workflow_id"], second.Body["workflow_id"])
	require.Equal(t, first.Body["route"], second.Body["route"])

	// After the workflow has finished, the key still answers with the first result.
	eventually(t, 10*time.Second, func() bool {
		return p.do(t, "GET", "/api/v1/mutations/"+first.Body["workflow_id"].(string), nil).Body["status"] == "completed"
	}, "workflow completed")
	third := p.do(t, "POST", "/api/v1/routes", body, "Idempotency-Key", "req-42")
	require.Equal(t, http.StatusCreated, third.Status, third.Raw)
	require.Equal(t, first.Body["event_id"], third.Body["event_id"])

	k := routes.Key{Tenant: tenant, Service: "payments", Env: "prod", Version: "v1"}
	require.Len(t, p.eventsFor(t, k), 1)
}

func TestPermanentErrorsAreAnsweredAtOnceWithTheErrorShape(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	tenant := testenv.Name(t, "team")
	create := func(url string) map[string]any {
		return map[string]any{"tenant": tenant, "service": "payments", "env": "prod", "version": "v1", "url": url}
	}
	require.Equal(t, http.StatusCreated, p.do(t, "POST", "/api/v1/routes", create("https://a.example")).Status)

	tests := []struct {
		name, method, path string
		body               any
		headers            []string
		status             int
		code               string
	}{
		{"an existing route with another url is a conflict", "POST", "/api/v1/routes", create("https://b.example"), nil, 409, "conflict"},
		{"updating a missing route is not found", "PUT", "/api/v1/routes/" + tenant + "/payments/prod/v9", map[string]any{"url": "https://x.example"}, nil, 404, "route_not_found"},
		{"activating a missing route is not found", "POST", "/api/v1/routes/" + tenant + "/payments/prod/v9/activate", nil, nil, 404, "route_not_found"},
		{"a bad tenant name is invalid", "POST", "/api/v1/routes", map[string]any{"tenant": "Team A", "service": "s", "env": "e", "version": "v", "url": "https://x.example"}, nil, 400, "invalid_argument"},
		{"a non-http url is invalid", "POST", "/api/v1/routes", create("ftp://x.example"), nil, 400, "invalid_argument"},
		{"a missing url is invalid", "POST", "/api/v1/routes", map[string]any{"tenant": tenant, "service": "s", "env": "e", "version": "v"}, nil, 400, "invalid_argument"},
		{"an unknown field is invalid", "POST", "/api/v1/routes", map[string]any{"tenant": tenant, "service": "s", "env": "e", "version": "v", "url": "https://x.example", "colour": "red"}, nil, 400, "invalid_argument"},
		{"malformed JSON is invalid", "POST", "/api/v1/routes", `{"tenant":`, nil, 400, "invalid_argument"},
		{"a body over 64 KiB is refused", "POST", "/api/v1/routes", `{"tenant":"` + strings.Repeat("a", 70_000) + `"}`, nil, 413, "invalid_argument"},
		{"a bad idempotency key is invalid", "POST", "/api/v1/routes", create("https://a.example"), []string{"Idempotency-Key", "has spaces"}, 400, "invalid_argument"},
		{"a bad version in the path is invalid", "POST", "/api/v1/routes/" + tenant + "/payments/prod/v%2F1/deactivate", nil, nil, 400, "invalid_argument"},
		{"an unknown mutation is not found", "GET", "/api/v1/mutations/route/" + tenant + "/a/b/c/created/nope", nil, nil, 404, "mutation_not_found"},
		{"a foreign workflow id is not found", "GET", "/api/v1/mutations/something-else", nil, nil, 404, "mutation_not_found"},
		{"a limit out of range is invalid", "GET", "/api/v1/routes?limit=0", nil, nil, 400, "invalid_argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			res := p.do(t, tt.method, tt.path, tt.body, tt.headers...)
			require.Equal(t, tt.status, res.Status, res.Raw)
			errObj, ok := res.Body["error"].(map[string]any)
			require.True(t, ok, res.Raw)
			require.Equal(t, tt.code, errObj["code"])
			require.NotEmpty(t, errObj["message"])
			require.Less(t, time.Since(start), 5*time.Second, "answered at once, never 202")
		})
	}
	wrongType := p.do(t, "POST", "/api/v1/routes", `{"tenant":"a"}`, "Content-Type", "text/plain")
	require.Equal(t, http.StatusUnsupportedMediaType, wrongType.Status, wrongType.Raw)
}

func TestAWriteDuringAPostgresOutageIsAcceptedAndCommitsWhenItReturns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	port, err := devstack.FreePort()
	require.NoError(t, err)
	pg, err := devstack.StartPostgres(context.Background(), dir+"/pg", port, io.Discard)
	require.NoError(t, err)
	t.Cleanup(func() { _ = pg.Stop() })
	p := startPlatformWith(t, platformOptions{ackTimeout: time.Second, dsn: pg.DSN})
	tenant := testenv.Name(t, "team")

	require.NoError(t, pg.Stop())
	res := p.do(t, "POST", "/api/v1/routes", map[string]any{"tenant": tenant, "service": "payments", "env": "prod", "version": "v1", "url": "https://a.example"})
	require.Equal(t, http.StatusAccepted, res.Status, res.Raw)
	require.Equal(t, "pending", res.Body["status"])
	loc := res.Header.Get("Location")
	require.Equal(t, "/api/v1/mutations/"+res.Body["workflow_id"].(string), loc)
	st := p.do(t, "GET", loc, nil)
	require.Equal(t, "running", st.Body["status"], st.Raw)
	require.Equal(t, "pending", st.Body["steps"].(map[string]any)["committed"])

	pg, err = devstack.StartPostgres(context.Background(), dir+"/pg", port, io.Discard)
	require.NoError(t, err)
	t.Cleanup(func() { _ = pg.Stop() })
	eventually(t, 30*time.Second, func() bool {
		return p.do(t, "GET", loc, nil).Body["status"] == "completed"
	}, "accepted mutation completes once Postgres is back")
	st = p.do(t, "GET", loc, nil)
	require.Equal(t, map[string]any{"committed": "done", "invalidated": "done", "published": "done", "audited": "done"}, st.Body["steps"])
	got := p.do(t, "GET", "/api/v1/routes/"+tenant+"/payments/prod/v1", nil)
	require.Equal(t, http.StatusOK, got.Status, got.Raw)
	require.EqualValues(t, 1, got.Body["revision"])
	k := routes.Key{Tenant: tenant, Service: "payments", Env: "prod", Version: "v1"}
	evs := p.eventsFor(t, k)
	require.Len(t, evs, 1)
	require.EqualValues(t, 1, p.auditDocs(t, evs[0].EventID))
}

func TestRepeatingTheKeyOfATerminatedMutationAnswersTheSameCommit(t *testing.T) {
	t.Parallel()
	// Kafka is unreachable: the publish keeps retrying, the workflow stays running.
	p := startPlatformWith(t, platformOptions{ackTimeout: 10 * time.Second, brokers: []string{"127.0.0.1:1"}})
	body := map[string]any{"tenant": testenv.Name(t, "team"), "service": "payments", "env": "prod", "version": "v1", "url": "https://a.example"}
	first := p.do(t, "POST", "/api/v1/routes", body, "Idempotency-Key", "term-1")
	require.Equal(t, http.StatusCreated, first.Status, first.Raw)
	wfID := first.Body["workflow_id"].(string)
	require.NoError(t, p.tc.TerminateWorkflow(context.Background(), wfID, "", "test"))

	// The commit happened: the same key gets the same answer (Temporal keeps
	// the update's outcome), and the mutation's status says it needs a retry.
	again := p.do(t, "POST", "/api/v1/routes", body, "Idempotency-Key", "term-1")
	require.Equal(t, http.StatusCreated, again.Status, again.Raw)
	require.Equal(t, first.Body["event_id"], again.Body["event_id"])
	require.Equal(t, first.Body["run_id"], again.Body["run_id"])
	st := p.do(t, "GET", "/api/v1/mutations/"+wfID, nil)
	require.Equal(t, "terminated", st.Body["status"], st.Raw)
}
