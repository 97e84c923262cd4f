// Package workflows holds the Temporal workflows of Traffic Manager. Code
// here is deterministic: time from workflow.Now, ids from the input, no
// goroutines but workflow.Go.
package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/trafficmanager/trafficmanager/activities"
	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/routes"
)

// Names shared with the API and the worker.
const (
	// CommitUpdate is the update that returns once the Postgres transaction
	// has committed (or definitely failed).
	CommitUpdate = "commit"
	// StatusQuery returns the workflow's Status.
	StatusQuery = "status"
	// CancelUpdate cancels a mutation while it waits (scheduled, awaiting
	// approval) or calls off its pending revert; it is rejected
	// (ErrTypeNotPending) otherwise.
	CancelUpdate = "cancel"
)

// States of a mutation with a NotBefore, reported in Status.State.
const (
	// StateScheduled: waiting on its durable timer until NotBefore.
	StateScheduled = "scheduled"
	// StateCancelled: cancelled while scheduled; it never committed.
	StateCancelled = "cancelled"
	// StateApplying: the time came; the commit runs as for any mutation.
	StateApplying = "applying"
)

// ErrTypeNotPending is the error type of a cancel, approve or reject sent
// to a mutation that no longer waits for it; ErrTypeCancelled that of the
// commit update of a cancelled one.
const (
	ErrTypeNotPending = "MutationNotPending"
	ErrTypeCancelled  = "MutationCancelled"
)

// Step states reported by the status query.
const (
	StepPending  = "pending"
	StepDone     = "done"
	StepSkipped  = "skipped"
	StepRejected = "rejected"
	// StepRetrying: the first attempt failed; a durable activity retries it.
	StepRetrying = "retrying"
)

// MutationInput is the input of RouteMutation. EventID is decided once by
// the caller, so every retry of the side effects (and a re-run of the
// workflow with the same input) re-sends the same id.
type MutationInput struct {
	Mutation  routes.Mutation `json:"mutation"`
	EventID   string          `json:"event_id"`
	Principal string          `json:"principal,omitempty"`
	// RequestHash fingerprints the request (RequestHash), so the API can
	// refuse the same Idempotency-Key sent with another request.
	RequestHash string `json:"request_hash,omitempty"`
	// NotBefore, when later than the workflow's start, holds the commit
	// back until then on a durable timer (a scheduled write).
	NotBefore *time.Time `json:"not_before,omitempty"`
	// RevertAfter, when set, restores the route's previous state that long
	// after the change applied: a new revision with action reverted, as a
	// compare-and-set on the revision the change produced (skipped when
	// the route changed meanwhile). Never set on a create.
	RevertAfter time.Duration `json:"revert_after,omitempty"`
	// Approval, when set, holds the mutation until an approver decides
	// (ApproveUpdate, RejectUpdate) or Approval.Timeout passes.
	Approval *Approval `json:"approval,omitempty"`
	// RequestedBy is the principal that asked for the mutation.
	RequestedBy *Actor `json:"requested_by,omitempty"`
}

// RejectedSteps are the steps of a mutation whose commit was rejected.
var RejectedSteps = Steps{StepRejected, StepSkipped, StepSkipped, StepSkipped}

// Steps is where each step of a mutation stands.
type Steps struct {
	Committed   string `json:"committed"`
	Invalidated string `json:"invalidated"`
	Published   string `json:"published"`
	Audited     string `json:"audited"`
}

