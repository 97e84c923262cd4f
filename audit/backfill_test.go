package audit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

// publish puts n events on a fresh three-partition topic, one hour apart
// going back from base, and returns the brokers, topic and events.
func publish(t *testing.T, n int) ([]string, string, []events.Event) {
	t.Helper()
	topic := testenv.Name(t, "route-events")
	brokers := testenv.Kafka(t, topic, 3)
	pub := events.NewPublisher(brokers, topic)
	t.Cleanup(func() { _ = pub.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evs := make([]events.Event, n)
	for i := range n {
		evs[i] = events.Event{
			EventID:       fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			EventType:     events.TypeRouteChanged,
			Action:        actions[i%len(actions)],
			Tenant:        tenants[i%len(tenants)],
			Service:       "payments",
			Env:           "prod",
			Version:       fmt.Sprintf("v%d", i%5),
			URL:           fmt.Sprintf("https://pay-%d.example", i),
			PreviousURL:   "https://old.example",
			PreviousState: routes.State(i%2 == 0),
			IsActive:      i%2 == 1,
			Revision:      int64(i + 1),
			ChangedBy:     "bob@example.com",
			OccurredAt:    base.Add(-time.Duration(i) * time.Hour),
			Principal:     "ci",
			WorkflowID:    fmt.Sprintf("route/wf-%d", i),
			RunID:         fmt.Sprintf("run-%d", i),
		}
		require.NoError(t, pub.Publish(ctx, evs[i]))
	}
	return brokers, topic, evs
}

func emptyStore(t *testing.T) *Store {
	t.Helper()
	store := NewStore(testenv.Mongo(t))
	require.NoError(t, store.EnsureIndexes(context.Background(), 0))
	return store
}

func TestAuditBackfillRebuildsEveryDocumentAndASecondRunWritesNothing(t *testing.T) {
	brokers, topic, evs := publish(t, 50)
	store := emptyStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	st, err := Backfill(ctx, store, brokers, topic, time.Time{}, zaptest.NewLogger(t))
	require.NoError(t, err)
	require.Equal(t, BackfillStats{Read: 50, Written: 50}, st)

	for _, e := range evs {
		var got Document
		require.NoError(t, store.Collection().FindOne(ctx, bson.D{{Key: "event_id", Value: e.EventID}}).Decode(&got))
		want := FromEvent(e, "backfill")
		require.False(t, got.ProcessedAt.IsZero())
		got.ProcessedAt = want.ProcessedAt
		got.OccurredAt = got.OccurredAt.UTC()
		require.Equal(t, want, got)
	}

	st, err = Backfill(ctx, store, brokers, topic, time.Time{}, zaptest.NewLogger(t))
	require.NoError(t, err)
	require.Equal(t, BackfillStats{Read: 50, AlreadyPresent: 50}, st)
	n, err := store.Collection().CountDocuments(ctx, bson.D{})
	require.NoError(t, err)
	require.EqualValues(t, 50, n)
}

func TestAuditBackfillSinceSkipsOlderEvents(t *testing.T) {
	brokers, topic, evs := publish(t, 50)
	store := emptyStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	since := evs[19].OccurredAt // events 0..19 occurred at or after it
	st, err := Backfill(ctx, store, brokers, topic, since, zaptest.NewLogger(t))
	require.NoError(t, err)
	require.Equal(t, BackfillStats{Read: 50, Written: 20, Skipped: 30}, st)

	res, err := store.TimeRange(ctx, time.Unix(0, 0), base.Add(time.Hour), Page{})
	require.NoError(t, err)
	require.Len(t, res.Events, 20)
	require.Equal(t, evs[19].EventID, res.Events[19].EventID, "the oldest one kept is the one at since")
}

func TestAuditBackfillSkipsUndecodableMessagesAndEndsOnAnEmptyTopic(t *testing.T) {
	topic := testenv.Name(t, "route-events")
	brokers := testenv.Kafka(t, topic, 2)
	store := emptyStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	st, err := Backfill(ctx, store, brokers, topic, time.Time{}, zaptest.NewLogger(t))
	require.NoError(t, err)
	require.Equal(t, BackfillStats{}, st, "an empty topic ends at once")

	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	t.Cleanup(func() { _ = w.Close() })
	require.NoError(t, w.WriteMessages(ctx, kafka.Message{Value: []byte("not json")}, kafka.Message{Value: []byte(`{"event_id":""}`)}))

	st, err = Backfill(ctx, store, brokers, topic, time.Time{}, zaptest.NewLogger(t))
	require.NoError(t, err)
	require.Equal(t, BackfillStats{Read: 2, Skipped: 2}, st)
}

func TestAuditBackfillOfAMissingTopicFails(t *testing.T) {
	brokers := testenv.Kafka(t, testenv.Name(t, "other"), 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := Backfill(ctx, emptyStore(t), brokers, "no-such-topic", time.Time{}, zaptest.NewLogger(t))
	require.Error(t, err)
}
