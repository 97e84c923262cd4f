package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/workflows"
)

// maxNotBefore is how far ahead a write may be scheduled.
const maxNotBefore = 90 * 24 * time.Hour

// notBeforeGrace is how far in the past a not_before may be and still mean
// "apply now" (clock skew, a client that computed "now"); older is 400.
const notBeforeGrace = time.Minute

// notBefore is a write's not_before: when it was given, the time, and
// whether it is still ahead (a time within notBeforeGrace in the past
// means "apply now").
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
	if at.Before(now.Add(-notBeforeGrace)) {
		return nil, InvalidArgument("not_before is in the past; leave it out to apply now")
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

// maxRevertAfter and minRevertAfter bound a write's revert_after.
const (
	minRevertAfter = time.Second
	maxRevertAfter = 30 * 24 * time.Hour
)

// parseRevertAfter validates a body's revert_after; "" is 0 (no revert).
func parseRevertAfter(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < minRevertAfter || d > maxRevertAfter {
		return 0, InvalidArgument("revert_after must be a Go duration from 1s to 720h (30 days), as in 90m")
	}
	return d, nil
}

// errRevertCreate answers a revert_after on a create or a batch of them.
var errRevertCreate = InvalidArgument("revert_after needs a previous state: a create has none")

// timing is when a write applies (not_before) and whether it is put back
// (revert_after).
type timing struct {
	nb          *notBefore
	revertAfter time.Duration
}

// parseTiming validates a body's not_before and revert_after.
func parseTiming(notBeforeV, revertAfterV string, now time.Time) (timing, error) {
	nb, err := parseNotBefore(notBeforeV, now)
	if err != nil {
		return timing{}, err
	}
	d, err := parseRevertAfter(revertAfterV)
	return timing{nb: nb, revertAfter: d}, err
}

// requestHash fingerprints m with its timing, so the same Idempotency-Key
// with another not_before or revert_after is another request. A write
// without a revert_after hashes as before revert_after existed.
func (t timing) requestHash(m routes.Mutation) string {
	if t.revertAfter == 0 {
		return t.nb.requestHash(m)
	}
	var at *time.Time
	if t.nb != nil {
		at = &t.nb.at
	}
	return workflows.RequestHash(struct {
		Mutation    routes.Mutation `json:"mutation"`
		NotBefore   *time.Time      `json:"not_before,omitempty"`
		RevertAfter time.Duration   `json:"revert_after"`
	}{m, at, t.revertAfter})
}

// requester is the principal of the request as the workflows record it:
// nil with TM_AUTH=off, where there are no identities.
func requester(c *gin.Context) *workflows.Actor {
	id := PrincipalID(c)
	if id == "" {
		return nil
	}
	return &workflows.Actor{ID: id, Name: PrincipalName(c)}
}

// PrincipalID returns the authenticated token's id, or "" (TM_AUTH=off).
func PrincipalID(c *gin.Context) string {
	if v, ok := c.Get("principal_id"); ok {
		if s, ok := v.(string); ok {
			return s
		}
	}
	return ""
}

// initialState is the TmStatus a mutation starts with.
func initialState(approval *workflows.Approval, nb *time.Time) string {
	switch {
	case approval != nil:
		return workflows.StateAwaitingApproval
	case nb != nil:
		return workflows.StateScheduled
	}
	return workflows.StateRunning
}

// startOptions are the options every mutation workflow starts with: the
// route's search attributes plus TmStatus, and a memo of what a listing
// shows without querying each workflow (not_before, requested_by).
func (s *Server) startOptions(wfID string, attrs temporal.SearchAttributes, state string, nb *time.Time, by *workflows.Actor) client.StartWorkflowOptions {
	memo := map[string]any{}
	if nb != nil {
		memo["not_before"] = nb.UTC()
	}
	if by != nil {
		memo["requested_by"] = by
	}
	o := client.StartWorkflowOptions{
		ID:                       wfID,
		TaskQueue:                s.o.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes:    temporal.NewSearchAttributes(attrs.Copy(), workflows.AttrStatus.ValueSet(state)),
	}
	if len(memo) > 0 {
		o.Memo = memo
	}
	return o
}

// gatedResponse is the 202 answer of a write that waits: for its time
// (scheduled) or for an approver (awaiting_approval).
type gatedResponse struct {
	WorkflowID string     `json:"workflow_id"`
	RunID      string     `json:"run_id"`
	Status     string     `json:"status"`
	NotBefore  *time.Time `json:"not_before,omitempty"`
}

// gated describes a waiting write to schedule: its workflow, its start
// options and how to answer a repeated request once the workflow ended.
type gated struct {
	wfType      string
	input       any
	opts        client.StartWorkflowOptions
	requestHash string
	state       string
	notBefore   *time.Time
	// finished answers a repeated request of a workflow that has ended.
	finished func(ctx context.Context) (int, any, error)
}

// schedule starts (or joins) a waiting mutation's workflow with
// update-with-start and answers 202 once its commit update is accepted:
// conflicts and a missing route are decided when it applies, and show in
// the mutation's status.
func (s *Server) schedule(ctx context.Context, c *gin.Context, g gated) (int, any, error) {
	startOp := s.o.Temporal.NewWithStartWorkflowOperation(g.opts, g.wfType, g.input)
	wfID := g.opts.ID
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
			return g.finished(ctx)
		}
		return 0, nil, temporalError(err)
	}
	// A repeated request may find the update of the first one already
	// done (its outcome is kept): the mutation has moved on or ended.
	if desc, err := s.o.Temporal.DescribeWorkflowExecution(ctx, wfID, handle.RunID()); err == nil &&
		desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return g.finished(ctx)
	}
	var st struct {
		RequestHash string `json:"request_hash"`
		State       string `json:"state"`
		ErrorType   string `json:"error_type"`
	}
	state := g.state
	if v, err := s.o.Temporal.QueryWorkflow(ctx, wfID, handle.RunID(), workflows.StatusQuery); err == nil && v.Get(&st) == nil {
		if !sameRequest(st.RequestHash, g.requestHash) {
			return 0, nil, errKeyReused
		}
		if err := endedWithout(st.State); err != nil {
			return 0, nil, err
		}
		if st.State != "" || st.ErrorType != "" {
			state = statusOf("running", st.State, st.ErrorType) // where the first request stands now
		}
	}
	c.Header("Location", "/api/v1/mutations/"+wfID)
	return http.StatusAccepted, gatedResponse{WorkflowID: wfID, RunID: handle.RunID(), Status: state, NotBefore: g.notBefore}, nil
}

