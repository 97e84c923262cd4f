package resolver

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trafficmanager/trafficmanager/observability"
)

type errorJSON struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func serve(t testing.TB, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

// decodeError checks that body is API.md's error shape and returns it.
func decodeError(t testing.TB, body []byte) errorJSON {
	t.Helper()
	var e errorJSON
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("error body %q is not {\"error\":{\"code\",\"message\"}}: %v", body, err)
	}
	return e
}

func newTestHandler(t *testing.T, st *memStore) (*Resolver, http.Handler) {
	t.Helper()
	reg := prometheus.NewRegistry()
	r := newTestResolver(t, Options{Store: st, Metrics: observability.NewResolveMetrics(reg)})
	return r, r.Handler(reg)
}

func TestResolveEndpoint(t *testing.T) {
	st := newMemStore()
	st.put(key("v1"), "https://v1.example/a?b=c&d", true)
	st.put(key("off"), "https://off.example", false)
	_, h := newTestHandler(t, st)

	cases := []struct {
		name   string
		path   string
		status int
		cache  string
		body   string // exact body for 200s, error code otherwise
	}{
		{"an active route is 200 with its url, from Postgres first", "/api/v1/resolve/acme/checkout/prod/v1", 200, "miss", `{"url":"https://v1.example/a?b=c\u0026d"}`},
		{"then from the cache", "/api/v1/resolve/acme/checkout/prod/v1", 200, "hit", `{"url":"https://v1.example/a?b=c\u0026d"}`},
		{"a missing route is 404", "/api/v1/resolve/acme/checkout/prod/v9", 404, "miss", "route_not_found"},
		{"then a negative hit", "/api/v1/resolve/acme/checkout/prod/v9", 404, "negative-hit", "route_not_found"},
		{"an inactive route is 404", "/api/v1/resolve/acme/checkout/prod/off", 404, "miss", "route_not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := serve(t, h, http.MethodGet, c.path)
			if rec.Code != c.status || rec.Header().Get("X-Cache") != c.cache {
				t.Fatalf("status %d X-Cache %q, want %d %q (body %s)", rec.Code, rec.Header().Get("X-Cache"), c.status, c.cache, rec.Body)
			}
			if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
				t.Fatalf("Content-Type %q", rec.Header().Get("Content-Type"))
			}
			if c.status == 200 {
				if rec.Body.String() != c.body {
					t.Fatalf("body %s, want %s", rec.Body, c.body)
				}
				return
			}
			if e := decodeError(t, rec.Body.Bytes()); e.Error.Code != c.body {
				t.Fatalf("code %q, want %q", e.Error.Code, c.body)
			}
		})
	}
}

func TestBadNamesAre400WithoutALookup(t *testing.T) {
	st := newMemStore()
	_, h := newTestHandler(t, st)
	long := strings.Repeat("a", 64)
	cases := []struct {
		name, path, field string
	}{
		{"an uppercase tenant", "/api/v1/resolve/Acme/checkout/prod/v1", "tenant"},
		{"a tenant starting with a dash", "/api/v1/resolve/-acme/checkout/prod/v1", "tenant"},
		{"an empty tenant", "/api/v1/resolve//checkout/prod/v1", "tenant"},
		{"a service of 64 characters", "/api/v1/resolve/acme/" + long + "/prod/v1", "service"},
		{"a service with an underscore", "/api/v1/resolve/acme/check_out/prod/v1", "service"},
		{"an env ending with a dash", "/api/v1/resolve/acme/checkout/prod-/v1", "env"},
		{"a missing env and version", "/api/v1/resolve/acme/checkout", "env"},
		// (/api/v1/resolve/acme/checkout/prod, without a version, is the
		// unversioned resolve of a split: resolver/split*_test.go.)
		{"an empty version", "/api/v1/resolve/acme/checkout/prod/", "version"},
		{"a version with a slash", "/api/v1/resolve/acme/checkout/prod/v1/extra", "version"},
		{"a version with an escaped slash", "/api/v1/resolve/acme/checkout/prod/v1%2Fx", "version"},
		{"a version of 65 characters", "/api/v1/resolve/acme/checkout/prod/" + long + "b", "version"},
		{"a version with a space", "/api/v1/resolve/acme/checkout/prod/v%201", "version"},
		{"nothing after the prefix", "/api/v1/resolve/", "tenant"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := serve(t, h, http.MethodGet, c.path)
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400 (body %s)", rec.Code, rec.Body)
			}
			e := decodeError(t, rec.Body.Bytes())
			if e.Error.Code != "invalid_argument" || !strings.HasPrefix(e.Error.Message, c.field+":") {
				t.Fatalf("error %+v, want invalid_argument naming %s", e.Error, c.field)
			}
		})
	}
	if n := st.calls.Load(); n != 0 {
		t.Fatalf("bad names made %d lookups", n)
	}
}

func TestUnavailableIs503(t *testing.T) {
	st := newMemStore()
	st.setErr(errDown)
	_, h := newTestHandler(t, st)
	rec := serve(t, h, http.MethodGet, "/api/v1/resolve/acme/checkout/prod/v1")
	if rec.Code != http.StatusServiceUnavailable || decodeError(t, rec.Body.Bytes()).Error.Code != "unavailable" {
		t.Fatalf("status %d body %s, want 503 unavailable", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), errDown.Error()) {
		t.Fatal("the internal error reached the client")
	}
}

func TestHealthReadinessAndMetrics(t *testing.T) {
	r, h := newTestHandler(t, newMemStore())
	check := func(path string, status int, contains string) {
		t.Helper()
		rec := serve(t, h, http.MethodGet, path)
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != status || !strings.Contains(string(body), contains) {
			t.Fatalf("GET %s = %d %s, want %d containing %q", path, rec.Code, body, status, contains)
		}
	}
	check("/healthz", 200, "ok")
	check("/readyz", 503, "unavailable")
	r.MarkReady()
	check("/readyz", 200, "ready")
	r.SetDraining()
	check("/readyz", 503, "draining")
	check("/healthz", 200, "ok")

	serve(t, h, http.MethodGet, "/api/v1/resolve/acme/checkout/prod/v1")
	check("/metrics", 200, "resolve_requests_total 1")
	check("/metrics", 200, "resolve_latency_seconds_count 1")
	check("/metrics", 200, "resolve_cache_miss_total 1")
	check("/health/resilience", 200, `"postgres":{"state":"closed"`)
	check("/health/resilience", 200, `"postgres_lookups":{"max_concurrency":32,"in_use":0}`)
}

func TestUnknownEndpointsAnswerTheErrorShape(t *testing.T) {
	_, h := newTestHandler(t, newMemStore())
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/nope", 404},
		{http.MethodGet, "/api/v1/resolve", 404},
		{http.MethodPost, "/api/v1/resolve/acme/checkout/prod/v1", 405},
	} {
		rec := serve(t, h, c.method, c.path)
		if rec.Code != c.status {
			t.Fatalf("%s %s = %d, want %d", c.method, c.path, rec.Code, c.status)
		}
		decodeError(t, rec.Body.Bytes())
	}
}
