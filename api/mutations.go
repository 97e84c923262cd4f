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
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/trafficmanager/trafficmanager/activities"
	"github.com/trafficmanager/trafficmanager/httperr"
	"github.com/trafficmanager/trafficmanager/mutations"
	"github.com/trafficmanager/trafficmanager/propagation"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/workflows"
)

// mutationResponse is the answer to every acknowledged mutation.
type mutationResponse struct {
	Route      routes.Route  `json:"route"`
	Action     routes.Action `json:"action"`
	Changed    bool          `json:"changed"`
	EventID    string        `json:"event_id"`
	WorkflowID string        `json:"workflow_id"`
	RunID      string        `json:"run_id"`
}

type pendingResponse struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	Status     string `json:"status"`
}

// validIdempotencyKey keeps keys readable inside a workflow id.
func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > 128 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func (s *Server) fail(c *gin.Context, action string, err error) {
	e := requestError(c, err)
	s.o.Metrics.Requests.WithLabelValues(action).Inc()
	s.o.Metrics.Failure.WithLabelValues(action, e.Code).Inc()
	WriteError(c, s.log, err)
}

// write is one write request as mutate and createBatch describe it to
// startWrite.
type write struct {
	action string // the metrics label
	tenant string
	// workflowID names the workflow of the request's Idempotency-Key.
	workflowID func(key string) string
	// commit starts (or joins) the workflow and waits for its commit; it
	// returns the answer's status and body.
	commit func(ctx context.Context, wfID string) (int, any, error)
	// recorded answers from the ledger when the workflow has not answered
	// within the ack timeout: ok is false when the commit has not happened.
	recorded func(ctx context.Context, wfID string) (status int, body any, ok bool, err error)
}

// startWrite is the path every write shares: authorization, the tenant's
// write rate, the Idempotency-Key, the write bulkhead, the wait for the
// commit bounded by the ack timeout (then 202), and the write metrics.
func (s *Server) startWrite(c *gin.Context, w write) {
	start := time.Now()
	if err := Authorize(c, w.tenant, true); err != nil {
		s.fail(c, w.action, err)
		return
	}
	if s.o.Limiter != nil {
		if ok, wait := s.o.Limiter.Allow(w.tenant); !ok {
			s.fail(c, w.action, rateLimited(c, wait))
			return
		}
	}
	key := c.GetHeader("Idempotency-Key")
	if key == "" {
		key = s.o.NewID()
	} else if !validIdempotencyKey(key) {
		s.fail(c, w.action, InvalidArgument("Idempotency-Key must be 1-128 characters of letters, digits, '-', '_', '.', ':'"))
		return
	}
	s.o.Metrics.Requests.WithLabelValues(w.action).Inc()
	release, err := s.writes.Enter(c.Request.Context())
	if err != nil {
		s.o.Metrics.Failure.WithLabelValues(w.action, requestError(c, err).Code).Inc()
		WriteError(c, s.log, err)
		return
	}
	defer release()
	wfID := w.workflowID(key)

	ctx, cancel := context.WithTimeout(c.Request.Context(), s.o.AckTimeout)
	defer cancel()
	status, body, err := w.commit(ctx, wfID)
	if err != nil && notYet(ctx, err) && c.Request.Context().Err() == nil {
		// The workflow did not answer in time; the ledger may know that the
		// commit happened (a slow workflow task, a worker restart): then the
		// answer is the commit's, never 202.
		status, body, ok := s.fromLedger(c.Request.Context(), w, wfID)
		if !ok {
			s.accepted(c, wfID, start, w.action)
			return
		}
		if e, isErr := body.(error); isErr {
			s.o.Metrics.Failure.WithLabelValues(w.action, ToError(e).Code).Inc()
			WriteError(c, s.log.With(zap.String("workflow_id", wfID)), e)
			return
		}
		if c.Query("wait") == "propagated" {
			status, body = s.resolvers().propagated(ctx, status, body) // ctx is spent: one look
		}
		s.o.Metrics.Success.WithLabelValues(w.action).Inc()
		s.o.Metrics.Latency.WithLabelValues(w.action).Observe(time.Since(start).Seconds())
		c.JSON(status, body)
		return
	}
	if err != nil {
		// A client that hung up while the commit was pending counts as
		// "canceled", not as our failure; the workflow goes on regardless.
		e := requestError(c, err)
		s.o.Metrics.Failure.WithLabelValues(w.action, e.Code).Inc()
		WriteError(c, s.log.With(zap.String("workflow_id", wfID)), err)
		return
	}
	if c.Query("wait") == "propagated" {
		status, body = s.resolvers().propagated(ctx, status, body) // within the rest of the ack timeout
	}
	s.o.Metrics.Success.WithLabelValues(w.action).Inc()
	s.o.Metrics.Latency.WithLabelValues(w.action).Observe(time.Since(start).Seconds())
	c.JSON(status, body)
}

