package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/api"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/routes"
)

// activeVersions has every route v1..v9 active and "old" inactive.
type activeVersions struct{ noRoutes }

func (activeVersions) Get(_ context.Context, k routes.Key) (routes.Route, error) {
	if k.Version == "old" {
		return routes.Route{Version: k.Version}, nil
	}
	if len(k.Version) == 2 && k.Version[0] == 'v' {
		return routes.Route{Version: k.Version, IsActive: true}, nil
	}
	return routes.Route{}, routes.ErrNotFound
}

func rolloutTestHandler(t testing.TB, rd api.RouteReader) http.Handler {
	tc, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1", Logger: nopTemporalLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	return api.New(api.Options{
		Temporal: downTemporal{tc}, TaskQueue: "fuzz", Routes: rd, AckTimeout: 5 * time.Millisecond,
		Metrics: observability.NewWriteMetrics(reg), Registry: reg, Log: zap.NewNop(),
	}).Handler()
}

func TestBadRolloutsAre400(t *testing.T) {
	h := rolloutTestHandler(t, activeVersions{})
	base := `"tenant":"team-a","service":"payments","env":"prod"`
	for name, body := range map[string]string{
		"empty steps":                    `{` + base + `,"to":"v2","steps":[]}`,
		"no steps":                       `{` + base + `,"to":"v2"}`,
		"a weight of 0":                  `{` + base + `,"to":"v2","steps":[{"weight":0},{"weight":100}]}`,
		"a negative weight":              `{` + base + `,"to":"v2","steps":[{"weight":-10},{"weight":100}]}`,
		"a weight over 100":              `{` + base + `,"to":"v2","steps":[{"weight":150}]}`,
		"a fractional weight":            `{` + base + `,"to":"v2","steps":[{"weight":10.5},{"weight":100}]}`,
		"non-increasing weights":         `{` + base + `,"to":"v2","steps":[{"weight":50},{"weight":50},{"weight":100}]}`,
		"decreasing weights":             `{` + base + `,"to":"v2","steps":[{"weight":50},{"weight":20},{"weight":100}]}`,
		"a last step under 100":          `{` + base + `,"to":"v2","steps":[{"weight":10},{"weight":50}]}`,
		"more than 20 steps":             `{` + base + `,"to":"v2","steps":[` + strings.Repeat(`{"weight":1},`, 20) + `{"weight":100}]}`,
		"an unparsable pause":            `{` + base + `,"to":"v2","steps":[{"weight":10,"pause":"soon"},{"weight":100}]}`,
		"a negative pause":               `{` + base + `,"to":"v2","steps":[{"weight":10,"pause":"-5m"},{"weight":100}]}`,
		"a check URL that is not http":   `{` + base + `,"to":"v2","steps":[{"weight":100}],"check":{"url":"ftp://x.example/h","interval":"10s","max_failures":3}}`,
		"a relative check URL":           `{` + base + `,"to":"v2","steps":[{"weight":100}],"check":{"url":"/health","interval":"10s","max_failures":3}}`,
		"a check interval under 1s":      `{` + base + `,"to":"v2","steps":[{"weight":100}],"check":{"url":"https://x.example/h","interval":"500ms","max_failures":3}}`,
		"max_failures 0":                 `{` + base + `,"to":"v2","steps":[{"weight":100}],"check":{"url":"https://x.example/h","interval":"10s","max_failures":0}}`,
		"an unknown version":             `{` + base + `,"to":"v10","steps":[{"weight":100}]}`,
		"an inactive version":            `{` + base + `,"to":"old","steps":[{"weight":100}]}`,
		"a bad tenant":                   `{"tenant":"Team","service":"payments","env":"prod","to":"v2","steps":[{"weight":100}]}`,
		"an unknown field":               `{` + base + `,"to":"v2","steps":[{"weight":100}],"colour":"red"}`,
		"a step with an unknown field":   `{` + base + `,"to":"v2","steps":[{"weight":100,"wait":"1m"}]}`,
		"no to":                          `{` + base + `,"steps":[{"weight":100}]}`,
		"steps as an object":             `{` + base + `,"to":"v2","steps":{"weight":100}}`,
		"a pause as a number of seconds": `{` + base + `,"to":"v2","steps":[{"weight":10,"pause":60},{"weight":100}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/api/v1/rollouts", bytes.NewBufferString(body))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "invalid_argument") {
				t.Fatalf("%s: %d %s", body, rec.Code, rec.Body.String())
			}
		})
	}
}

func TestUnknownRolloutsAre404(t *testing.T) {
	h := rolloutTestHandler(t, activeVersions{})
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/v1/rollouts/Team/payments/prod/k1"},
		{"POST", "/api/v1/rollouts/team-a/payments/prod/k1/explode"},
		{"GET", "/api/v1/rollouts/team-a/payments/prod/k%2F1"},
	} {
		req := httptest.NewRequest(c.method, c.path, nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNotFound {
			t.Fatalf("%s %s: %d %s", c.method, c.path, rec.Code, rec.Body.String())
		}
	}
}

// validRolloutBody is the rollout checks restated for the fuzzer.
func validRolloutBody(body string) bool {
	var req api.RolloutRequest
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if dec.Decode(&req) != nil || dec.More() {
		return false
	}
	if req.Tenant != "team-a" || req.Service != "payments" || req.Env != "prod" {
		return false
	}
	if len(req.To) != 2 || req.To[0] != 'v' || req.To[1] < '1' || req.To[1] > '9' {
		return false
	}
	if len(req.Steps) == 0 || len(req.Steps) > 20 || req.Steps[len(req.Steps)-1].Weight != 100 || len(req.ChangedBy) > 256 {
		return false
	}
	prev := 0
	for _, s := range req.Steps {
		if s.Weight <= prev || s.Weight > 100 {
			return false
		}
		prev = s.Weight
		if s.Pause != "" {
			d, err := time.ParseDuration(s.Pause)
			if err != nil || d < 0 || d > 720*time.Hour {
				return false
			}
		}
	}
	if c := req.Check; c != nil {
		if !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://") {
			return false
		}
		d, err := time.ParseDuration(c.Interval)
		if err != nil || d < time.Second || d > 24*time.Hour || c.MaxFailures < 1 || c.MaxFailures > 10000 {
			return false
		}
	}
	return true
}

// FuzzRolloutStarts: a rollout POST is 400 unless it passes the checks;
// never a 5xx but 503 (the unreachable Temporal).
func FuzzRolloutStarts(f *testing.F) {
	base := `"tenant":"team-a","service":"payments","env":"prod","to":"v2"`
	for _, body := range []string{
		`{` + base + `,"steps":[{"weight":10,"pause":"5m"},{"weight":50,"pause":"10m"},{"weight":100}]}`,
		`{` + base + `,"steps":[{"weight":100}],"check":{"url":"https://h.example/ok","interval":"10s","max_failures":3}}`,
		`{` + base + `,"steps":[{"weight":50},{"weight":40},{"weight":100}]}`,
		`{` + base + `,"steps":[{"weight":10,"pause":"-1s"},{"weight":100}]}`,
		`{` + base + `,"steps":[{"weight":100}],"check":{"url":"file:///etc/passwd","interval":"10s","max_failures":3}}`,
		`{` + base + `,"steps":[{"weight":100}],"check":{"url":"http://h","interval":"0s","max_failures":3}}`,
		`{` + base + `,"steps":[{"weight":1e2}]}`, `{` + base + `,"steps":[{"weight":9223372036854775807}]}`,
		`{` + base + `,"steps":[]}`, ``, `[]`, `{"steps":null}`,
	} {
		f.Add(body)
	}
	h := rolloutTestHandler(f, activeVersions{})
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/api/v1/rollouts", bytes.NewBufferString(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusAccepted {
			return // valid: started, the ack timed out
		}
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" {
			t.Fatalf("%q: %d with body %q not in the error shape", body, rec.Code, rec.Body.String())
		}
		if rec.Code >= 500 && !(rec.Code == http.StatusServiceUnavailable && e.Error.Code == "unavailable") {
			t.Fatalf("%q answered %d: %s", body, rec.Code, rec.Body.String())
		}
		valid := validRolloutBody(body)
		if !valid && rec.Code != http.StatusBadRequest && rec.Code != http.StatusUnsupportedMediaType && rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("invalid rollout %q answered %d: %s", body, rec.Code, rec.Body.String())
		}
		if valid && rec.Code == http.StatusBadRequest {
			t.Fatalf("valid rollout %q answered 400: %s", body, rec.Body.String())
		}
	})
}