// statusOf is a mutation's status name: Temporal's execution status,
// refined by where the workflow says it stands (state) and whether its
// commit was rejected (errType).
func statusOf(temporalStatus, state, errType string) string {
	switch state {
	case workflows.StateCancelled, workflows.StateDenied, workflows.StateExpired:
		return state
	}
	switch temporalStatus {
	case "running":
		switch state {
		case workflows.StateScheduled, workflows.StateAwaitingApproval, workflows.StateRevertPending:
			return state
		}
	case "completed":
		if errType != "" {
			return workflows.StateDenied // a rejected commit
		}
	}
	return temporalStatus
}

// endedWithout is the answer to a repeated request whose mutation ended
// without applying (state), nil when it did not.
func endedWithout(state string) error {
	switch state {
	case workflows.StateCancelled:
		return Conflict("the mutation with this Idempotency-Key was cancelled; send a new key")
	case workflows.StateDenied:
		return Conflict("the mutation with this Idempotency-Key was rejected by an approver; send a new key")
	case workflows.StateExpired:
		return Conflict("the mutation with this Idempotency-Key expired waiting for approval; send a new key")
	}
	return nil
}

// didNotApply maps a commit update that failed with one of the workflow's
// own (non-commit) error types (ErrTypeCancelled, ErrTypeDenied,
// ErrTypeExpired): the mutation ended without applying, which is a 409,
// never a 500.
func (s *Server) didNotApply(ctx context.Context, wfID string, err error) error {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || rejection(appErr.Type(), appErr.Message()) != nil {
		return err
	}
	switch appErr.Type() {
	case workflows.ErrTypeCancelled:
		return endedWithout(workflows.StateCancelled)
	case workflows.ErrTypeDenied:
		return endedWithout(workflows.StateDenied)
	case workflows.ErrTypeExpired:
		return endedWithout(workflows.StateExpired)
	}
	// Another type (a workflow of another version): the status says.
	var st struct {
		State string `json:"state"`
	}
	if desc, derr := s.o.Temporal.DescribeWorkflowExecution(ctx, wfID, ""); derr == nil {
		info := desc.GetWorkflowExecutionInfo()
		if s.workflowStatus(ctx, wfID, info.GetExecution().GetRunId(), info.GetStatus(), &st) == nil {
			if e := endedWithout(st.State); e != nil {
				return e
			}
		}
	}
	return Conflict("the mutation with this Idempotency-Key did not apply; see GET /api/v1/mutations/" + wfID)
}