// fromLedger answers a write whose workflow did not answer in time from the
// ledger; ok is false when the ledger does not know the commit (yet). A
// recorded rejection comes back as an error body.
func (s *Server) fromLedger(ctx context.Context, w write, wfID string) (status int, body any, ok bool) {
	if s.o.Ledger == nil || w.recorded == nil {
		return 0, nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	status, body, ok, err := w.recorded(ctx, wfID)
	if err != nil {
		s.log.Info("ledger lookup after the ack timeout failed", zap.String("workflow_id", wfID), zap.Error(err))
		return 0, nil, false
	}
	return status, body, ok
}

// runID returns the run id of wfID's latest run, or "".
func (s *Server) runID(ctx context.Context, wfID string) string {
	desc, err := s.o.Temporal.DescribeWorkflowExecution(ctx, wfID, "")
	if err != nil {
		return ""
	}
	return desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
}

// mutate runs m as a RouteMutation workflow with update-with-start and
// answers once the commit is decided, or 202 after the ack timeout. A
// write that waits (a future not_before, or a tenant policy that wants an
// approval for the route's env) answers 202 scheduled or awaiting_approval
// as soon as its workflow has accepted the commit update.
func (s *Server) mutate(c *gin.Context, m routes.Mutation, t timing) {
	if err := m.Validate(); err != nil {
		s.fail(c, string(m.Action), err)
		return
	}
	if t.revertAfter > 0 && m.Action == routes.ActionCreated {
		s.fail(c, string(m.Action), errRevertCreate)
		return
	}
	s.startWrite(c, write{
		action:     string(m.Action),
		tenant:     m.Key.Tenant,
		workflowID: func(key string) string { return workflows.WorkflowID(m, key) },
		commit: func(ctx context.Context, wfID string) (int, any, error) {
			approval, err := s.approvalFor(m.Key.Tenant, m.Key.Env)
			if err != nil {
				return 0, nil, err
			}
			in := workflows.MutationInput{
				Mutation: m, EventID: workflows.EventIDFor(wfID), Principal: PrincipalName(c),
				RequestHash: t.requestHash(m), RevertAfter: t.revertAfter,
				Approval: approval, RequestedBy: requester(c),
			}
			if t.nb.scheduled() {
				in.NotBefore = &t.nb.at
			}
			state := initialState(in.Approval, in.NotBefore)
			opts := s.startOptions(wfID, workflows.SearchAttributes(m), state, in.NotBefore, in.RequestedBy)
			if state != workflows.StateRunning {
				return s.schedule(ctx, c, gated{
					wfType: workflows.WorkflowType, input: in, opts: opts,
					requestHash: in.RequestHash, state: state, notBefore: in.NotBefore,
					finished: func(ctx context.Context) (int, any, error) {
						resp, err := s.finished(ctx, wfID, in.RequestHash)
						return mutationStatusCode(resp.Action, resp.Changed), resp, err
					},
				})
			}
			resp, err := s.execute(ctx, opts, in)
			return mutationStatusCode(m.Action, resp.Changed), resp, err
		},
		recorded: func(ctx context.Context, wfID string) (int, any, bool, error) {
			recs, err := s.o.Ledger.Recorded(ctx, workflows.EventIDFor(wfID))
			if err != nil || len(recs) == 0 {
				return 0, nil, false, err
			}
			rec := recs[0]
			if rec.Err != nil {
				return 0, rec.Err, true, nil
			}
			resp := mutationResponse{
				Route: rec.Result.Route, Action: m.Action, Changed: rec.Result.Changed,
				EventID: rec.EventID, WorkflowID: wfID, RunID: s.runID(ctx, wfID),
			}
			return mutationStatusCode(m.Action, resp.Changed), resp, true, nil
		},
	})
}

// mutationStatusCode is 201 for a create that created, else 200.
func mutationStatusCode(action routes.Action, changed bool) int {
	if action == routes.ActionCreated && changed {
		return http.StatusCreated
	}
	return http.StatusOK
}

// errKeyReused answers a repeated Idempotency-Key whose request differs
// from the first one's.
var errKeyReused = &Error{Status: http.StatusUnprocessableEntity, Code: "idempotency_key_reused",
	Message: "this Idempotency-Key was used for another request; send a new key"}

// sameRequest reports whether a mutation's recorded request hash matches
// this request's (workflows from before request hashes match anything).
func sameRequest(recorded, this string) bool {
	return recorded == "" || recorded == this
}

func (s *Server) execute(ctx context.Context, opts client.StartWorkflowOptions, in workflows.MutationInput) (mutationResponse, error) {
	wfID := opts.ID
	out, runID, err := commitWithStart[workflows.CommitOutput](ctx, s, opts, workflows.WorkflowType, in)
	if errors.Is(err, errClosed) {
		// Same Idempotency-Key, and the first mutation has finished:
		// answer with its result.
		return s.finished(ctx, wfID, in.RequestHash)
	}
	if err != nil {
		return mutationResponse{}, s.didNotApply(ctx, wfID, err)
	}
	if !sameRequest(out.RequestHash, in.RequestHash) {
		return mutationResponse{}, errKeyReused
	}
	return mutationResponse{
		Route: out.Result.Route, Action: in.Mutation.Action, Changed: out.Result.Changed,
		EventID: out.EventID, WorkflowID: wfID, RunID: runID,
	}, nil
}

// errClosed says the workflow of this Idempotency-Key has closed already.
var errClosed = errors.New("workflow closed")

// commitWithStart starts the workflow opts.ID of type wfType (or joins the
// running one: a repeated request) with update-with-start and waits for its
// commit update's answer. It returns errClosed when the workflow has
// already closed, so the caller answers from its result.
func commitWithStart[T any](ctx context.Context, s *Server, opts client.StartWorkflowOptions, wfType string, in any) (T, string, error) {
	var out T
	startOp := s.o.Temporal.NewWithStartWorkflowOperation(opts, wfType, in)
	handle, err := s.o.Temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: startOp,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateID:     "commit", // a duplicate request attaches to the same update
			UpdateName:   workflows.CommitUpdate,
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err != nil {
		if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
			return out, "", errClosed
		}
		return out, "", temporalError(err)
	}
	if err := handle.Get(ctx, &out); err != nil {
		return out, "", temporalError(err)
	}
	return out, handle.RunID(), nil
}

