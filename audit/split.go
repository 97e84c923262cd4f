package audit

import "github.com/trafficmanager/trafficmanager/events"

// FromSplitEvent builds the audit document of a split change: event_type
// split_changed, route naming the env (no version), metadata.revision the
// split's revision and metadata.weights its weights after the change.
func FromSplitEvent(e events.SplitEvent, source string) Document {
	w := map[string]int(e.Weights)
	if w == nil {
		w = map[string]int{}
	}
	return Document{
		EventID:    e.EventID,
		EventType:  events.TypeSplitChanged,
		Action:     string(e.Action),
		Route:      RouteRef{Tenant: e.Tenant, Service: e.Service, Env: e.Env},
		ChangedBy:  e.ChangedBy,
		OccurredAt: e.OccurredAt.UTC(),
		Metadata: Metadata{
			Revision:        e.Revision,
			WorkflowID:      e.WorkflowID,
			RunID:           e.RunID,
			Source:          source,
			Principal:       e.Principal,
			RequestedBy:     e.RequestedBy,
			ApprovedBy:      e.ApprovedBy,
			Weights:         w,
			PreviousWeights: e.PreviousWeights,
		},
	}
}
