package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// A stand-in resolver: the first stream sends one change and closes as a
// slow consumer; the resumed one must carry its id and gets the second.
func TestRoutesWatchPrintsChangesAndResumesAfterAClose(t *testing.T) {
	var mu sync.Mutex
	var lastIDs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/watch/acme" || r.URL.Query().Get("service") != "checkout" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		n := len(lastIDs)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		ev := func(id string, rev int) {
			fmt.Fprintf(w, "id: %s\nevent: route_changed\ndata: {\"event_id\":\"e%d\",\"event_type\":\"route_changed\",\"action\":\"updated\",\"tenant\":\"acme\",\"service\":\"checkout\",\"env\":\"prod\",\"version\":\"v1\",\"url\":\"https://r%d.example\",\"is_active\":true,\"revision\":%d,\"changed_by\":\"ann\",\"occurred_at\":\"2026-01-02T03:04:05Z\"}\n\n", id, rev, rev, rev)
		}
		if n == 1 {
			fmt.Fprint(w, ": ping\n\n")
			ev("a1", 1)
			fmt.Fprint(w, "event: close\ndata: {\"reason\":\"slow_consumer\"}\n\n")
			return
		}
		ev("a2", 2)
	}))
	defer srv.Close()

	for _, output := range []string{"table", "json"} {
		mu.Lock()
		lastIDs = nil
		mu.Unlock()
		var out bytes.Buffer
		w := &watchFlags{resolverURL: srv.URL, tenant: "acme", service: "checkout", since: "a0", count: 2}
		if err := w.run(context.Background(), &clientFlags{output: output}, &out); err != nil {
			t.Fatal(err)
		}
		if strings.Join(lastIDs, ",") != "a0,a1" {
			t.Fatalf("%s: Last-Event-IDs sent %v, want a0 then a1", output, lastIDs)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		switch output {
		case "table":
			if len(lines) != 3 || !strings.HasPrefix(lines[0], "WHEN") || !strings.Contains(lines[1], "acme:checkout:prod:v1") ||
				!strings.Contains(lines[2], "https://r2.example") || !strings.HasSuffix(lines[2], "a2") {
				t.Fatalf("table:\n%s", out.String())
			}
		case "json":
			var l watchLine
			if len(lines) != 2 || json.Unmarshal([]byte(lines[1]), &l) != nil || l.ID != "a2" || l.Event.Revision != 2 {
				t.Fatalf("json lines:\n%s", out.String())
			}
		}
	}
}