// closedResult reads the result of the closed workflow wfID into T. A
// workflow that ended without completing (terminated, timed out) is a
// conflict: the key names a mutation that did not happen.
func closedResult[T any](ctx context.Context, s *Server, wfID string) (T, string, error) {
	var st T
	run := s.o.Temporal.GetWorkflow(ctx, wfID, "")
	if err := run.Get(ctx, &st); err != nil {
		var appErr *temporal.ApplicationError
		if ctx.Err() != nil || (!errors.As(err, &appErr) && isUnavailable(err)) {
			return st, "", temporalError(err)
		}
		return st, "", Conflict("the mutation with this Idempotency-Key did not complete; run it again with `trafficmanager mutations retry " + wfID + "` or send a new key")
	}
	return st, run.GetRunID(), nil
}

// finished answers a repeated request from the closed workflow's result.
func (s *Server) finished(ctx context.Context, wfID, requestHash string) (mutationResponse, error) {
	st, runID, err := closedResult[workflows.Status](ctx, s, wfID)
	if err != nil {
		return mutationResponse{}, err
	}
	if !sameRequest(st.RequestHash, requestHash) {
		return mutationResponse{}, errKeyReused
	}
	if st.ErrorType != "" {
		return mutationResponse{}, rejection(st.ErrorType, st.Error)
	}
	if err := endedWithout(st.State); err != nil {
		return mutationResponse{}, err
	}
	if st.Result == nil {
		return mutationResponse{}, errors.New("finished mutation has no result")
	}
	return mutationResponse{
		Route: st.Result.Route, Action: st.Action, Changed: st.Result.Changed,
		EventID: st.EventID, WorkflowID: wfID, RunID: runID,
	}, nil
}