// Status is what the status query and the workflow result report.
type Status struct {
	Action  routes.Action  `json:"action"`
	Key     routes.Key     `json:"key"`
	EventID string         `json:"event_id"`
	Result  *routes.Result `json:"result,omitempty"`
	Steps   Steps          `json:"steps"`
	// Error is set when the commit was rejected (validation, not found, conflict).
	Error       string `json:"error,omitempty"`
	ErrorType   string `json:"error_type,omitempty"`
	RequestHash string `json:"request_hash,omitempty"`
	// State and NotBefore are set for a scheduled mutation only.
	State     string     `json:"state,omitempty"`
	NotBefore *time.Time `json:"not_before,omitempty"`
	// RequestedBy and ApprovedBy are who asked and who approved (or, with
	// State StateDenied, rejected: DecidedBy); Comment is the decision's.
	RequestedBy *Actor `json:"requested_by,omitempty"`
	ApprovedBy  *Actor `json:"approved_by,omitempty"`
	DecidedBy   *Actor `json:"decided_by,omitempty"`
	Comment     string `json:"comment,omitempty"`
	// ExpiresAt is when an approval wait ends (StateAwaitingApproval).
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// RevertAt and Revert are set for a mutation with a RevertAfter.
	RevertAt *time.Time `json:"revert_at,omitempty"`
	Revert   *Revert    `json:"revert,omitempty"`
}

// CommitOutput is what the commit update returns to the API.
type CommitOutput struct {
	Result      routes.Result `json:"result"`
	EventID     string        `json:"event_id"`
	RequestHash string        `json:"request_hash,omitempty"`
	// RevertAt is when a time-boxed change (RevertAfter) will be reverted.
	RevertAt *time.Time `json:"revert_at,omitempty"`
}

// Retry policies, explicit and documented in docs/temporal.md.
var (
	// commitRetry retries a commit that failed for a transient reason
	// (Postgres unreachable, serialization failure) within its local window.
	commitRetry = &temporal.RetryPolicy{
		InitialInterval:    100 * time.Millisecond,
		BackoffCoefficient: 2,
		MaximumInterval:    5 * time.Second,
		NonRetryableErrorTypes: []string{
			activities.ErrTypeInvalid, activities.ErrTypeNotFound, activities.ErrTypeConflict, activities.ErrTypePreconditionFailed,
		},
	}
	// sideEffectRetry was the policy of side effects retried as local
	// activities; kept for histories recorded before DurableSideEffects.
	sideEffectRetry = &temporal.RetryPolicy{
		InitialInterval:    200 * time.Millisecond,
		BackoffCoefficient: 2,
		MaximumInterval:    10 * time.Second,
	}
)

// RouteMutation applies one route mutation: the Postgres commit first (a
// local activity whose result the "commit" update returns), then, when the
// route changed, cache invalidation, event publish and audit insert in
// parallel, each retried until it succeeds. A mutation with an Approval or
// a NotBefore waits in its gate first; one with a RevertAfter then waits
// to revert (revert.go).
func RouteMutation(ctx workflow.Context, in MutationInput) (Status, error) {
	m := &mutation{in: in, status: Status{
		Action:  in.Mutation.Action,
		Key:     in.Mutation.Key,
		EventID: in.EventID,
		Steps:   Steps{StepPending, StepPending, StepPending, StepPending},

		RequestHash: in.RequestHash,
		RequestedBy: in.RequestedBy,
	}}
	m.gate = &gate{notBefore: in.NotBefore, approval: in.Approval, requestedBy: in.RequestedBy, view: gateView{
		state: &m.status.State, notBefore: &m.status.NotBefore, approvedBy: &m.status.ApprovedBy,
		decidedBy: &m.status.DecidedBy, comment: &m.status.Comment, expiresAt: &m.status.ExpiresAt, steps: &m.status.Steps,
	}}
	return m.run(ctx)
}

type mutation struct {
	in        MutationInput
	status    Status
	gate      *gate
	committed bool
	commitErr error
	// revertCancelled is set by the cancel update while the revert waits.
	revertCancelled bool
}

