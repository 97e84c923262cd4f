package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/trafficmanager/trafficmanager/internal/devstack"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

// historyEvents counts the events of a workflow's latest run, by type.
func historyEvents(t *testing.T, p *platform, wfID string) (int, map[string]int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	it := p.tc.GetWorkflowHistory(ctx, wfID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n, byType := 0, map[string]int{}
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		n++
		byType[ev.GetEventType().String()]++
	}
	return n, byType
}

// recordHistory writes the workflow's latest run's history as JSON (the
// format of `temporal workflow show --output json`) into
// $TM_RECORD_HISTORIES/name, when that variable is set: how the replay
// tests' histories in workflows/testdata are recorded.
func recordHistory(t *testing.T, p *platform, wfID, name string) {
	t.Helper()
	dir := os.Getenv("TM_RECORD_HISTORIES")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var h historypb.History
	it := p.tc.GetWorkflowHistory(ctx, wfID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, ev)
	}
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&h)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
}

// outageHistoryBound is the most history events a mutation may have after
// a Kafka outage of any length: the happy path's few events, plus the
// durable publish activity (scheduled, started, completed), a version
// marker and the workflow task that follows its completion.
const outageHistoryBound = 25

// A Kafka outage adds a bounded number of history events to a mutation,
// however long it lasts: its publish continues as a regular activity whose
// retries add none. TM_TEST_KAFKA_OUTAGE sets the outage (default 15s; the
// figure in docs/temporal.md comes from a run with 10m).
func TestAKafkaOutageAddsABoundedNumberOfHistoryEvents(t *testing.T) {
	t.Parallel()
	outage := 15 * time.Second
	if v := os.Getenv("TM_TEST_KAFKA_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err)
		outage = d
	}
	kafka, err := devstack.StartKafka(0, topic, 3)
	require.NoError(t, err)
	t.Cleanup(func() { _ = kafka.Stop() })
	p := startPlatformWith(t, platformOptions{ackTimeout: 10 * time.Second, brokers: kafka.Brokers})
	tenant := testenv.Name(t, "team")

	happy := create(t, p, routes.Key{Tenant: tenant, Service: "payments", Env: "prod", Version: "v1"}, "https://a.example", true)
	awaitCompleted(t, p, happy, "")
	happyEvents, happyTypes := historyEvents(t, p, happy)
	t.Logf("history events of a mutation, happy path: %d %v", happyEvents, happyTypes)

	kafka.RefuseProduce(true)
	k := routes.Key{Tenant: tenant, Service: "payments", Env: "prod", Version: "v2"}
	start := time.Now()
	res := p.do(t, "POST", "/api/v1/routes", map[string]any{
		"tenant": k.Tenant, "service": k.Service, "env": k.Env, "version": k.Version, "url": "https://b.example",
	})
	ack := time.Since(start)
	require.Equal(t, http.StatusCreated, res.Status, "the commit is answered during the outage: %s", res.Raw)
	require.Less(t, ack, 5*time.Second, "the ack waits for one time-boxed attempt only")
	wfID := res.Body["workflow_id"].(string)
	eventually(t, 10*time.Second, func() bool {
		steps, _ := p.do(t, "GET", "/api/v1/mutations/"+wfID, nil).Body["steps"].(map[string]any)
		return steps["published"] == "retrying" && steps["committed"] == "done" && steps["audited"] == "done"
	}, "status says committed, audited, publish retrying")
	time.Sleep(outage)
	during, _ := historyEvents(t, p, wfID)
	kafka.RefuseProduce(false)

	awaitCompleted(t, p, wfID, "")
	after, types := historyEvents(t, p, wfID)
	t.Logf("history events of a mutation, Kafka outage of %s: %d during, %d at the end %v (ack %s)", outage, during, after, types, ack.Round(time.Millisecond))
	require.LessOrEqual(t, after, outageHistoryBound)
	recordHistory(t, p, wfID, "outage_history.json")
	require.Len(t, p.eventsFor(t, k), 1)
	require.EqualValues(t, 1, p.auditDocs(t, res.Body["event_id"].(string)))
}
