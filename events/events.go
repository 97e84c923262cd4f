// Package events defines the route-changed event published on the
// route-events topic and the Kafka producer that publishes it.
package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/trafficmanager/trafficmanager/routes"
)

// TypeRouteChanged is the event_type of every route event.
const TypeRouteChanged = "route_changed"

// Event is one route change as published on the topic. The key of the Kafka
// message is Key().String(), so one route's events stay in one partition.
type Event struct {
	EventID       string        `json:"event_id"`
	EventType     string        `json:"event_type"`
	Action        routes.Action `json:"action"`
	Tenant        string        `json:"tenant"`
	Service       string        `json:"service"`
	Env           string        `json:"env"`
	Version       string        `json:"version"`
	URL           string        `json:"url"`
	PreviousURL   string        `json:"previous_url"`
	PreviousState string        `json:"previous_state"`
	IsActive      bool          `json:"is_active"`
	Revision      int64         `json:"revision"`
	ChangedBy     string        `json:"changed_by"`
	OccurredAt    time.Time     `json:"occurred_at"`
	Principal     string        `json:"principal,omitempty"` // the authenticated token's name
	WorkflowID    string        `json:"workflow_id,omitempty"`
	RunID         string        `json:"run_id,omitempty"`
	// RollbackTo is the revision a rollback or revert restored (rolled_back,
	// reverted).
	RollbackTo int64 `json:"rollback_to,omitempty"`
	// RequestedBy and ApprovedBy name the principal that asked for the
	// change and the one that approved it (changes behind an approval).
	RequestedBy string `json:"requested_by,omitempty"`
	ApprovedBy  string `json:"approved_by,omitempty"`
}

// Key returns the key of the changed route.
func (e Event) Key() routes.Key {
	return routes.Key{Tenant: e.Tenant, Service: e.Service, Env: e.Env, Version: e.Version}
}

// FromResult builds the event of an applied mutation.
func FromResult(eventID string, action routes.Action, res routes.Result, changedBy string) Event {
	r := res.Route
	return Event{
		EventID:       eventID,
		EventType:     TypeRouteChanged,
		Action:        action,
		Tenant:        r.Tenant,
		Service:       r.Service,
		Env:           r.Env,
		Version:       r.Version,
		URL:           r.URL,
		PreviousURL:   res.PreviousURL,
		PreviousState: res.PreviousState,
		IsActive:      r.IsActive,
		Revision:      r.Revision,
		ChangedBy:     changedBy,
		OccurredAt:    r.UpdatedAt.UTC(),
	}
}

// Decode parses an event from a message value.
func Decode(value []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(value, &e); err != nil {
		return Event{}, fmt.Errorf("decode route event: %w", err)
	}
	if e.EventID == "" || e.Tenant == "" {
		return Event{}, fmt.Errorf("decode route event: missing event_id or route")
	}
	return e, nil
}

// Publisher writes events to the topic, waiting for every in-sync replica.
// A single mutation's event goes through a writer that sends at once
// (BatchSize 1: kafka-go otherwise holds a lone message for BatchTimeout,
// which the caller's acknowledgement would wait for); a batch's events go
// through one that packs them into few produce requests.
type Publisher struct {
	one, many *kafka.Writer
}

// NewPublisher returns a publisher to topic on brokers. kafka-go's zero-value
// Writer neither waits for acks nor sends before a 1 s batch timeout, so both
// are set explicitly.
func NewPublisher(brokers []string, topic string) *Publisher {
	w := func(batchSize int) *kafka.Writer {
		return &kafka.Writer{
			Addr:                   kafka.TCP(brokers...),
			Topic:                  topic,
			Balancer:               &kafka.Hash{},
			RequiredAcks:           kafka.RequireAll,
			BatchSize:              batchSize,
			BatchTimeout:           2 * time.Millisecond,
			WriteTimeout:           5 * time.Second,
			ReadTimeout:            5 * time.Second,
			MaxAttempts:            1, // Temporal retries the activity; no hidden retry loop here
			AllowAutoTopicCreation: false,
		}
	}
	return &Publisher{one: w(1), many: w(500)}
}

// Publish sends e keyed by its route and returns once the broker acked it.
func (p *Publisher) Publish(ctx context.Context, e Event) error {
	msg, err := message(e)
	if err != nil {
		return err
	}
	msgs := []kafka.Message{msg}
	ctx, span := startPublish(ctx, p.one.Topic, 1, msgs)
	defer span.End()
	if err := p.one.WriteMessages(ctx, msgs...); err != nil {
		span.RecordError(err)
		return fmt.Errorf("publish event %s: %w", e.EventID, err)
	}
	return nil
}

// PublishMany sends every event in as few produce requests as the writer's
// batch size allows and returns once the broker acked all of them. On
// error some may have been written; a retry re-sends them all with the
// same event ids.
func (p *Publisher) PublishMany(ctx context.Context, es []Event) error {
	if len(es) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(es))
	for i, e := range es {
		var err error
		if msgs[i], err = message(e); err != nil {
			return err
		}
	}
	ctx, span := startPublish(ctx, p.many.Topic, len(msgs), msgs)
	defer span.End()
	if err := p.many.WriteMessages(ctx, msgs...); err != nil {
		span.RecordError(err)
		return fmt.Errorf("publish %d events: %w", len(es), err)
	}
	return nil
}

func message(e Event) (kafka.Message, error) {
	value, err := json.Marshal(e)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encode event %s: %w", e.EventID, err)
	}
	return kafka.Message{
		Key:     []byte(e.Key().String()),
		Value:   value,
		Headers: []kafka.Header{{Key: "event_id", Value: []byte(e.EventID)}},
	}, nil
}

// Close flushes and closes the writers.
func (p *Publisher) Close() error { return errors.Join(p.one.Close(), p.many.Close()) }
