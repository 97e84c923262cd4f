package api

import (
	"context"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/grpc/codes"

	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/workflows"
)

// Limits of GET /api/v1/mutations.
const (
	defaultMutationsLimit = 50
	maxMutationsLimit     = 200
)

// listStatuses maps each status GET /api/v1/mutations filters on to its
// visibility query. Waiting states are running workflows with that
// TmStatus. failed is every way a workflow ends without completing, and a
// mutation that waited and whose commit was then rejected (the workflow
// stores TmStatus failed). The other terminal values are as the workflow
// stored them; a mutation that never waited keeps the TmStatus running it
// started with, so completed also covers those that ended with it.
var listStatuses = map[string]string{
	workflows.StateScheduled:        `TmStatus = 'scheduled' AND ExecutionStatus = 'Running'`,
	workflows.StateAwaitingApproval: `TmStatus = 'awaiting_approval' AND ExecutionStatus = 'Running'`,
	workflows.StateRevertPending:    `TmStatus = 'revert_pending' AND ExecutionStatus = 'Running'`,
	workflows.StateRunning:          `TmStatus = 'running' AND ExecutionStatus = 'Running'`,
	workflows.StateFailed:           `(ExecutionStatus IN ('Failed', 'Terminated', 'TimedOut', 'Canceled') OR TmStatus = 'failed')`,
	workflows.StateCompleted:        `ExecutionStatus = 'Completed' AND TmStatus IN ('completed', 'running')`,
	workflows.StateDenied:           `TmStatus = 'rejected'`,
	workflows.StateExpired:          `TmStatus = 'expired'`,
	workflows.StateCancelled:        `TmStatus = 'cancelled'`,
}

// listedMutation is one mutation of GET /api/v1/mutations.
type listedMutation struct {
	WorkflowID  string           `json:"workflow_id"`
	RunID       string           `json:"run_id"`
	Status      string           `json:"status"`
	Action      string           `json:"action"`
	Route       any              `json:"route"`
	NotBefore   *time.Time       `json:"not_before,omitempty"`
	RequestedBy *workflows.Actor `json:"requested_by,omitempty"`
}

type mutationList struct {
	Mutations  []listedMutation `json:"mutations"`
	NextCursor string           `json:"next_cursor"`
}

// mutationQuery is a validated GET /api/v1/mutations request.
type mutationQuery struct {
	tenants []string // nil: every tenant
	status  string
	limit   int
	cursor  []byte
}

// parseMutationQuery validates the query parameters and scopes the
// tenants to the token's. empty is true when the token sees no tenant at
// all (nothing to list).
func parseMutationQuery(c *gin.Context) (q mutationQuery, empty bool, err error) {
	return parseListQuery(c, listStatuses, "status must be one of scheduled, awaiting_approval, running, revert_pending, failed, completed, rejected, expired, cancelled")
}

// parseListQuery validates tenant, status (one of statuses' keys, else
// statusHelp), limit and cursor of a visibility listing (mutations,
// rollouts) and scopes the tenants to the token's.
func parseListQuery(c *gin.Context, statuses map[string]string, statusHelp string) (q mutationQuery, empty bool, err error) {
	tenant := c.Query("tenant")
	if tenant != "" {
		if err := routes.ValidateName("tenant", tenant); err != nil {
			return q, false, err
		}
	}
	q.status = c.Query("status")
	if _, ok := statuses[q.status]; q.status != "" && !ok {
		return q, false, InvalidArgument(statusHelp)
	}
	q.limit = defaultMutationsLimit
	if v, ok := c.GetQuery("limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxMutationsLimit {
			return q, false, InvalidArgument("limit must be an integer from 1 to 200")
		}
		q.limit = n
	}
	if v := c.Query("cursor"); v != "" {
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || len(b) == 0 {
			return q, false, InvalidArgument("cursor is not a next_cursor of this list")
		}
		q.cursor = b
	}
	scoped, err := ScopeTenants(c, tenant)
	if err != nil {
		return q, false, err
	}
	switch {
	case scoped != nil:
		q.tenants = scoped
		if len(scoped) == 1 && scoped[0] == "" {
			return q, true, nil
		}
	case tenant != "":
		q.tenants = []string{tenant}
	}
	return q, false, nil
}

// tenantClause restricts a visibility query to tenants (validated names:
// letters, digits, '-', so quoting them is enough).
func tenantClause(tenants []string) string {
	quoted := make([]string, len(tenants))
	for i, t := range tenants {
		quoted[i] = "'" + strings.ReplaceAll(t, "'", "") + "'"
	}
	return "TmTenant IN (" + strings.Join(quoted, ", ") + ")"
}

