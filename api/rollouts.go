package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/trafficmanager/trafficmanager/activities"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/workflows"
)

// Rollouts (docs/rollouts.md): POST /api/v1/rollouts starts a Rollout
// workflow rollout/{t}/{s}/{e}/{key}; the rollout's id in paths is
// {t}/{s}/{e}/{key} (key: the Idempotency-Key or a fresh id), so
// GET /api/v1/rollouts/{t}/{s}/{e}/{key} and
// POST /api/v1/rollouts/{t}/{s}/{e}/{key}/pause|resume|promote|abort.
// The id is these four segments rather than the escaped workflow id so
// a path reads like the split's and authorization needs no lookup.

// Rollout limits.
const (
	maxRolloutSteps = 20
	maxRolloutPause = 30 * 24 * time.Hour
)

// RolloutConflict is the answer when another rollout of the env runs.
func RolloutConflict(msg string) *Error {
	return &Error{Status: http.StatusConflict, Code: "rollout_conflict", Message: msg}
}

func rolloutNotFound() *Error {
	return &Error{Status: http.StatusNotFound, Code: "not_found", Message: "rollout not found"}
}

func (s *Server) registerRollouts(v1 gin.IRoutes) {
	v1.POST("/rollouts", s.startRollout)
	v1.GET("/rollouts", s.listRollouts)
	v1.GET("/rollouts/:tenant/:service/:env/:key", s.getRollout)
	for _, name := range []string{workflows.PauseUpdate, workflows.ResumeUpdate, workflows.PromoteUpdate, workflows.AbortUpdate} {
		v1.POST("/rollouts/:tenant/:service/:env/:key/"+name, func(c *gin.Context) { s.actOnRollout(c, name) })
	}
}

// RolloutRequest is POST /api/v1/rollouts's body.
type RolloutRequest struct {
	Tenant  string               `json:"tenant"`
	Service string               `json:"service"`
	Env     string               `json:"env"`
	To      string               `json:"to"`
	Steps   []RolloutStepRequest `json:"steps"`
	Check   *RolloutCheckRequest `json:"check,omitempty"`
	// ChangedBy names who the split changes are recorded for (as on
	// other writes); the principal by default.
	ChangedBy string `json:"changed_by,omitempty"`
}

// RolloutStepRequest is one step: a weight and a Go duration ("5m").
type RolloutStepRequest struct {
	Weight int    `json:"weight"`
	Pause  string `json:"pause,omitempty"`
}

// RolloutCheckRequest is the check gate: interval is a Go duration.
type RolloutCheckRequest struct {
	URL         string `json:"url"`
	Interval    string `json:"interval"`
	MaxFailures int    `json:"max_failures"`
}