// accepted answers 202: the commit has not happened within the ack
// timeout, and the workflow keeps retrying it.
func (s *Server) accepted(c *gin.Context, wfID string, start time.Time, action string) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	desc, err := s.o.Temporal.DescribeWorkflowExecution(ctx, wfID, "")
	if err != nil {
		// The workflow was never started: nothing will happen.
		s.o.Metrics.Failure.WithLabelValues(action, "unavailable").Inc()
		WriteError(c, s.log, Unavailable("the mutation could not be started; retry with the same Idempotency-Key"))
		return
	}
	s.o.Metrics.Success.WithLabelValues(action).Inc()
	s.o.Metrics.Latency.WithLabelValues(action).Observe(time.Since(start).Seconds())
	c.Header("Location", "/api/v1/mutations/"+wfID)
	c.JSON(http.StatusAccepted, pendingResponse{
		WorkflowID: wfID,
		RunID:      desc.GetWorkflowExecutionInfo().GetExecution().GetRunId(),
		Status:     "pending",
	})
}

// notYet reports whether err means "the commit was not decided in time":
// our ack deadline passed, or Temporal ended the wait for the update just
// before it (its long poll returns a little ahead of the caller's deadline).
func notYet(ctx context.Context, err error) bool {
	var waitTimeout *client.WorkflowUpdateServiceTimeoutOrCanceledError
	var deadline *serviceerror.DeadlineExceeded
	return ctx.Err() != nil || errors.As(err, &waitTimeout) || errors.As(err, &deadline)
}

// isUnavailable reports whether err is the workflow service failing to
// answer (any gRPC status but NotFound), not an answer about the workflow.
func isUnavailable(err error) bool {
	code, ok := serviceCode(err)
	return ok && code != codes.NotFound
}

// serviceCode returns the gRPC code of a Temporal service error.
func serviceCode(err error) (codes.Code, bool) {
	var se serviceerror.ServiceError
	if errors.As(err, &se) {
		return se.Status().Code(), true
	}
	var ge interface{ GRPCStatus() *status.Status }
	if errors.As(err, &ge) {
		return ge.GRPCStatus().Code(), true
	}
	return codes.OK, false
}

