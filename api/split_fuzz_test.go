package api_test

import (
	"bytes"
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
)

func splitTestHandler(t testing.TB) http.Handler {
	tc, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1", Logger: nopTemporalLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	return api.New(api.Options{
		Temporal: downTemporal{tc}, TaskQueue: "fuzz", Routes: noRoutes{}, AckTimeout: 5 * time.Millisecond,
		Metrics: observability.NewWriteMetrics(reg), Registry: reg, Log: zap.NewNop(),
	}).Handler()
}

// validSplitBody reports whether body is a split PUT that passes the API's
// own checks (what is left is decided at commit: the versions' routes).
func validSplitBody(body string) bool {
	var req struct {
		Weights map[string]int `json:"weights"`
	}
	dec := json.NewDecoder(strings.NewReader(body))
	if dec.Decode(&req) != nil || len(req.Weights) == 0 || len(req.Weights) > 10 {
		return false
	}
	sum := 0
	for v, w := range req.Weights {
		if w < 0 || w > 100 || v == "" || len(v) > 64 {
			return false
		}
		sum += w
	}
	return sum == 100
}

func TestBadSplitBodiesAre400(t *testing.T) {
	h := splitTestHandler(t)
	for name, body := range map[string]string{
		"weights not summing to 100": `{"weights":{"v1":90,"v2":5}}`,
		"a negative weight":          `{"weights":{"v1":110,"v2":-10}}`,
		"a weight over 100":          `{"weights":{"v1":101}}`,
		"a fractional weight":        `{"weights":{"v1":90.5,"v2":9.5}}`,
		"more than 10 versions":      `{"weights":{"a":100,"b":0,"c":0,"d":0,"e":0,"f":0,"g":0,"h":0,"i":0,"j":0,"k":0}}`,
		"no weights":                 `{}`,
		"empty weights":              `{"weights":{}}`,
		"a bad version name":         `{"weights":{"v/1":100}}`,
		"an unknown field":           `{"weights":{"v1":100},"colour":"red"}`,
		"a bad not_before":           `{"weights":{"v1":100},"not_before":"tomorrow"}`,
		"weights as a list":          `{"weights":[["v1",100]]}`,
	} {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest("PUT", "/api/v1/splits/team-a/payments/prod", bytes.NewBufferString(body))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "invalid_argument") {
				t.Fatalf("%s: %d %s", body, rec.Code, rec.Body.String())
			}
		})
	}
	for _, path := range []string{"/api/v1/splits/Team/payments/prod", "/api/v1/splits/team-a/pay_ments/prod"} {
		req := httptest.NewRequest("PUT", path, bytes.NewBufferString(`{"weights":{"v1":100}}`))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body.String())
		}
	}
}

// FuzzSplitWrites: a split PUT is 400 unless its weights pass the checks
// (then it reaches the unreachable Temporal: 503); never a 5xx otherwise.
func FuzzSplitWrites(f *testing.F) {
	for _, body := range []string{
		`{"weights":{"v1":90,"v2":10}}`, `{"weights":{"v1":90,"v2":5}}`, `{"weights":{"v1":-10,"v2":110}}`,
		`{"weights":{"v1":100},"changed_by":"alice"}`, `{"weights":{"a":10,"b":10,"c":10,"d":10,"e":10,"f":10,"g":10,"h":10,"i":10,"j":10,"k":0}}`,
		`{"weights":{"v1":1e2}}`, `{"weights":{"":100}}`, `{"weights":null}`, `{"weights":{"v1":"100"}}`, ``, `[]`,
		`{"weights":{"v1":100},"not_before":"2020-01-01T00:00:00Z"}`, `{"weights":{"v1":9223372036854775807,"v2":1}}`,
	} {
		f.Add(body, "")
	}
	f.Add(`{"weights":{"v1":100}}`, `"3"`)
	f.Add(`{"weights":{"v1":100}}`, `x`)
	h := splitTestHandler(f)
	f.Fuzz(func(t *testing.T, body, ifMatch string) {
		req := httptest.NewRequest("PUT", "/api/v1/splits/team-a/payments/prod", bytes.NewBufferString(body))
		if ifMatch != "" {
			req.Header["If-Match"] = []string{ifMatch}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" {
			t.Fatalf("%q: %d with body %q not in the error shape", body, rec.Code, rec.Body.String())
		}
		if rec.Code >= 500 && !(rec.Code == http.StatusServiceUnavailable && e.Error.Code == "unavailable") {
			t.Fatalf("%q answered %d: %s", body, rec.Code, rec.Body.String())
		}
		if !validSplitBody(body) && rec.Code != http.StatusBadRequest && rec.Code != http.StatusUnsupportedMediaType {
			t.Fatalf("invalid split %q answered %d: %s", body, rec.Code, rec.Body.String())
		}
	})
}