// ValidateRollout checks a rollout request and returns the workflow's
// input: names valid, 1 to 20 steps, weights integers 1..100 strictly
// increasing and the last 100, pauses Go durations from 0 to 30 days, and
// a check with an absolute http(s) URL, an interval of at least 1s and
// max_failures of at least 1. Whether `to` is an active route of the env
// is checked against the store (startRollout) and again by the workflow.
func ValidateRollout(req RolloutRequest) (workflows.RolloutInput, error) {
	k := routes.SplitKey{Tenant: req.Tenant, Service: req.Service, Env: req.Env}
	if err := k.Validate(); err != nil {
		return workflows.RolloutInput{}, err
	}
	if err := routes.ValidateVersion(req.To); err != nil {
		return workflows.RolloutInput{}, InvalidArgument("to: " + err.Error())
	}
	switch {
	case len(req.Steps) == 0:
		return workflows.RolloutInput{}, InvalidArgument(`steps is required, as in [{"weight":10,"pause":"5m"},{"weight":100}]`)
	case len(req.Steps) > maxRolloutSteps:
		return workflows.RolloutInput{}, InvalidArgument("steps: at most " + strconv.Itoa(maxRolloutSteps) + " steps")
	}
	if len(req.ChangedBy) > 256 {
		return workflows.RolloutInput{}, InvalidArgument("changed_by: at most 256 characters")
	}
	in := workflows.RolloutInput{Key: k, To: req.To, ChangedBy: req.ChangedBy}
	prev := 0
	for i, st := range req.Steps {
		at := "steps[" + strconv.Itoa(i) + "]"
		if st.Weight < 1 || st.Weight > 100 {
			return workflows.RolloutInput{}, InvalidArgument(at + ".weight must be an integer from 1 to 100")
		}
		if st.Weight <= prev {
			return workflows.RolloutInput{}, InvalidArgument(at + ".weight must be larger than the step before's")
		}
		prev = st.Weight
		var pause time.Duration
		if st.Pause != "" {
			d, err := time.ParseDuration(st.Pause)
			if err != nil || d < 0 || d > maxRolloutPause {
				return workflows.RolloutInput{}, InvalidArgument(at + `.pause must be a duration such as "5m", from 0 to 720h`)
			}
			pause = d
		}
		in.Steps = append(in.Steps, workflows.RolloutStep{Weight: st.Weight, Pause: pause})
	}
	if prev != 100 {
		return workflows.RolloutInput{}, InvalidArgument("the last step's weight must be 100")
	}
	if c := req.Check; c != nil {
		if err := activities.ValidCheckURL(c.URL); err != nil || len(c.URL) > 2048 {
			return workflows.RolloutInput{}, InvalidArgument("check.url must be an absolute http(s) URL")
		}
		d, err := time.ParseDuration(c.Interval)
		if err != nil || d < time.Second || d > 24*time.Hour {
			return workflows.RolloutInput{}, InvalidArgument(`check.interval must be a duration from "1s" to "24h"`)
		}
		if c.MaxFailures < 1 || c.MaxFailures > 10000 {
			return workflows.RolloutInput{}, InvalidArgument("check.max_failures must be from 1 to 10000")
		}
		in.Check = &workflows.RolloutCheck{URL: c.URL, Interval: d, MaxFailures: c.MaxFailures}
	}
	return in, nil
}

// rolloutStarted is POST's answer: 201 running, or 202 awaiting_approval
// when the tenant's policy lists the env.
type rolloutStarted struct {
	ID         string `json:"id"`
	WorkflowID string `json:"workflow_id"`
	Status     string `json:"status"`
}

func (s *Server) startRollout(c *gin.Context) {
	const action = "rollout_started"
	var req RolloutRequest
	err := decodeJSON(c, &req, false)
	var in workflows.RolloutInput
	if err == nil {
		in, err = ValidateRollout(req)
	}
	if err == nil {
		err = Authorize(c, in.Key.Tenant, true)
	}
	if err == nil {
		err = s.checkRolloutTarget(c.Request.Context(), in)
	}
	if err != nil {
		s.fail(c, action, err)
		return
	}
	in.Principal, in.RequestedBy = PrincipalName(c), requester(c)
	in.RequestHash = workflows.RequestHash(req)
	s.startWrite(c, write{
		action: action,
		tenant: in.Key.Tenant,
		workflowID: func(key string) string {
			in.RolloutKey = key // called once, before commit
			return workflows.RolloutWorkflowID(in.Key, key)
		},
		commit: func(ctx context.Context, wfID string) (int, any, error) {
			// The tenant's policy gates the rollout as a whole: it waits
			// for an approver before its first step (its split changes are
			// not gated again).
			approval, err := s.approvalFor(in.Key.Tenant, in.Key.Env)
			if err != nil {
				return 0, nil, err
			}
			in.Approval = approval
			st, err := s.runRollout(ctx, wfID, in)
			if err != nil {
				return 0, nil, err
			}
			code := http.StatusCreated
			if st.Status == workflows.StateAwaitingApproval {
				code = http.StatusAccepted
			}
			return code, rolloutStarted{ID: st.ID, WorkflowID: wfID, Status: st.Status}, nil
		},
	})
}