// temporalError maps a rejected commit to its domain error and every
// failure of the workflow service to 503 with Retry-After: the mutation was
// not decided, and the same request (same Idempotency-Key) may be sent
// again. Only an unexpected failure of our own workflow stays a 500. The
// cause stays in the chain, so notYet still recognizes our ack deadline
// (202).
func temporalError(err error) error {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		if e := rejection(appErr.Type(), appErr.Message()); e != nil {
			return e
		}
		return err
	}
	code, ok := serviceCode(err)
	switch {
	case ok:
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		code = codes.DeadlineExceeded
	default:
		return err
	}
	later := &httperr.RetryLater{Err: Unavailable("the workflow service is unavailable; retry with the same Idempotency-Key"), Cause: err, After: time.Second}
	switch code {
	case codes.ResourceExhausted: // rate limited or overloaded: back off longer
		later.Err = Unavailable("the workflow service is overloaded; retry with the same Idempotency-Key")
		later.After = 5 * time.Second
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Aborted:
		// an outage or a race inside the service: transient
	default:
		// Internal, InvalidArgument, PermissionDenied, NotFound (namespace),
		// Unimplemented...: still not the client's fault, but someone has to
		// look.
		later.Alert = true
	}
	return later
}

func rejection(errType, msg string) error {
	switch errType {
	case activities.ErrTypeInvalid:
		return InvalidArgument(msg)
	case activities.ErrTypeNotFound:
		return RouteNotFound(msg)
	case activities.ErrTypeConflict:
		return Conflict(msg)
	case activities.ErrTypePreconditionFailed:
		return PreconditionFailed(msg)
	}
	return nil
}

// mutationStatus is the answer of GET /api/v1/mutations/{workflow_id}.
type mutationStatus struct {
	WorkflowID string          `json:"workflow_id"`
	RunID      string          `json:"run_id"`
	Status     string          `json:"status"`
	Action     routes.Action   `json:"action,omitempty"`
	Route      any             `json:"route"`
	Changed    *bool           `json:"changed,omitempty"`
	EventID    string          `json:"event_id,omitempty"`
	Steps      workflows.Steps `json:"steps"`
	// Propagation says how many live resolvers have applied the committed
	// revision (absent before the commit and without resolver reports).
	Propagation *propagation.Propagation `json:"propagation,omitempty"`
	waiting
	Error *statusError `json:"error,omitempty"`
	// Hint says how to move a mutation on that did not complete.
	Hint string `json:"hint,omitempty"`
}

// waiting is what a status says about a mutation that waits, or waited:
// for its time, for an approver, for its revert.
type waiting struct {
	NotBefore   *time.Time        `json:"not_before,omitempty"`
	RequestedBy *workflows.Actor  `json:"requested_by,omitempty"`
	ApprovedBy  *workflows.Actor  `json:"approved_by,omitempty"`
	RejectedBy  *workflows.Actor  `json:"rejected_by,omitempty"`
	Comment     string            `json:"comment,omitempty"`
	ExpiresAt   *time.Time        `json:"expires_at,omitempty"`
	RevertAt    *time.Time        `json:"revert_at,omitempty"`
	Revert      *workflows.Revert `json:"revert,omitempty"`
}

// waitingOf reads the waiting fields of a workflow's status.
func waitingOf(state string, nb *time.Time, requested, approved, decided *workflows.Actor, comment string, expires, revertAt *time.Time, revert *workflows.Revert) waiting {
	w := waiting{NotBefore: nb, RequestedBy: requested, ApprovedBy: approved, Comment: comment, RevertAt: revertAt, Revert: revert}
	if state == workflows.StateDenied && decided != nil {
		w.RejectedBy = decided
	}
	if state == workflows.StateAwaitingApproval || state == workflows.StateExpired {
		w.ExpiresAt = expires
	}
	return w
}

type statusError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// mutationID is a mutation's workflow id, parsed: a single route's
// (route/{tenant}/{service}/{env}/{version}/{action}/{key}), a batch's
// (batch/{tenant}/created/{key}), a split's, or a rollout's
// (rollout/{tenant}/{service}/{env}/{key}: approve, reject and cancel of a
// rollout awaiting approval).
type mutationID struct {
	wfID    string
	parts   []string
	tenant  string
	batch   bool
	split   bool
	rollout bool
}

