package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/api"
	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/auth"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

// auditEngine serves RegisterAudit under /api/v1; a non-nil principal is
// set as the request's scope, as the auth middleware does.
func auditEngine(q api.AuditQuerier, log *zap.Logger, principal *auth.Principal) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	v1 := r.Group("/api/v1")
	if principal != nil {
		v1.Use(func(c *gin.Context) { c.Set("scope", api.Scope(principal)); c.Next() })
	}
	api.RegisterAudit(v1, q, log)
	return r
}

type auditAnswer struct {
	Events     []map[string]any `json:"events"`
	NextCursor *string          `json:"next_cursor"`
}

func get(t *testing.T, h http.Handler, path string) (int, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.Bytes()
}

// seedAudit stores one document per (tenant, action) pair, an hour apart
// going back from now, and returns them newest first.
func seedAudit(t *testing.T) (*audit.Store, []audit.Document) {
	t.Helper()
	store := audit.NewStore(testenv.Mongo(t))
	ctx := context.Background()
	require.NoError(t, store.EnsureIndexes(ctx, 0))
	now := time.Now().UTC().Truncate(time.Millisecond)
	var docs []audit.Document
	i := 0
	for _, tenant := range []string{"team-a", "team-b"} {
		for _, action := range []string{"created", "updated", "activated", "deactivated"} {
			d := audit.Document{
				EventID:   fmt.Sprintf("evt-%02d", i),
				EventType: "route_changed",
				Action:    action,
				Route:     audit.RouteRef{Tenant: tenant, Service: "payments", Env: "prod", Version: "v2"},
				URL:       "https://pay.example/" + action,
				ChangedBy: "alice@example.com",
				// A day apart, so recent?days=N has something to cut.
				OccurredAt: now.Add(-time.Duration(i)*24*time.Hour - time.Hour),
			}
			_, err := store.Insert(ctx, d)
			require.NoError(t, err)
			docs = append(docs, d)
			i++
		}
	}
	return store, docs
}

func eventIDs(a auditAnswer) []string {
	out := []string{}
	for _, e := range a.Events {
		out = append(out, e["event_id"].(string))
	}
	return out
}

func TestAuditEndpointsAnswerNewestFirstWithRFC3339UTCTimes(t *testing.T) {
	store, docs := seedAudit(t)
	h := auditEngine(store, zaptest.NewLogger(t), nil)
	now := time.Now().UTC()
	cases := []struct {
		name string
		path string
		want []string
	}{
		{"the route endpoint returns one route's history", "/api/v1/audit/route?tenant=team-b&service=payments&env=prod&version=v2",
			[]string{"evt-04", "evt-05", "evt-06", "evt-07"}},
		{"recent returns the last three days", "/api/v1/audit/recent?days=3", []string{"evt-00", "evt-01", "evt-02"}},
		{"action returns one action", "/api/v1/audit/action?action=updated", []string{"evt-01", "evt-05"}},
		{"action takes an optional tenant", "/api/v1/audit/action?action=updated&tenant=team-b", []string{"evt-05"}},
		{"time-range includes start and excludes end", "/api/v1/audit/time-range?" + url.Values{
			"start": {docs[5].OccurredAt.Format(time.RFC3339Nano)},
			"end":   {docs[1].OccurredAt.Format(time.RFC3339Nano)},
		}.Encode(), []string{"evt-02", "evt-03", "evt-04", "evt-05"}},
		{"a day with nothing is an empty list", "/api/v1/audit/time-range?start=2001-01-01T00:00:00Z&end=2001-01-02T00:00:00%2B02:00", []string{}},
		{"recent defaults to a week", "/api/v1/audit/recent", []string{"evt-00", "evt-01", "evt-02", "evt-03", "evt-04", "evt-05", "evt-06"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, h, tc.path)
			require.Equal(t, http.StatusOK, code, string(body))
			var a auditAnswer
			require.NoError(t, json.Unmarshal(body, &a))
			require.NotNil(t, a.Events, "events is a list, never null")
			require.Equal(t, tc.want, eventIDs(a))
			require.Nil(t, a.NextCursor, "no next_cursor without more events")
			for _, e := range a.Events {
				for _, f := range []string{"event_type", "action", "route", "url", "previous_url", "previous_state", "changed_by", "processed_at", "metadata"} {
					require.Contains(t, e, f)
				}
				at := e["occurred_at"].(string)
				require.Regexp(t, `Z$`, at)
				parsed, err := time.Parse(time.RFC3339, at)
				require.NoError(t, err)
				require.WithinDuration(t, now, parsed, 10*24*time.Hour)
				require.Regexp(t, `Z$`, e["processed_at"].(string))
			}
		})
	}
}

