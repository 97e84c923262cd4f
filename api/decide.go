package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/workflows"
)

// errNotPending answers a cancel, approve or reject of a mutation that
// does not wait (any more) for what the request would end.
var errNotPending = &Error{Status: http.StatusConflict, Code: "mutation_not_pending",
	Message: "the mutation is not waiting any more: it has applied or ended"}

// errSelfApproval answers an approval by the principal that requested the
// mutation (four eyes).
var errSelfApproval = PermissionDenied("you requested this mutation: another principal must approve it")

// maxComment bounds a decision's comment, in bytes.
const maxComment = 1024

// decisionRequest is the optional body of approve and reject.
type decisionRequest struct {
	Comment string `json:"comment"`
}

func (r decisionRequest) validate() error {
	if len(r.Comment) > maxComment {
		return InvalidArgument("comment must be at most 1024 bytes")
	}
	if !utf8.ValidString(r.Comment) {
		return InvalidArgument("comment must be valid UTF-8")
	}
	for _, ch := range r.Comment {
		if unicode.IsControl(ch) && ch != '\n' && ch != '\t' {
			return InvalidArgument("comment must not contain control characters but newlines and tabs")
		}
	}
	return nil
}

// approverScope is the part of a scope that decides approvals
// (auth.Principal).
type approverScope interface {
	Approves(tenant string) bool
}

// decideMutation is POST /api/v1/mutations/{workflow_id}/cancel, /approve
// and /reject, for single, batch and split mutations, and for rollouts
// awaiting approval.
func (s *Server) decideMutation(c *gin.Context) {
	id := strings.TrimPrefix(c.Param("id"), "/")
	wfID, verb := id, ""
	if i := strings.LastIndexByte(id, '/'); i >= 0 {
		wfID, verb = id[:i], id[i+1:]
	}
	mid, ok := parseMutationID(wfID)
	known := verb == "cancel" || verb == "approve" || verb == "reject"
	if !ok || !known || Authorize(c, mid.tenant, false) != nil {
		// Another tenant's mutation answers as a missing one: its
		// existence never leaks.
		WriteError(c, nil, MutationNotFound("no mutation "+truncate(wfID)))
		return
	}
	if verb == "cancel" {
		if err := Authorize(c, mid.tenant, true); err != nil {
			WriteError(c, nil, err)
			return
		}
		s.decide(c, mid, workflows.CancelUpdate, nil)
		return
	}
	if sc := scopeOf(c); sc != nil {
		if a, ok := sc.(approverScope); !ok || !a.Approves(mid.tenant) {
			WriteError(c, nil, PermissionDenied("this token may not approve or reject mutations of tenant "+mid.tenant+"; that takes an approver or admin token"))
			return
		}
	}
	var req decisionRequest
	err := decodeJSON(c, &req, true)
	if err == nil {
		err = req.validate()
	}
	if err != nil {
		WriteError(c, nil, err)
		return
	}
	d := workflows.Decision{By: workflows.Actor{ID: PrincipalID(c), Name: cmp.Or(PrincipalName(c), "anonymous")}, Comment: req.Comment}
	name := workflows.RejectUpdate
	if verb == "approve" {
		name = workflows.ApproveUpdate
	}
	s.decide(c, mid, name, &d)
}

// decide sends the update (cancel, approve or reject) to a waiting
// mutation and answers its status. Everything the workflow refuses is
// 409 mutation_not_pending (it does not wait for this any more) or, for
// an approval by its requester, 403.
func (s *Server) decide(c *gin.Context, id mutationID, update string, d *workflows.Decision) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 10*time.Second)
	defer cancel()
	log := s.log.With(zap.String("workflow_id", id.wfID), zap.String("update", update))
	info, found := s.describe(c, ctx, id.wfID)
	if !found {
		return
	}
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		s.notPending(c, ctx, id, info, update, d)
		return
	}
	runID := info.GetExecution().GetRunId()
	if d != nil {
		// Answer the requester and a decided mutation without an update
		// (a rejected update adds nothing to the history either; this
		// only makes the answer independent of the workflow's version).
		var st struct {
			State       string           `json:"state"`
			Status      string           `json:"status"` // a rollout's
			RequestedBy *workflows.Actor `json:"requested_by"`
		}
		if s.workflowStatus(ctx, id.wfID, runID, info.GetStatus(), &st) == nil {
			if id.rollout {
				st.State = st.Status
			}
			if update == workflows.ApproveUpdate && st.RequestedBy != nil && st.RequestedBy.ID != "" && st.RequestedBy.ID == d.By.ID {
				WriteError(c, nil, errSelfApproval)
				return
			}
			if st.State != workflows.StateAwaitingApproval {
				s.notPending(c, ctx, id, info, update, d)
				return
			}
		}
	}
	opts := client.UpdateWorkflowOptions{
		WorkflowID: id.wfID, RunID: runID, UpdateName: update,
		WaitForStage: client.WorkflowUpdateStageCompleted,
	}
	if d != nil {
		opts.Args = []any{*d}
	}
	handle, err := s.o.Temporal.UpdateWorkflow(ctx, opts)
	if err == nil {
		err = handle.Get(ctx, nil)
	}
	if err != nil {
		if e := decisionError(err); e == errNotPending {
			if desc, derr := s.o.Temporal.DescribeWorkflowExecution(ctx, id.wfID, ""); derr == nil {
				info = desc.GetWorkflowExecutionInfo()
			}
			s.notPending(c, ctx, id, info, update, d)
		} else {
			WriteError(c, log, e)
		}
		return
	}
	// The answer is the status as GET shows it now.
	if desc, err := s.o.Temporal.DescribeWorkflowExecution(ctx, id.wfID, ""); err == nil {
		info = desc.GetWorkflowExecutionInfo()
	}
	c.JSON(http.StatusOK, s.statusAnswer(ctx, id, info))
}

// decisionError maps a refused cancel, approve or reject.
func decisionError(err error) error {
	var appErr *temporal.ApplicationError
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &appErr) && appErr.Type() == workflows.ErrTypeSelfApproval:
		return errSelfApproval
	case errors.As(err, &appErr) && appErr.Type() == workflows.ErrTypeNotPending, errors.As(err, &nf):
		return errNotPending // applied, or ended meanwhile
	case errors.As(err, &appErr):
		// Another refusal by the workflow (an older workflow without this
		// update, say): the mutation does not wait for this decision.
		return errNotPending
	}
	return temporalError(err)
}

// notPending answers a decision the mutation no longer waits for: 409
// mutation_not_pending, except for the same principal repeating the
// decision it made (an approve or reject retried after its answer was
// lost), which is answered 200 with the status, as the first was. Without
// identities (TM_AUTH=off) there is no telling who decided: always 409.
func (s *Server) notPending(c *gin.Context, ctx context.Context, id mutationID, info *workflowpb.WorkflowExecutionInfo, update string, d *workflows.Decision) {
	if d == nil || d.By.ID == "" {
		WriteError(c, nil, errNotPending)
		return
	}
	ans := s.statusAnswer(ctx, id, info)
	b, err := json.Marshal(ans)
	var st struct {
		ApprovedBy *workflows.Actor `json:"approved_by"`
		RejectedBy *workflows.Actor `json:"rejected_by"`
	}
	if err != nil || json.Unmarshal(b, &st) != nil {
		WriteError(c, nil, errNotPending)
		return
	}
	by := st.ApprovedBy
	if update == workflows.RejectUpdate {
		by = st.RejectedBy
	}
	if by == nil || by.ID != d.By.ID {
		WriteError(c, nil, errNotPending)
		return
	}
	c.JSON(http.StatusOK, ans)
}
