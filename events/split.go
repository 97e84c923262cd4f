package events

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/trafficmanager/trafficmanager/routes"
)

// TypeSplitChanged is the event_type of a split change on the same topic
// as route events. Consumers that only care about routes must skip it
// (its version is empty); the resolver drops the env's split answers.
const TypeSplitChanged = "split_changed"

// SplitEvent is one split change as published on the topic, keyed by
// "{tenant}:{service}:{env}".
type SplitEvent struct {
	EventID   string        `json:"event_id"`
	EventType string        `json:"event_type"`
	Action    routes.Action `json:"action"` // split_updated or split_deleted
	Tenant    string        `json:"tenant"`
	Service   string        `json:"service"`
	Env       string        `json:"env"`
	// Weights are the split after the change (empty after a delete).
	Weights         routes.Weights `json:"weights"`
	PreviousWeights routes.Weights `json:"previous_weights,omitempty"`
	Revision        int64          `json:"revision"`
	ChangedBy       string         `json:"changed_by"`
	OccurredAt      time.Time      `json:"occurred_at"`
	Principal       string         `json:"principal,omitempty"`
	WorkflowID      string         `json:"workflow_id,omitempty"`
	RunID           string         `json:"run_id,omitempty"`
	RequestedBy     string         `json:"requested_by,omitempty"`
	ApprovedBy      string         `json:"approved_by,omitempty"`
}

// Key returns the changed split's key.
func (e SplitEvent) Key() routes.SplitKey {
	return routes.SplitKey{Tenant: e.Tenant, Service: e.Service, Env: e.Env}
}

// FromSplitResult builds the event of an applied split mutation.
func FromSplitResult(eventID string, action routes.Action, res routes.SplitResult, changedBy string) SplitEvent {
	sp := res.Split
	w := sp.Weights
	if w == nil {
		w = routes.Weights{}
	}
	return SplitEvent{
		EventID: eventID, EventType: TypeSplitChanged, Action: action,
		Tenant: sp.Tenant, Service: sp.Service, Env: sp.Env,
		Weights: w, PreviousWeights: res.PreviousWeights, Revision: sp.Revision,
		ChangedBy: changedBy, OccurredAt: sp.UpdatedAt.UTC(),
	}
}

// PublishSplit sends e keyed by its split and returns once the broker
// acked it. A retry re-sends the same event id.
func (p *Publisher) PublishSplit(ctx context.Context, e SplitEvent) error {
	value, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode split event %s: %w", e.EventID, err)
	}
	msgs := []kafka.Message{{
		Key:     []byte(e.Key().String()),
		Value:   value,
		Headers: []kafka.Header{{Key: "event_id", Value: []byte(e.EventID)}},
	}}
	ctx, span := startPublish(ctx, p.one.Topic, 1, msgs)
	defer span.End()
	if err := p.one.WriteMessages(ctx, msgs...); err != nil {
		span.RecordError(err)
		return fmt.Errorf("publish split event %s: %w", e.EventID, err)
	}
	return nil
}