func TestAuditPagesFollowNextCursorWithoutGapsOrDuplicates(t *testing.T) {
	store, docs := seedAudit(t)
	h := auditEngine(store, zaptest.NewLogger(t), nil)
	var got []string
	path := "/api/v1/audit/recent?days=365&limit=3"
	for range 10 {
		code, body := get(t, h, path)
		require.Equal(t, http.StatusOK, code, string(body))
		var a auditAnswer
		require.NoError(t, json.Unmarshal(body, &a))
		got = append(got, eventIDs(a)...)
		if a.NextCursor == nil {
			break
		}
		require.NotEmpty(t, *a.NextCursor)
		path = "/api/v1/audit/recent?days=365&limit=3&cursor=" + url.QueryEscape(*a.NextCursor)
	}
	want := []string{}
	for _, d := range docs {
		want = append(want, d.EventID)
	}
	require.Equal(t, want, got)
}

func TestAuditHonoursTheTokensTenants(t *testing.T) {
	store, _ := seedAudit(t)
	reader := &auth.Principal{Name: "r", Role: auth.RoleReader, TenantList: []string{"team-a"}}
	h := auditEngine(store, zaptest.NewLogger(t), reader)

	code, body := get(t, h, "/api/v1/audit/recent?days=365")
	require.Equal(t, http.StatusOK, code, string(body))
	var a auditAnswer
	require.NoError(t, json.Unmarshal(body, &a))
	require.Equal(t, []string{"evt-00", "evt-01", "evt-02", "evt-03"}, eventIDs(a))

	code, body = get(t, h, "/api/v1/audit/route?tenant=team-b&service=payments&env=prod&version=v2")
	require.Equal(t, http.StatusForbidden, code, string(body))
	requireErrorShape(t, body, "permission_denied")

	code, body = get(t, h, "/api/v1/audit/action?action=created&tenant=team-b")
	require.Equal(t, http.StatusForbidden, code, string(body))
}

var snakeCase = regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)

// requireErrorShape checks API.md's error body: exactly
// {"error": {"code", "message"}} with a snake_case code.
func requireErrorShape(t require.TestingT, body []byte, code string) {
	var raw map[string]map[string]any
	require.NoError(t, json.Unmarshal(body, &raw), string(body))
	require.Len(t, raw, 1, string(body))
	e, ok := raw["error"]
	require.True(t, ok, string(body))
	require.Len(t, e, 2, string(body))
	c, _ := e["code"].(string)
	m, _ := e["message"].(string)
	require.Regexp(t, snakeCase, c)
	require.NotEmpty(t, m)
	if code != "" {
		require.Equal(t, code, c, string(body))
	}
}