// checkRolloutTarget answers 400 when `to` is not an active route of the
// env, or the rollout's split would name more than 10 versions.
func (s *Server) checkRolloutTarget(ctx context.Context, in workflows.RolloutInput) error {
	r, err := read(ctx, s, func(ctx context.Context) (routes.Route, error) { return s.o.Routes.Get(ctx, in.Key.Route(in.To)) })
	switch {
	case errors.Is(err, routes.ErrNotFound):
		return InvalidArgument("to: " + in.To + " is not a route of " + in.Key.String())
	case err != nil:
		return err
	case !r.IsActive:
		return InvalidArgument("to: " + in.To + " is not active")
	}
	rd, ok := s.o.Routes.(SplitReader)
	if !ok {
		return nil
	}
	sp, err := read(ctx, s, func(ctx context.Context) (routes.Split, error) { return rd.GetSplit(ctx, in.Key) })
	if errors.Is(err, routes.ErrSplitNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	n := len(sp.Weights)
	if _, has := sp.Weights[in.To]; !has {
		n++
	}
	if n > routes.MaxSplitVersions {
		return InvalidArgument("the rollout's split would name more than " + strconv.Itoa(routes.MaxSplitVersions) + " versions")
	}
	return nil
}

// runRollout starts the rollout (or joins it: the same Idempotency-Key)
// with update-with-start and waits for its start update: the env's lock
// taken and the steps planned, or the rejection.
func (s *Server) runRollout(ctx context.Context, wfID string, in workflows.RolloutInput) (workflows.RolloutStatus, error) {
	var st workflows.RolloutStatus
	opts := client.StartWorkflowOptions{
		ID:                       wfID,
		TaskQueue:                s.o.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes:    workflows.RolloutSearchAttributes(in.Key, in.Approval != nil),
	}
	opts.Memo = map[string]any{"to": in.To} // GET /api/v1/rollouts lists it without a query
	if in.Approval != nil && in.RequestedBy != nil {
		opts.Memo["requested_by"] = in.RequestedBy // listed without a query
	}
	startOp := s.o.Temporal.NewWithStartWorkflowOperation(opts, workflows.RolloutWorkflowType, in)
	handle, err := s.o.Temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: startOp,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateID: "start", UpdateName: workflows.RolloutStartUpdate, WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err == nil {
		err = handle.Get(ctx, &st)
		if err == nil && st.Status == workflows.StateAwaitingApproval {
			// A repeated request gets the start update's recorded answer;
			// the rollout may have been decided since.
			var cur workflows.RolloutStatus
			if s.workflowStatus(ctx, wfID, "", enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, &cur) == nil && cur.Status != "" {
				st = cur
			}
		}
	} else if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
		// Same key, and that rollout has ended: answer with its outcome.
		st, _, err = closedResult[workflows.RolloutStatus](ctx, s, wfID)
		if err == nil && st.Status == workflows.RolloutRejected {
			err = temporal.NewNonRetryableApplicationError(st.Error, st.ErrorType, nil)
		}
	}
	if err == nil {
		switch st.ErrorType {
		case workflows.ErrTypeDenied, workflows.ErrTypeExpired, workflows.ErrTypeCancelled:
			err = temporal.NewNonRetryableApplicationError(st.Error, st.ErrorType, nil) // ended awaiting approval
		}
	}
	if err != nil {
		return st, rolloutError(err)
	}
	if !sameRequest(st.RequestHash, in.RequestHash) {
		return st, errKeyReused
	}
	return st, nil
}

// rolloutError maps a rollout's rejections; the rest as temporalError.
func rolloutError(err error) error {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		switch appErr.Type() {
		case workflows.ErrTypeRolloutConflict:
			return RolloutConflict(appErr.Message())
		case workflows.ErrTypeRolloutState:
			return Conflict(appErr.Message())
		case activities.ErrTypeInvalid:
			return InvalidArgument(appErr.Message())
		case workflows.ErrTypeDenied:
			return Conflict("the rollout with this Idempotency-Key was rejected by an approver; send a new key")
		case workflows.ErrTypeExpired:
			return Conflict("the rollout with this Idempotency-Key expired waiting for approval; send a new key")
		case workflows.ErrTypeCancelled:
			return Conflict("the rollout with this Idempotency-Key was cancelled; send a new key")
		}
	}
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return err
	}
	return temporalError(err)
}

// rolloutPath reads the rollout's key from the path, checks the
// principal may read its tenant (else 404: another tenant's rollouts do
// not exist for it), and returns its workflow id.
func rolloutPath(c *gin.Context) (routes.SplitKey, string, error) {
	k := routes.SplitKey{Tenant: c.Param("tenant"), Service: c.Param("service"), Env: c.Param("env")}
	key := c.Param("key")
	if k.Validate() != nil || !validIdempotencyKey(key) {
		return k, "", rolloutNotFound()
	}
	if Authorize(c, k.Tenant, false) != nil {
		return k, "", rolloutNotFound()
	}
	return k, workflows.RolloutWorkflowID(k, key), nil
}