func (m *mutation) run(ctx workflow.Context) (Status, error) {
	if err := workflow.SetQueryHandler(ctx, StatusQuery, func() (Status, error) { return m.status, nil }); err != nil {
		return m.status, err
	}
	if err := workflow.SetUpdateHandler(ctx, CommitUpdate, m.awaitCommit); err != nil {
		return m.status, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, CancelUpdate, m.cancel,
		workflow.UpdateHandlerOptions{Validator: m.validateCancel}); err != nil {
		return m.status, err
	}
	if err := registerGate(ctx, m.gate, func() Status { return m.status }); err != nil {
		return m.status, err
	}
	if ended, err := m.gate.wait(ctx); err != nil || ended {
		if err != nil {
			return m.status, err
		}
		return m.finish(ctx)
	}

	res, err := m.commit(ctx)
	m.committed, m.commitErr = true, err
	if err != nil {
		m.reject(err)
		m.gate.end(ctx, err)
		return m.finish(ctx)
	}
	m.status.Result = &res
	m.status.Steps.Committed = StepDone
	revert := m.in.RevertAfter > 0 && res.Changed && m.in.Mutation.Action != routes.ActionCreated
	if revert {
		at := workflow.Now(ctx).Add(m.in.RevertAfter)
		m.status.RevertAt = &at
	}
	if !res.Changed {
		m.status.Steps.Invalidated, m.status.Steps.Published, m.status.Steps.Audited = StepSkipped, StepSkipped, StepSkipped
		m.gate.end(ctx, nil)
		return m.finish(ctx)
	}
	m.sideEffects(ctx, res)
	if revert {
		if err := m.revert(ctx, res); err != nil {
			return m.status, err
		}
	}
	m.gate.end(ctx, nil)
	return m.finish(ctx)
}

// validateCancel accepts a cancel only while the mutation waits: scheduled,
// awaiting approval, or with its revert pending. A rejected update adds
// nothing to the history.
func (m *mutation) validateCancel() error {
	if m.gate.pending() || m.revertPending() {
		return nil
	}
	return errNotPending("the mutation is not pending: it has applied or ended")
}

// cancel is the cancel update: a waiting mutation ends without committing;
// a pending revert is called off (the change stays).
func (m *mutation) cancel(workflow.Context) (Status, error) {
	if m.revertPending() {
		m.revertCancelled = true
		m.status.Revert.State = RevertCancelled
		m.status.State = StateCompleted
		return m.status, nil
	}
	m.gate.cancel()
	return m.status, nil
}

// awaitCommit is the commit update: it returns once the commit is decided
// (or the mutation ended before it: cancelled, rejected or expired).
func (m *mutation) awaitCommit(ctx workflow.Context) (CommitOutput, error) {
	if err := workflow.Await(ctx, func() bool { return m.committed || m.gate.ended() }); err != nil {
		return CommitOutput{}, err
	}
	if err := m.gate.endedErr(); err != nil {
		return CommitOutput{}, err
	}
	if m.commitErr != nil {
		return CommitOutput{}, m.commitErr
	}
	return CommitOutput{Result: *m.status.Result, EventID: m.in.EventID, RequestHash: m.in.RequestHash, RevertAt: m.status.RevertAt}, nil
}

func (m *mutation) commit(ctx workflow.Context) (routes.Result, error) {
	var a *activities.Activities
	mut := m.in.Mutation
	mut.EventID = m.in.EventID // a re-run of this mutation is recognised by the store
	var res routes.Result
	err := commitUntilDecided(ctx, a.Commit, mut, &res)
	return res, err
}

// DurableCommit is the change id (workflow.GetVersion) of the commit that
// continues as a regular activity after a minute of local attempts.
const DurableCommit = "durable-commit"

