package resolver

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trafficmanager/trafficmanager/observability"
)

// FuzzResolvePath sends resolve requests with arbitrary path segments to the
// handler over an in-memory store. Whatever the path: no panic, no 5xx, a
// 200 only for a stored route, and every error in API.md's shape.
func FuzzResolvePath(f *testing.F) {
	for _, seed := range [][4]string{
		{"acme", "checkout", "prod", "v1"},
		{"acme", "checkout", "prod", "missing"},
		{"Acme", "checkout", "prod", "v1"},
		{"", "", "", ""},
		{"a", "b", "c", "d/e"},
		{"-a", "b-", "c", "1.2.3_rc-1"},
		{"a%2Fb", "..", ".", "v1?x=1"},
		{strings.Repeat("a", 64), "b", "c", strings.Repeat("v", 65)},
		{"ünï", "\x00", "c\n", "v 1"},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	st := newMemStore()
	st.put(key("v1"), "https://v1.example", true)
	reg := prometheus.NewRegistry()
	r, err := New(Options{Store: st, Metrics: observability.NewResolveMetrics(reg)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(r.Close)
	h := r.Handler(reg)

	f.Fuzz(func(t *testing.T, tenant, service, env, version string) {
		for _, path := range []string{
			// escaped, as a client library would send them
			ResolvePrefix + url.PathEscape(tenant) + "/" + url.PathEscape(service) + "/" + url.PathEscape(env) + "/" + url.PathEscape(version),
			// raw, whatever the bytes
			ResolvePrefix + tenant + "/" + service + "/" + env + "/" + version,
		} {
			req, err := http.NewRequest(http.MethodGet, "http://resolver"+path, nil)
			if err != nil {
				continue // not a request line a server would accept
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			switch {
			case rec.Code == http.StatusOK:
				if req.URL.Path != ResolvePrefix+"acme/checkout/prod/v1" {
					t.Fatalf("%q answered 200: %s", path, rec.Body)
				}
			case rec.Code >= 500:
				t.Fatalf("%q answered %d: %s", path, rec.Code, rec.Body)
			default:
				e := decodeError(t, rec.Body.Bytes())
				if rec.Code == 400 && e.Error.Code != "invalid_argument" || rec.Code == 404 && e.Error.Code != "route_not_found" && e.Error.Code != "not_found" {
					t.Fatalf("%q answered %d with code %q", path, rec.Code, e.Error.Code)
				}
			}
		}
	})
}
