package console

import (
	"encoding/json"
	"time"
)

// The API's JSON, as the pages show it (docs/api.md).

type route struct {
	Tenant    string    `json:"tenant"`
	Service   string    `json:"service"`
	Env       string    `json:"env"`
	Version   string    `json:"version"`
	URL       string    `json:"url"`
	IsActive  bool      `json:"is_active"`
	Revision  int64     `json:"revision"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Path is the route's console page.
func (r route) Path() string { return routePath(r.Tenant, r.Service, r.Env, r.Version) }

type routePage struct {
	Routes     []route `json:"routes"`
	NextCursor string  `json:"next_cursor"`
}

type revision struct {
	Revision   int64     `json:"revision"`
	Action     string    `json:"action"`
	URL        string    `json:"url"`
	IsActive   bool      `json:"is_active"`
	ChangedBy  string    `json:"changed_by"`
	EventID    string    `json:"event_id"`
	WorkflowID string    `json:"workflow_id"`
	OccurredAt time.Time `json:"occurred_at"`
	RollbackTo *int64    `json:"rollback_to"`

	// Filled by the page: what changed against the revision before.
	Changes []string `json:"-"`
}

type historyPage struct {
	Revisions  []revision `json:"revisions"`
	NextCursor string     `json:"next_cursor"`
}

type actor struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// routeRef is a mutation's route: a key, or just the tenant of a batch.
type routeRef struct {
	Tenant  string `json:"tenant"`
	Service string `json:"service"`
	Env     string `json:"env"`
	Version string `json:"version"`
	URL     string `json:"url"`
}

func (r routeRef) IsRoute() bool { return r.Version != "" }

// Label names what a mutation that is not one route's acts on: a split's
// tenant/service/env, or a batch's tenant.
func (r routeRef) Label() string {
	if r.Service != "" {
		return r.Tenant + "/" + r.Service + "/" + r.Env + " (split)"
	}
	return "batch of " + r.Tenant
}
func (r routeRef) Path() string { return routePath(r.Tenant, r.Service, r.Env, r.Version) }

type listedMutation struct {
	WorkflowID  string     `json:"workflow_id"`
	RunID       string     `json:"run_id"`
	Status      string     `json:"status"`
	Action      string     `json:"action"`
	Route       routeRef   `json:"route"`
	NotBefore   *time.Time `json:"not_before"`
	RequestedBy *actor     `json:"requested_by"`
}

func (m listedMutation) RequesterID() string {
	if m.RequestedBy == nil {
		return ""
	}
	return m.RequestedBy.ID
}

type mutationList struct {
	Mutations  []listedMutation `json:"mutations"`
	NextCursor string           `json:"next_cursor"`
}

type propagationStatus struct {
	Resolvers int      `json:"resolvers"`
	Applied   int      `json:"applied"`
	Complete  bool     `json:"complete"`
	Pending   []string `json:"pending"`
}

// mutationStatus is GET /api/v1/mutations/{id}, single or batch.
type mutationStatus struct {
	WorkflowID  string                          `json:"workflow_id"`
	RunID       string                          `json:"run_id"`
	Status      string                          `json:"status"`
	Action      string                          `json:"action"`
	RouteRaw    json.RawMessage                 `json:"route"`
	Tenant      string                          `json:"tenant"`
	Routes      json.RawMessage                 `json:"routes"`
	Changed     *bool                           `json:"changed"`
	EventID     string                          `json:"event_id"`
	Steps       map[string]string               `json:"steps"`
	Error       *struct{ Code, Message string } `json:"error"`
	Hint        string                          `json:"hint"`
	NotBefore   *time.Time                      `json:"not_before"`
	RequestedBy *actor                          `json:"requested_by"`
	ApprovedBy  *actor                          `json:"approved_by"`
	RejectedBy  *actor                          `json:"rejected_by"`
	Comment     string                          `json:"comment"`
	ExpiresAt   *time.Time                      `json:"expires_at"`
	RevertAt    *time.Time                      `json:"revert_at"`
	Propagation *propagationStatus              `json:"propagation"`

	Route routeRef `json:"-"`
}

func (m mutationStatus) RequesterID() string {
	if m.RequestedBy == nil {
		return ""
	}
	return m.RequestedBy.ID
}

// Pending reports whether the mutation still waits (cancel may apply).
func (m mutationStatus) Pending() bool {
	return m.Status == "awaiting_approval" || m.Status == "scheduled" || m.Status == "revert_pending"
}

// stepOrder is the order the steps happen in.
var stepOrder = []string{"committed", "invalidated", "published", "audited"}
