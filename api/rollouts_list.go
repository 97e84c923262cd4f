package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/converter"

	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/workflows"
)

// rolloutStatuses maps each status GET /api/v1/rollouts filters on to its
// visibility query. A rollout upserts TmStatus at every change of state
// (workflows.rollout.upsertStatus, the approval gate's end); failed is
// every way the workflow ends without completing.
var rolloutStatuses = map[string]string{
	workflows.RolloutRunning:        `TmStatus = 'running' AND ExecutionStatus = 'Running'`,
	workflows.RolloutPaused:         `TmStatus = 'paused' AND ExecutionStatus = 'Running'`,
	workflows.StateAwaitingApproval: `TmStatus = 'awaiting_approval' AND ExecutionStatus = 'Running'`,
	workflows.RolloutCompleted:      `TmStatus = 'completed' AND ExecutionStatus = 'Completed'`,
	workflows.RolloutAborted:        `TmStatus = 'aborted'`,
	workflows.RolloutRejected:       `TmStatus = 'rejected'`,
	workflows.StateExpired:          `TmStatus = 'expired'`,
	workflows.StateCancelled:        `TmStatus = 'cancelled'`,
	workflows.StateFailed:           `ExecutionStatus IN ('Failed', 'Terminated', 'TimedOut', 'Canceled')`,
}

const rolloutStatusHelp = "status must be one of running, paused, awaiting_approval, completed, aborted, rejected, expired, cancelled, failed"

// listedRollout is one rollout of GET /api/v1/rollouts.
type listedRollout struct {
	ID         string     `json:"id"`
	WorkflowID string     `json:"workflow_id"`
	Status     string     `json:"status"`
	Service    string     `json:"service"`
	Env        string     `json:"env"`
	To         string     `json:"to,omitempty"`
	StartedAt  *time.Time `json:"started_at"`
}

type rolloutList struct {
	Rollouts   []listedRollout `json:"rollouts"`
	NextCursor string          `json:"next_cursor"`
}

// rolloutQuery is a validated GET /api/v1/rollouts request: the
// mutations listing's parameters (tenant scoping, status, limit, cursor)
// and service and env.
type rolloutQuery struct {
	mutationQuery
	service, env string
}

func parseRolloutQuery(c *gin.Context) (q rolloutQuery, empty bool, err error) {
	for _, p := range []struct {
		name string
		dst  *string
	}{{"service", &q.service}, {"env", &q.env}} {
		if v := c.Query(p.name); v != "" {
			if err := routes.ValidateName(p.name, v); err != nil {
				return q, false, err
			}
			*p.dst = v
		}
	}
	q.mutationQuery, empty, err = parseListQuery(c, rolloutStatuses, rolloutStatusHelp)
	return q, empty, err
}

// visibilityQuery is q as a Temporal visibility query (names are
// validated: quoting them is enough).
func (q rolloutQuery) visibilityQuery() string {
	parts := []string{"WorkflowType = '" + workflows.RolloutWorkflowType + "'"}
	if q.tenants != nil {
		parts = append(parts, tenantClause(q.tenants))
	}
	if q.service != "" {
		parts = append(parts, "TmService = '"+q.service+"'")
	}
	if q.env != "" {
		parts = append(parts, "TmEnv = '"+q.env+"'")
	}
	if q.status != "" {
		parts = append(parts, rolloutStatuses[q.status])
	}
	return strings.Join(parts, " AND ")
}

// listRollouts is GET /api/v1/rollouts: rollouts from Temporal
// visibility, newest first, scoped to the token's tenants.
func (s *Server) listRollouts(c *gin.Context) {
	q, empty, err := parseRolloutQuery(c)
	if err != nil {
		WriteError(c, nil, err)
		return
	}
	if empty {
		c.JSON(http.StatusOK, rolloutList{Rollouts: []listedRollout{}})
		return
	}
	resp, ok := s.listPage(c, q.mutationQuery, q.visibilityQuery())
	if !ok {
		return
	}
	out := rolloutList{Rollouts: make([]listedRollout, 0, len(resp.GetExecutions())), NextCursor: nextCursor(resp)}
	for _, info := range resp.GetExecutions() {
		out.Rollouts = append(out.Rollouts, listedRolloutOf(info))
	}
	c.JSON(http.StatusOK, out)
}

// listedRolloutOf renders a rollout from its visibility record. to is in
// the memo of rollouts started since the listing exists.
func listedRolloutOf(info *workflowpb.WorkflowExecutionInfo) listedRollout {
	wfID := info.GetExecution().GetWorkflowId()
	attrs := info.GetSearchAttributes().GetIndexedFields()
	out := listedRollout{
		ID:         strings.TrimPrefix(wfID, "rollout/"),
		WorkflowID: wfID,
		Status:     rolloutListedStatus(info.GetStatus(), keyword(attrs, "TmStatus")),
		Service:    keyword(attrs, "TmService"),
		Env:        keyword(attrs, "TmEnv"),
	}
	if p, ok := info.GetMemo().GetFields()["to"]; ok {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &out.To)
	}
	if ts := info.GetStartTime(); ts != nil {
		t := ts.AsTime()
		out.StartedAt = &t
	}
	return out
}

// rolloutListedStatus is a listed rollout's status: its TmStatus while it
// runs and once it completed (completed when it ended before its last
// upsert), failed for every other way it ended.
func rolloutListedStatus(st enumspb.WorkflowExecutionStatus, state string) string {
	switch st {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		if state == "" {
			return workflows.RolloutRunning
		}
		return state
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		switch state {
		case "", workflows.RolloutRunning, workflows.RolloutPaused, workflows.StateAwaitingApproval:
			return workflows.RolloutCompleted
		}
		return state
	}
	return workflows.StateFailed
}