// commitUntilDecided runs a commit activity until it succeeds or is
// rejected (validation, not found, conflict), decoding its result into out.
//
// It runs as a local activity first, in the workflow task, retried for up
// to commitLocalWindow (a Postgres restart, a lost COMMIT reply); the
// caller has been answered 202 after TM_WRITE_ACK_TIMEOUT by then. An
// outage longer than that continues as a regular activity with unlimited
// attempts, so the history stays a few events long however long Postgres
// is away. Re-running a commit is always safe: the store finds the event
// id in its ledger and returns the recorded outcome.
func commitUntilDecided(ctx workflow.Context, activity any, arg any, out any) error {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    10 * time.Second,
		ScheduleToCloseTimeout: commitLocalWindow,
		RetryPolicy:            commitRetry,
	})
	for {
		err := workflow.ExecuteLocalActivity(lctx, activity, arg).Get(ctx, out)
		if err == nil || isRejection(err) {
			return err
		}
		if workflow.GetVersion(ctx, DurableCommit, workflow.DefaultVersion, 1) != workflow.DefaultVersion {
			actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
				StartToCloseTimeout: 10 * time.Second,
				RetryPolicy:         durableCommitRetry,
			})
			for {
				err := workflow.ExecuteActivity(actx, activity, arg).Get(ctx, out)
				if err == nil || isRejection(err) {
					return err
				}
				if err := workflow.Sleep(ctx, durableCommitRetry.MaximumInterval); err != nil {
					return err
				}
			}
		}
		// Histories from before DurableCommit: keep trying locally.
		if err := workflow.Sleep(ctx, commitRetry.MaximumInterval); err != nil {
			return err
		}
	}
}

// commitLocalWindow bounds the commit's local attempts. (Before
// DurableCommit it was 24 h of local attempts; histories of that time
// replay the same, since the window is not part of the history.)
const commitLocalWindow = time.Minute

// commitGiveUpAfter bounds the local retries of side effects in histories
// recorded before DurableSideEffects.
const commitGiveUpAfter = 24 * time.Hour

// durableCommitRetry retries a commit after its local window without a
// limit on attempts or time.
var durableCommitRetry = &temporal.RetryPolicy{
	InitialInterval:    time.Second,
	BackoffCoefficient: 2,
	MaximumInterval:    30 * time.Second,
	NonRetryableErrorTypes: []string{
		activities.ErrTypeInvalid, activities.ErrTypeNotFound, activities.ErrTypeConflict, activities.ErrTypePreconditionFailed,
	},
}

// isRejection reports whether err is a permanent answer about the mutation.
func isRejection(err error) bool {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		return false
	}
	switch appErr.Type() {
	case activities.ErrTypeInvalid, activities.ErrTypeNotFound, activities.ErrTypeConflict, activities.ErrTypePreconditionFailed:
		return true
	}
	return false
}

// reject records a permanent commit failure. The workflow then completes:
// a rejected mutation is answered (4xx), not an operational failure to retry.
func (m *mutation) reject(err error) {
	m.status.Steps = RejectedSteps
	m.status.Error, m.status.ErrorType = rejectionOf(err)
}

// rejectionOf returns a rejected commit's message and error type.
func rejectionOf(err error) (msg, errType string) {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message(), appErr.Type()
	}
	return err.Error(), ""
}

// sideEffects runs invalidation, publish and audit in parallel until each
// has succeeded (see runSideEffects).
func (m *mutation) sideEffects(ctx workflow.Context, res routes.Result) {
	info := workflow.GetInfo(ctx)
	ev := events.FromResult(m.in.EventID, m.in.Mutation.Action, res, m.in.Mutation.ChangedBy)
	ev.WorkflowID, ev.RunID = info.WorkflowExecution.ID, info.WorkflowExecution.RunID
	ev.Principal = m.in.Principal
	ev.RollbackTo = m.in.Mutation.RollbackTo
	ev.RequestedBy, ev.ApprovedBy = actorName(m.in.RequestedBy), actorName(m.status.ApprovedBy)
	runSideEffects(ctx, eventSideEffects(ev, res, &m.status.Steps), firstAttemptTimeout)
}

// eventSideEffects are the invalidation, publish and audit of one changed
// route's event, recording their states in steps.
func eventSideEffects(ev events.Event, res routes.Result, steps *Steps) []sideEffect {
	var a *activities.Activities
	return []sideEffect{
		{a.Invalidate, []any{res.Route.Key(), res.Route.Revision}, &steps.Invalidated},
		{a.Publish, []any{ev}, &steps.Published},
		{a.Audit, []any{ev}, &steps.Audited},
	}
}

