package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/workflows"
)

// maxNotBefore is how far ahead a write may be scheduled.
const maxNotBefore = 90 * 24 * time.Hour

// notBefore is a write's not_before: when it was given, the time, and
// whether it is still ahead (a time already passed means "apply now").
type notBefore struct {
	at     time.Time
	future bool
}

// parseNotBefore validates a body's not_before against now; "" is nil.
func parseNotBefore(v string, now time.Time) (*notBefore, error) {
	if v == "" {
		return nil, nil
	}
	at, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return nil, InvalidArgument("not_before must be an RFC 3339 time, as in 2026-12-01T09:00:00Z")
	}
	if at.After(now.Add(maxNotBefore)) {
		return nil, InvalidArgument("not_before must be at most 90 days ahead")
	}
	return &notBefore{at: at.UTC(), future: at.After(now)}, nil
}

// scheduled reports whether the write waits for its time.
func (nb *notBefore) scheduled() bool { return nb != nil && nb.future }

// requestHash fingerprints m and its not_before, so the same
// Idempotency-Key with another time is another request. A write without
// one hashes as before scheduled writes existed.
func (nb *notBefore) requestHash(m routes.Mutation) string {
	if nb == nil {
		return workflows.RequestHash(m)
	}
	return workflows.RequestHash(struct {
		Mutation  routes.Mutation `json:"mutation"`
		NotBefore time.Time       `json:"not_before"`
	}{m, nb.at})
}

// scheduledResponse is the 202 answer of a scheduled write.
type scheduledResponse struct {
	WorkflowID string    `json:"workflow_id"`
	RunID      string    `json:"run_id"`
	Status     string    `json:"status"`
	NotBefore  time.Time `json:"not_before"`
}

// schedule starts (or joins) the scheduled mutation's workflow with
// update-with-start and answers 202 once its commit update is accepted:
// conflicts and a missing route are decided when it applies, and show in
// the mutation's status.
func (s *Server) schedule(ctx context.Context, c *gin.Context, wfID string, in workflows.MutationInput) (int, any, error) {
	startOp := s.o.Temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       wfID,
		TaskQueue:                s.o.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes:    workflows.SearchAttributes(in.Mutation),
	}, workflows.WorkflowType, in)
	handle, err := s.o.Temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: startOp,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateID:     "commit",
			UpdateName:   workflows.CommitUpdate,
			WaitForStage: client.WorkflowUpdateStageAccepted,
		},
	})
	if err != nil {
		if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
			// Same Idempotency-Key, and that mutation has ended.
			resp, err := s.finished(ctx, wfID, in.RequestHash)
			return mutationStatusCode(resp.Action, resp.Changed), resp, err
		}
		return 0, nil, temporalError(err)
	}
	var st workflows.Status
	if v, err := s.o.Temporal.QueryWorkflow(ctx, wfID, handle.RunID(), workflows.StatusQuery); err == nil && v.Get(&st) == nil {
		if !sameRequest(st.RequestHash, in.RequestHash) {
			return 0, nil, errKeyReused
		}
	}
	c.Header("Location", "/api/v1/mutations/"+wfID)
	return http.StatusAccepted, scheduledResponse{
		WorkflowID: wfID, RunID: handle.RunID(), Status: workflows.StateScheduled, NotBefore: *in.NotBefore,
	}, nil
}

// scheduledStatus is a mutation's status name: Temporal's, but scheduled
// while it waits for its time and cancelled once cancelled.
func scheduledStatus(temporalStatus, state string) string {
	switch state {
	case workflows.StateScheduled:
		if temporalStatus == "running" {
			return workflows.StateScheduled
		}
	case workflows.StateCancelled:
		return workflows.StateCancelled
	}
	return temporalStatus
}

// errNotPending answers a cancel of a mutation that has applied or ended.
var errNotPending = &Error{Status: http.StatusConflict, Code: "mutation_not_pending",
	Message: "the mutation is not scheduled any more: it has applied or ended"}

// cancelMutation is POST /api/v1/mutations/{workflow_id}/cancel: it cancels
// a scheduled single write before it applies, and answers its status.
func (s *Server) cancelMutation(c *gin.Context) {
	id := strings.TrimPrefix(c.Param("id"), "/")
	wfID, ok := strings.CutSuffix(id, "/cancel")
	parts := strings.Split(wfID, "/")
	if !ok || len(wfID) > 512 || len(parts) != 7 || parts[0] != "route" || Authorize(c, parts[1], false) != nil {
		WriteError(c, nil, MutationNotFound("no mutation "+truncate(wfID)))
		return
	}
	if err := Authorize(c, parts[1], true); err != nil {
		WriteError(c, s.log, err)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 5*time.Second)
	defer cancel()
	info, found := s.describe(c, ctx, wfID)
	if !found {
		return
	}
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		WriteError(c, nil, errNotPending)
		return
	}
	runID := info.GetExecution().GetRunId()
	handle, err := s.o.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: wfID, RunID: runID, UpdateName: workflows.CancelUpdate,
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var st workflows.Status
	if err == nil {
		err = handle.Get(ctx, &st)
	}
	var appErr *temporal.ApplicationError
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &appErr) && appErr.Type() == workflows.ErrTypeNotPending, errors.As(err, &nf):
		WriteError(c, nil, errNotPending) // applied, or ended meanwhile
		return
	case err != nil:
		WriteError(c, s.log.With(zap.String("workflow_id", wfID)), temporalError(err))
		return
	}
	c.JSON(http.StatusOK, mutationStatus{
		WorkflowID: wfID, RunID: runID, Status: workflows.StateCancelled,
		Action: st.Action, Route: st.Key, EventID: st.EventID, Steps: st.Steps, NotBefore: st.NotBefore,
	})
}
