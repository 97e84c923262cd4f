package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func event(i int) events.Event {
	return events.Event{EventID: fmt.Sprintf("ev-%d", i), EventType: events.TypeRouteChanged, Action: routes.ActionCreated,
		Tenant: "team-a", Service: "payments", Env: "prod", Version: fmt.Sprintf("v%d", i), URL: "https://x.example", Revision: 1}
}

// readAll reads n messages of topic from the start of every partition.
func readAll(t *testing.T, brokers []string, topic string, n int) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []kafka.Message
	for p := range 3 {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p, MaxWait: 50 * time.Millisecond})
		conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, p)
		require.NoError(t, err)
		last, err := conn.ReadLastOffset()
		conn.Close()
		require.NoError(t, err)
		for int64(len(out)) < int64(n) && last > 0 {
			m, err := r.ReadMessage(ctx)
			require.NoError(t, err)
			out = append(out, m)
			if m.Offset >= last-1 {
				break
			}
		}
		r.Close()
	}
	return out
}

func TestPublishAndPublishManyKeyEveryEventByItsRoute(t *testing.T) {
	topic := testenv.Name(t, "events")
	brokers := testenv.Kafka(t, topic, 3)
	p := events.NewPublisher(brokers, topic)
	defer p.Close()
	ctx := context.Background()

	require.NoError(t, p.Publish(ctx, event(0)))
	many := make([]events.Event, 1200)
	for i := range many {
		many[i] = event(i + 1)
	}
	require.NoError(t, p.PublishMany(ctx, many))
	require.NoError(t, p.PublishMany(ctx, nil))

	msgs := readAll(t, brokers, topic, 1201)
	require.Len(t, msgs, 1201)
	seen := map[string]bool{}
	for _, m := range msgs {
		e, err := events.Decode(m.Value)
		require.NoError(t, err)
		require.Equal(t, e.Key().String(), string(m.Key), "keyed by route")
		require.Equal(t, "event_id", m.Headers[0].Key)
		require.Equal(t, e.EventID, string(m.Headers[0].Value))
		seen[e.EventID] = true
	}
	require.Len(t, seen, 1201)
}

// BenchmarkPublishOne is the Kafka share of a single mutation's
// acknowledgement: one event, acks=all, on the embedded broker.
func BenchmarkPublishOne(b *testing.B) {
	topic := testenv.Name(b, "events")
	brokers := testenv.Kafka(b, topic, 3)
	p := events.NewPublisher(brokers, topic)
	defer p.Close()
	ctx := context.Background()
	require.NoError(b, p.Publish(ctx, event(0)))
	b.ResetTimer()
	for i := range b.N {
		if err := p.Publish(ctx, event(i)); err != nil {
			b.Fatal(err)
		}
	}
}

func TestEventsCarryWhoRequestedAndWhoApprovedAChange(t *testing.T) {
	e := event(1)
	e.RequestedBy, e.ApprovedBy = "alice", "bob"
	b, err := json.Marshal(e)
	require.NoError(t, err)
	require.Contains(t, string(b), `"requested_by":"alice"`)
	require.Contains(t, string(b), `"approved_by":"bob"`)
	got, err := events.Decode(b)
	require.NoError(t, err)
	require.Equal(t, e, got)

	b, err = json.Marshal(event(2))
	require.NoError(t, err)
	require.NotContains(t, string(b), "requested_by", "omitted when nobody approved the change")
	require.NotContains(t, string(b), "approved_by")
}