// parseMutationID parses wfID; ok is false for anything else.
func parseMutationID(wfID string) (mutationID, bool) {
	parts := strings.Split(wfID, "/")
	single := len(parts) == 7 && parts[0] == "route"
	batch := len(parts) == 4 && parts[0] == "batch" && parts[2] == string(routes.ActionCreated)
	split := len(parts) == 6 && parts[0] == "split" // split/{t}/{s}/{e}/{action}/{key} (splits.go)
	rollout := len(parts) == 5 && parts[0] == "rollout"
	if len(wfID) > 512 || !(single || batch || split || rollout) {
		return mutationID{}, false
	}
	return mutationID{wfID: wfID, parts: parts, tenant: parts[1], batch: batch, split: split, rollout: rollout}, true
}

// key is the route of a single mutation's id.
func (id mutationID) key() routes.Key {
	if id.split || id.rollout {
		return routes.Key{Tenant: id.parts[1], Service: id.parts[2], Env: id.parts[3]}
	}
	return routes.Key{Tenant: id.parts[1], Service: id.parts[2], Env: id.parts[3], Version: id.parts[4]}
}

func (s *Server) getMutation(c *gin.Context) {
	wfID := strings.TrimPrefix(c.Param("id"), "/")
	id, ok := parseMutationID(wfID)
	if !ok || Authorize(c, id.tenant, false) != nil {
		WriteError(c, nil, MutationNotFound("no mutation "+truncate(wfID)))
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 5*time.Second)
	defer cancel()
	info, ok := s.describe(c, ctx, wfID)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, s.statusAnswer(ctx, id, info))
}

// statusAnswer is the mutation status object of id (single or batch).
func (s *Server) statusAnswer(ctx context.Context, id mutationID, info *workflowpb.WorkflowExecutionInfo) any {
	if id.batch {
		return s.batchStatus(ctx, id.wfID, id.tenant, info)
	}
	if id.split {
		return s.splitStatusAnswer(ctx, id, info)
	}
	if id.rollout {
		return s.rolloutStatusAnswer(ctx, id, info)
	}
	wfID := id.wfID
	out := mutationStatus{
		WorkflowID: wfID,
		RunID:      info.GetExecution().GetRunId(),
		Status:     statusName(info.GetStatus()),
		Steps:      pendingSteps,
	}
	var st workflows.Status
	if err := s.workflowStatus(ctx, wfID, out.RunID, info.GetStatus(), &st); err == nil {
		out.Action, out.Steps, out.EventID = st.Action, st.Steps, st.EventID
		out.Route = st.Key
		if st.Result != nil {
			out.Route, out.Changed = st.Result.Route, &st.Result.Changed
		}
		out.Error = statusErrorOf(st.ErrorType, st.Error)
		out.waiting = waitingOf(st.State, st.NotBefore, st.RequestedBy, st.ApprovedBy, st.DecidedBy, st.Comment, st.ExpiresAt, st.RevertAt, st.Revert)
		out.Status = statusOf(out.Status, st.State, st.ErrorType)
	} else {
		out.Action = routes.Action(id.parts[5])
		out.Route = id.key()
	}
	if out.Steps.Committed == workflows.StepPending && !waitsToCommit(out.Status) {
		// The workflow could not say (its status query timed out behind a
		// busy workflow task, or it ended before recording its commit):
		// the ledger, written with the commit, can.
		s.committedFromLedger(ctx, wfID, &out)
	}
	out.Hint = retryHint(info.GetStatus(), wfID)
	out.Propagation = s.resolvers().ofStatus(ctx, out.Route)
	return out
}

// waitsToCommit reports whether a mutation in this status has not
// committed yet by design (the ledger has nothing to add).
func waitsToCommit(status string) bool {
	switch status {
	case workflows.StateScheduled, workflows.StateAwaitingApproval:
		return true
	}
	return false
}