func TestAuditRejectsEveryBadParameterWith400(t *testing.T) {
	store := audit.NewStore(testenv.Mongo(t))
	h := auditEngine(store, zaptest.NewLogger(t), nil)
	const route = "/api/v1/audit/route?tenant=team-a&service=payments&env=prod&version=v2"
	const tr = "/api/v1/audit/time-range?start=2025-01-01T00:00:00Z&end=2025-01-02T00:00:00Z"
	cases := map[string]string{
		"a route without a tenant":                  "/api/v1/audit/route?service=payments&env=prod&version=v2",
		"a route without a version":                 "/api/v1/audit/route?tenant=team-a&service=payments&env=prod",
		"a route with an uppercase service":         "/api/v1/audit/route?tenant=team-a&service=Pay&env=prod&version=v2",
		"a route with a space in the version":       "/api/v1/audit/route?tenant=team-a&service=pay&env=prod&version=v%202",
		"a route with a 64-character tenant":        "/api/v1/audit/route?tenant=" + strings.Repeat("a", 64) + "&service=pay&env=prod&version=v2",
		"zero days":                                 "/api/v1/audit/recent?days=0",
		"366 days":                                  "/api/v1/audit/recent?days=366",
		"negative days":                             "/api/v1/audit/recent?days=-1",
		"days that are not a number":                "/api/v1/audit/recent?days=abc",
		"fractional days":                           "/api/v1/audit/recent?days=1.5",
		"empty days":                                "/api/v1/audit/recent?days=",
		"an enormous days":                          "/api/v1/audit/recent?days=99999999999999999999",
		"a bad tenant filter":                       "/api/v1/audit/recent?tenant=Team_A",
		"an unknown action":                         "/api/v1/audit/action?action=deleted",
		"an uppercase action":                       "/api/v1/audit/action?action=CREATED",
		"no action":                                 "/api/v1/audit/action",
		"no start":                                  "/api/v1/audit/time-range?end=2025-01-02T00:00:00Z",
		"no end":                                    "/api/v1/audit/time-range?start=2025-01-02T00:00:00Z",
		"a malformed start":                         "/api/v1/audit/time-range?start=yesterday&end=2025-01-02T00:00:00Z",
		"a date without a time":                     "/api/v1/audit/time-range?start=2025-01-01&end=2025-01-02T00:00:00Z",
		"a time without a zone":                     "/api/v1/audit/time-range?start=2025-01-01T00:00:00&end=2025-01-02T00:00:00Z",
		"start equal to end":                        "/api/v1/audit/time-range?start=2025-01-02T00:00:00Z&end=2025-01-02T00:00:00Z",
		"start after end":                           "/api/v1/audit/time-range?start=2025-01-03T00:00:00Z&end=2025-01-02T00:00:00Z",
		"start after end once zones are resolved":   "/api/v1/audit/time-range?start=2025-01-02T00:00:00-02:00&end=2025-01-02T01:00:00Z",
		"limit zero":                                route + "&limit=0",
		"limit 1001":                                "/api/v1/audit/recent?limit=1001",
		"a negative limit":                          "/api/v1/audit/action?action=created&limit=-5",
		"a limit that is not a number":              tr + "&limit=ten",
		"an empty limit":                            tr + "&limit=",
		"a cursor that is not base64":               route + "&cursor=!!!",
		"a cursor that is base64 of something else": "/api/v1/audit/recent?cursor=" + "e30",
		"a cursor with an impossible time":          "/api/v1/audit/recent?cursor=" + audit.EncodeCursor(time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC), "x"),
	}
	for name, path := range cases {
		t.Run(name, func(t *testing.T) {
			code, body := get(t, h, path)
			require.Equal(t, http.StatusBadRequest, code, string(body))
			requireErrorShape(t, body, "invalid_argument")
		})
	}
}