// rolloutBody is GET's answer: the workflow's status without internals.
func rolloutBody(st workflows.RolloutStatus) workflows.RolloutStatus {
	st.RequestHash = ""
	if st.Steps == nil {
		st.Steps = []workflows.RolloutStepState{}
	}
	return st
}

func (s *Server) getRollout(c *gin.Context) {
	_, wfID, err := rolloutPath(c)
	if err != nil {
		WriteError(c, s.log, err)
		return
	}
	ctx := c.Request.Context()
	info, ok := s.describeRollout(c, ctx, wfID)
	if !ok {
		return
	}
	var st workflows.RolloutStatus
	if err := s.workflowStatus(ctx, wfID, info.GetExecution().GetRunId(), info.GetStatus(), &st); err != nil {
		if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			WriteError(c, s.log, Unavailable("the rollout did not answer its status query in time; retry"))
			return
		}
		// Terminated or timed out: no status of its own, the workflow's.
		k, key := routes.SplitKey{Tenant: c.Param("tenant"), Service: c.Param("service"), Env: c.Param("env")}, c.Param("key")
		st = workflows.RolloutStatus{ID: workflows.RolloutID(k, key), WorkflowID: wfID, Key: k, Status: statusName(info.GetStatus())}
	}
	c.JSON(http.StatusOK, rolloutBody(st))
}

// describeRollout returns the rollout workflow's info, or answers 404/503
// and returns false.
func (s *Server) describeRollout(c *gin.Context, ctx context.Context, wfID string) (*workflowpb.WorkflowExecutionInfo, bool) {
	desc, err := s.o.Temporal.DescribeWorkflowExecution(ctx, wfID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		WriteError(c, nil, rolloutNotFound())
		return nil, false
	}
	if err != nil {
		WriteError(c, s.log, temporalError(err))
		return nil, false
	}
	return desc.GetWorkflowExecutionInfo(), true
}

// actOnRollout sends the update name (pause, resume, promote, abort):
// 200 with the rollout's status, 409 when its state does not allow it.
func (s *Server) actOnRollout(c *gin.Context, name string) {
	k, wfID, err := rolloutPath(c)
	if err == nil {
		err = Authorize(c, k.Tenant, true)
	}
	if err != nil {
		s.fail(c, "rollout_"+name, err)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 30*time.Second)
	defer cancel()
	desc, err := s.o.Temporal.DescribeWorkflowExecution(ctx, wfID, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		err = rolloutNotFound()
	case err != nil:
		err = temporalError(err)
	case desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		err = Conflict("the rollout has ended")
	}
	var st workflows.RolloutStatus
	if err == nil {
		var h client.WorkflowUpdateHandle
		h, err = s.o.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID: wfID, UpdateName: name, WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		if err == nil {
			err = h.Get(ctx, &st)
		}
		if errors.As(err, &nf) {
			err = Conflict("the rollout has ended")
		}
	}
	if err != nil {
		s.fail(c, "rollout_"+name, rolloutError(err))
		return
	}
	c.JSON(http.StatusOK, rolloutBody(st))
}

// rolloutStatusAnswer is a rollout's status as GET /api/v1/mutations and
// the decisions on it answer: GET /api/v1/rollouts/{id}'s body.
func (s *Server) rolloutStatusAnswer(ctx context.Context, id mutationID, info *workflowpb.WorkflowExecutionInfo) any {
	var st workflows.RolloutStatus
	if err := s.workflowStatus(ctx, id.wfID, info.GetExecution().GetRunId(), info.GetStatus(), &st); err != nil {
		k := routes.SplitKey{Tenant: id.parts[1], Service: id.parts[2], Env: id.parts[3]}
		st = workflows.RolloutStatus{ID: workflows.RolloutID(k, id.parts[4]), WorkflowID: id.wfID, Key: k, Status: statusName(info.GetStatus())}
	}
	return rolloutBody(st)
}