// committedFromLedger fills a status's commit from the ledger, when the
// ledger has recorded it.
func (s *Server) committedFromLedger(ctx context.Context, wfID string, out *mutationStatus) {
	rec, ok := s.recordedCommit(ctx, workflows.EventIDFor(wfID))
	if !ok {
		return
	}
	out.EventID = rec.EventID
	if out.Error = recordedSteps(rec, &out.Steps); out.Error != nil {
		if out.Status == "completed" {
			out.Status = workflows.StateDenied // a rejected commit
		}
		return
	}
	out.Route, out.Changed = rec.Result.Route, &rec.Result.Changed
	if !rec.Result.Changed {
		out.Steps.Invalidated, out.Steps.Published, out.Steps.Audited = workflows.StepSkipped, workflows.StepSkipped, workflows.StepSkipped
	}
}

// recordedSteps sets steps from a ledger record: committed done, or, for a
// recorded rejection, the rejected steps and the rejection's error.
func recordedSteps(rec routes.Recorded, steps *workflows.Steps) *statusError {
	if rec.Err == nil {
		steps.Committed = workflows.StepDone
		return nil
	}
	*steps = workflows.RejectedSteps
	e := ToError(rec.Err)
	return &statusError{Code: e.Code, Message: e.Message}
}

// recordedCommit returns the ledger's record of eventID, if any.
func (s *Server) recordedCommit(ctx context.Context, eventID string) (routes.Recorded, bool) {
	if s.o.Ledger == nil {
		return routes.Recorded{}, false
	}
	recs, err := s.o.Ledger.Recorded(ctx, eventID)
	if err != nil || len(recs) == 0 {
		return routes.Recorded{}, false
	}
	return recs[0], true
}

// retryHint is the way forward of a mutation that ended without
// completing: `mutations retry` runs it again (its commit applies once).
func retryHint(st enumspb.WorkflowExecutionStatus, wfID string) string {
	switch st {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return ""
	}
	return "run `trafficmanager mutations retry " + wfID + "` to finish it; its commit applies at most once"
}

// pendingSteps is what a mutation whose status cannot be read reports.
var pendingSteps = workflows.Steps{Committed: workflows.StepPending, Invalidated: workflows.StepPending, Published: workflows.StepPending, Audited: workflows.StepPending}

// statusErrorOf renders a rejected commit in a status answer.
func statusErrorOf(errType, msg string) *statusError {
	if errType == "" {
		return nil
	}
	e := ToError(rejection(errType, msg))
	return &statusError{Code: e.Code, Message: e.Message}
}

// describe returns the workflow's execution info, or answers 404/503 and
// returns false.
func (s *Server) describe(c *gin.Context, ctx context.Context, wfID string) (*workflowpb.WorkflowExecutionInfo, bool) {
	desc, err := s.o.Temporal.DescribeWorkflowExecution(ctx, wfID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		WriteError(c, nil, MutationNotFound("no mutation "+truncate(wfID)))
		return nil, false
	}
	if err != nil {
		WriteError(c, s.log, temporalError(err))
		return nil, false
	}
	return desc.GetWorkflowExecutionInfo(), true
}

// workflowStatus reads a mutation workflow's status into out: its result
// once completed, its status query while running.
func (s *Server) workflowStatus(ctx context.Context, wfID, runID string, status enumspb.WorkflowExecutionStatus, out any) error {
	switch status {
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return s.o.Temporal.GetWorkflow(ctx, wfID, runID).Get(ctx, out)
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		// A query waits for a workflow task in progress; leave time for the
		// ledger to answer instead.
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		v, err := s.o.Temporal.QueryWorkflow(ctx, wfID, runID, workflows.StatusQuery)
		if err != nil {
			return err
		}
		return v.Get(out)
	}
	return errors.New("no status")
}

func statusName(st enumspb.WorkflowExecutionStatus) string { return mutations.StatusName(st) }

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