// sideEffect is one step after the commit: the activity, its arguments,
// and where to record that it is done.
type sideEffect struct {
	activity any
	args     []any
	state    *string
}

// DurableSideEffects is the change id (workflow.GetVersion) of the durable
// path of side effects: regular activities instead of local ones.
const DurableSideEffects = "durable-side-effects"

// runSideEffects runs the steps in parallel: first as local activities
// with a single, time-boxed attempt, in the commit's workflow task, so the
// change reaches caches and resolvers within milliseconds and a whole
// mutation is usually one workflow task (few history events, high
// throughput on any Temporal store). That task's completion also carries
// the commit update's answer: the caller's acknowledgement waits for the
// commit plus at most this first attempt (first), never for a retry.
//
// A step whose first attempt failed continues as a regular activity with
// unlimited attempts and no overall deadline. Its retries are the server's
// and add no history events: an outage of minutes or days costs the same
// few events (scheduled, started, completed, a version marker and the
// workflow task that follows), where retrying local activities inside the
// workflow task grew the history with the outage until Temporal's limit.
// The first workflow task also completes at once (nothing local is left
// running), so the caller is answered as soon as the first attempt ends.
//
// Histories recorded before the durable path replay the local retries
// (workflow.DefaultVersion).
func runSideEffects(ctx workflow.Context, steps []sideEffect, first time.Duration) {
	firstCtx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: first,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	legacy := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    10 * time.Second,
		ScheduleToCloseTimeout: commitGiveUpAfter,
		RetryPolicy:            sideEffectRetry,
	})
	durable := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: durableAttemptTimeout,
		RetryPolicy:         durableRetry,
	})
	wg := workflow.NewWaitGroup(ctx)
	for _, s := range steps {
		wg.Add(1)
		workflow.Go(ctx, func(gctx workflow.Context) {
			defer wg.Done()
			if workflow.ExecuteLocalActivity(firstCtx, s.activity, s.args...).Get(gctx, nil) == nil {
				*s.state = StepDone
				return
			}
			if workflow.GetVersion(gctx, DurableSideEffects, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
				for workflow.ExecuteLocalActivity(legacy, s.activity, s.args...).Get(gctx, nil) != nil {
					if workflow.Sleep(gctx, sideEffectRetry.MaximumInterval) != nil {
						return
					}
				}
				*s.state = StepDone
				return
			}
			*s.state = StepRetrying
			for workflow.ExecuteActivity(durable, s.activity, s.args...).Get(gctx, nil) != nil {
				// Only a cancellation ends an activity with unlimited
				// attempts; start it again unless the workflow is ending.
				if workflow.Sleep(gctx, durableRetry.MaximumInterval) != nil {
					return
				}
			}
			*s.state = StepDone
		})
	}
	wg.Wait(ctx)
}

// firstAttemptTimeout bounds how much a side effect may add to the
// caller's acknowledgement when its dependency is slow, hung or down.
const firstAttemptTimeout = time.Second

// durableAttemptTimeout bounds one attempt of a durable side effect.
const durableAttemptTimeout = 30 * time.Second

// durableRetry retries a side effect without a limit on attempts or time:
// an outage of Redis, Kafka or MongoDB delays it, never drops it. Backing
// off to 30 s keeps a week-long outage at about 20,000 attempts, none of
// which adds a history event.
var durableRetry = &temporal.RetryPolicy{
	InitialInterval:    time.Second,
	BackoffCoefficient: 2,
	MaximumInterval:    30 * time.Second,
}

// finish waits for update handlers still running (a late duplicate request)
// before completing, so none is left unanswered.
func (m *mutation) finish(ctx workflow.Context) (Status, error) {
	return m.status, handlersDone(ctx)
}

// handlersDone waits until no update handler is running.
func handlersDone(ctx workflow.Context) error {
	return workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
}