// listPage runs one page of a visibility listing; a cursor Temporal
// refuses is the client's 400. ok is false once the error is written.
func (s *Server) listPage(c *gin.Context, q mutationQuery, query string) (*workflowservice.ListWorkflowExecutionsResponse, bool) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 5*time.Second)
	defer cancel()
	resp, err := s.o.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		PageSize:      int32(q.limit),
		NextPageToken: q.cursor,
		Query:         query,
	})
	if err != nil {
		if code, ok := serviceCode(err); ok && code == codes.InvalidArgument && q.cursor != nil {
			WriteError(c, nil, InvalidArgument("cursor is not a next_cursor of this list"))
			return nil, false
		}
		WriteError(c, s.log, temporalError(err))
		return nil, false
	}
	return resp, true
}

// nextCursor is the next_cursor of a page: "" on the last one.
func nextCursor(resp *workflowservice.ListWorkflowExecutionsResponse) string {
	if tok := resp.GetNextPageToken(); len(tok) > 0 {
		return base64.RawURLEncoding.EncodeToString(tok)
	}
	return ""
}

// visibilityQuery is q as a Temporal visibility query: route, batch and
// split mutations, and rollouts when they can await approval (a rollout
// awaiting approval is decided as a mutation is).
func (q mutationQuery) visibilityQuery() string {
	types := []string{workflows.WorkflowType, workflows.BatchWorkflowType, workflows.SplitWorkflowType}
	if q.status == workflows.StateAwaitingApproval {
		types = append(types, workflows.RolloutWorkflowType)
	}
	parts := []string{"WorkflowType IN ('" + strings.Join(types, "', '") + "')"}
	if q.tenants != nil {
		parts = append(parts, tenantClause(q.tenants))
	}
	if q.status != "" {
		parts = append(parts, listStatuses[q.status])
	}
	return strings.Join(parts, " AND ")
}

// listMutations is GET /api/v1/mutations: mutations from Temporal
// visibility, filtered by status, scoped to the token's tenants.
func (s *Server) listMutations(c *gin.Context) {
	q, empty, err := parseMutationQuery(c)
	if err != nil {
		WriteError(c, nil, err)
		return
	}
	if empty {
		c.JSON(http.StatusOK, mutationList{Mutations: []listedMutation{}})
		return
	}
	resp, ok := s.listPage(c, q, q.visibilityQuery())
	if !ok {
		return
	}
	out := mutationList{Mutations: make([]listedMutation, 0, len(resp.GetExecutions())), NextCursor: nextCursor(resp)}
	for _, info := range resp.GetExecutions() {
		out.Mutations = append(out.Mutations, listed(info))
	}
	c.JSON(http.StatusOK, out)
}

// listed renders one workflow of a listing from its visibility record:
// search attributes and memo, no query to the workflow.
func listed(info *workflowpb.WorkflowExecutionInfo) listedMutation {
	wfID := info.GetExecution().GetWorkflowId()
	attrs := info.GetSearchAttributes().GetIndexedFields()
	state := keyword(attrs, "TmStatus")
	out := listedMutation{
		WorkflowID: wfID,
		RunID:      info.GetExecution().GetRunId(),
		Status:     listedStatus(info.GetStatus(), state),
		Action:     keyword(attrs, "TmAction"),
	}
	if id, ok := parseMutationID(wfID); ok && !id.batch {
		switch k := id.key(); {
		case id.split:
			// The split's key (no version: a split names several);
			// TmAction is split_updated or split_deleted.
			out.Route = routes.SplitKey{Tenant: k.Tenant, Service: k.Service, Env: k.Env}
		case id.rollout:
			out.Route, out.Action = k, "rollout"
		default:
			out.Route = k
		}
	} else {
		out.Route = map[string]string{"tenant": keyword(attrs, "TmTenant")}
	}
	memo := info.GetMemo().GetFields()
	if p, ok := memo["not_before"]; ok {
		var t time.Time
		if converter.GetDefaultDataConverter().FromPayload(p, &t) == nil && !t.IsZero() {
			out.NotBefore = &t
		}
	}
	if p, ok := memo["requested_by"]; ok {
		var a workflows.Actor
		if converter.GetDefaultDataConverter().FromPayload(p, &a) == nil && a != (workflows.Actor{}) {
			out.RequestedBy = &a
		}
	}
	return out
}

// listedStatus is a listed workflow's status: the TmStatus the workflow
// last stored while it runs or once it completed, "failed" for every other
// way it ended.
func listedStatus(st enumspb.WorkflowExecutionStatus, state string) string {
	switch st {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		if state == "" {
			return workflows.StateRunning
		}
		return state
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		switch state {
		case "", workflows.StateRunning, workflows.StateScheduled, workflows.StateAwaitingApproval, workflows.StateRevertPending:
			return workflows.StateCompleted
		}
		return state
	}
	return "failed"
}

// keyword decodes a keyword search attribute, "" when absent.
func keyword(attrs map[string]*commonpb.Payload, name string) string {
	p, ok := attrs[name]
	if !ok {
		return ""
	}
	var v string
	if converter.GetDefaultDataConverter().FromPayload(p, &v) != nil {
		return ""
	}
	return v
}