func TestAuditWithoutAStoreOrWithAnUnreachableOneIs503(t *testing.T) {
	client, err := mongo.Connect(options.Client().ApplyURI("mongodb://127.0.0.1:1/").SetServerSelectionTimeout(300 * time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	for name, q := range map[string]api.AuditQuerier{"no store": nil, "an unreachable store": audit.NewStore(client.Database("x"))} {
		t.Run(name, func(t *testing.T) {
			h := auditEngine(q, zaptest.NewLogger(t), nil)
			code, body := get(t, h, "/api/v1/audit/action?action=created")
			require.Equal(t, http.StatusServiceUnavailable, code, string(body))
			requireErrorShape(t, body, "unavailable")
		})
	}
}

// fakeAudit answers from memory. It insists on the arguments the handlers
// promise to validate, answering a plain error (a 500) otherwise, so the
// fuzz target notices a parameter that slipped through.
type fakeAudit struct{}

var errSlipped = errors.New("an invalid argument reached the store")

func (fakeAudit) page(p audit.Page) (audit.Result, error) {
	if p.Limit < 1 || p.Limit > audit.MaxLimit {
		return audit.Result{}, errSlipped
	}
	if p.Cursor != "" {
		if _, _, err := audit.DecodeCursor(p.Cursor); err != nil {
			return audit.Result{}, errSlipped
		}
	}
	d := audit.Document{EventID: "evt-1", EventType: "route_changed", Action: "created", OccurredAt: time.Unix(1700000000, 0).UTC()}
	return audit.Result{Events: []audit.Document{d}, NextCursor: audit.EncodeCursor(d.OccurredAt, d.EventID)}, nil
}

func (f fakeAudit) ByRoute(_ context.Context, r audit.RouteRef, p audit.Page) (audit.Result, error) {
	if (routes.Key{Tenant: r.Tenant, Service: r.Service, Env: r.Env, Version: r.Version}).Validate() != nil {
		return audit.Result{}, errSlipped
	}
	return f.page(p)
}

func (f fakeAudit) Recent(_ context.Context, days int, p audit.Page) (audit.Result, error) {
	if days < 1 || days > audit.MaxDays {
		return audit.Result{}, errSlipped
	}
	return f.page(p)
}

func (f fakeAudit) ByAction(_ context.Context, a routes.Action, p audit.Page) (audit.Result, error) {
	if _, err := routes.ParseAction(string(a)); err != nil {
		return audit.Result{}, errSlipped
	}
	return f.page(p)
}

func (f fakeAudit) TimeRange(_ context.Context, start, end time.Time, p audit.Page) (audit.Result, error) {
	if !start.Before(end) {
		return audit.Result{}, errSlipped
	}
	return f.page(p)
}

var auditPaths = []string{"/api/v1/audit/route", "/api/v1/audit/recent", "/api/v1/audit/action", "/api/v1/audit/time-range"}

// FuzzAuditQuery sends arbitrary raw query strings to every audit endpoint:
// no panic, no 5xx, and every error in API.md's shape.
func FuzzAuditQuery(f *testing.F) {
	for _, seed := range []string{
		"", "tenant=team-a&service=payments&env=prod&version=v2", "days=7", "days=0", "days=366&limit=5",
		"action=created&limit=1000", "action=nope", "start=2025-01-01T00:00:00Z&end=2025-01-02T00:00:00Z",
		"start=2025-01-02T00:00:00Z&end=2025-01-01T00:00:00Z", "limit=0", "limit=1001", "cursor=" + audit.EncodeCursor(time.Unix(0, 0), "e"),
		"cursor=%ZZ", "days=1;limit=2", "tenant=%00", "start=0000-01-01T00:00:00Z&end=9999-12-31T23:59:59.999999999Z",
	} {
		for i := range auditPaths {
			f.Add(uint8(i), seed)
		}
	}
	h := auditEngine(fakeAudit{}, zap.NewNop(), nil)
	f.Fuzz(func(t *testing.T, which uint8, raw string) {
		req := &http.Request{
			Method:     http.MethodGet,
			URL:        &url.URL{Path: auditPaths[int(which)%len(auditPaths)], RawQuery: raw},
			Header:     http.Header{},
			Proto:      "HTTP/1.1",
			ProtoMajor: 1,
			ProtoMinor: 1,
			Host:       "example.test",
		}
		req = req.WithContext(context.Background())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		if rec.Code >= 500 {
			t.Fatalf("%s?%s answered %d: %s", req.URL.Path, raw, rec.Code, body)
		}
		if rec.Code == http.StatusOK {
			var a auditAnswer
			if err := json.Unmarshal(body, &a); err != nil || a.Events == nil {
				t.Fatalf("%s?%s answered 200 with %s", req.URL.Path, raw, body)
			}
			return
		}
		requireErrorShape(t, body, "")
	})
}
