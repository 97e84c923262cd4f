package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/trafficmanager/trafficmanager/activities"
	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/routes"
)

// SplitWorkflowType is the registered name of SplitMutation.
const SplitWorkflowType = "SplitMutation"

// SplitInput is the input of SplitMutation; its fields mean what
// MutationInput's do. A split change has no revert_after.
type SplitInput struct {
	Mutation    routes.SplitMutation `json:"mutation"`
	EventID     string               `json:"event_id"`
	Principal   string               `json:"principal,omitempty"`
	RequestHash string               `json:"request_hash,omitempty"`
	NotBefore   *time.Time           `json:"not_before,omitempty"`
	Approval    *Approval            `json:"approval,omitempty"`
	RequestedBy *Actor               `json:"requested_by,omitempty"`
}

// SplitStatus is what the status query and the result of SplitMutation
// report; its fields mean what Status's do.
type SplitStatus struct {
	Action      routes.Action       `json:"action"`
	Key         routes.SplitKey     `json:"key"`
	EventID     string              `json:"event_id"`
	Result      *routes.SplitResult `json:"result,omitempty"`
	Steps       Steps               `json:"steps"`
	Error       string              `json:"error,omitempty"`
	ErrorType   string              `json:"error_type,omitempty"`
	RequestHash string              `json:"request_hash,omitempty"`
	State       string              `json:"state,omitempty"`
	NotBefore   *time.Time          `json:"not_before,omitempty"`
	RequestedBy *Actor              `json:"requested_by,omitempty"`
	ApprovedBy  *Actor              `json:"approved_by,omitempty"`
	DecidedBy   *Actor              `json:"decided_by,omitempty"`
	Comment     string              `json:"comment,omitempty"`
	ExpiresAt   *time.Time          `json:"expires_at,omitempty"`
}

// SplitCommitOutput is what the commit update of SplitMutation returns.
type SplitCommitOutput struct {
	Result      routes.SplitResult `json:"result"`
	EventID     string             `json:"event_id"`
	RequestHash string             `json:"request_hash,omitempty"`
}

// SplitWorkflowID returns the readable id of a split mutation workflow:
// split/{tenant}/{service}/{env}/{action}/{key}.
func SplitWorkflowID(m routes.SplitMutation, key string) string {
	k := m.Key
	return "split/" + k.Tenant + "/" + k.Service + "/" + k.Env + "/" + string(m.Action) + "/" + key
}

// SplitSearchAttributes returns the attributes of a split mutation
// workflow (no TmVersion: a split names several).
func SplitSearchAttributes(m routes.SplitMutation) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(
		AttrTenant.ValueSet(m.Key.Tenant),
		AttrService.ValueSet(m.Key.Service),
		AttrEnv.ValueSet(m.Key.Env),
		AttrAction.ValueSet(string(m.Action)),
	)
}

// SplitMutation applies one split mutation as RouteMutation applies a
// route's: the gate (approval, not_before, cancel), the commit through the
// split ledger (exactly once), then, when the split changed, invalidation
// of its Redis entry, the split_changed event and the audit document, in
// parallel and each retried until done.
//
// A rollout workflow may run it as a child workflow (see SetSplit); the
// commit update is optional, the workflow commits without it.
func SplitMutation(ctx workflow.Context, in SplitInput) (SplitStatus, error) {
	m := &splitMutation{in: in, status: SplitStatus{
		Action: in.Mutation.Action, Key: in.Mutation.Key, EventID: in.EventID,
		Steps:       Steps{StepPending, StepPending, StepPending, StepPending},
		RequestHash: in.RequestHash, RequestedBy: in.RequestedBy,
	}}
	st := &m.status
	m.gate = &gate{notBefore: in.NotBefore, approval: in.Approval, requestedBy: in.RequestedBy, view: gateView{
		state: &st.State, notBefore: &st.NotBefore, approvedBy: &st.ApprovedBy,
		decidedBy: &st.DecidedBy, comment: &st.Comment, expiresAt: &st.ExpiresAt, steps: &st.Steps,
	}}
	return m.run(ctx)
}

type splitMutation struct {
	in        SplitInput
	status    SplitStatus
	gate      *gate
	committed bool
	commitErr error
}

func (m *splitMutation) run(ctx workflow.Context) (SplitStatus, error) {
	if err := workflow.SetQueryHandler(ctx, StatusQuery, func() (SplitStatus, error) { return m.status, nil }); err != nil {
		return m.status, err
	}
	if err := workflow.SetUpdateHandler(ctx, CommitUpdate, m.awaitCommit); err != nil {
		return m.status, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, CancelUpdate, func(workflow.Context) (SplitStatus, error) {
		m.gate.cancel()
		return m.status, nil
	}, workflow.UpdateHandlerOptions{Validator: func() error {
		if m.gate.pending() {
			return nil
		}
		return errNotPending("the mutation is not pending: it has applied or ended")
	}}); err != nil {
		return m.status, err
	}
	if err := registerGate(ctx, m.gate, func() SplitStatus { return m.status }); err != nil {
		return m.status, err
	}
	if ended, err := m.gate.wait(ctx); err != nil || ended {
		if err != nil {
			return m.status, err
		}
		return m.status, handlersDone(ctx)
	}

	var a *activities.Activities
	mut := m.in.Mutation
	mut.EventID = m.in.EventID
	var res routes.SplitResult
	err := commitUntilDecided(ctx, a.CommitSplit, mut, &res)
	m.committed, m.commitErr = true, err
	if err != nil {
		m.status.Steps = RejectedSteps
		m.status.Error, m.status.ErrorType = rejectionOf(err)
		m.gate.end(ctx, err)
		return m.status, handlersDone(ctx)
	}
	m.status.Result = &res
	m.status.Steps.Committed = StepDone
	if !res.Changed {
		m.status.Steps.Invalidated, m.status.Steps.Published, m.status.Steps.Audited = StepSkipped, StepSkipped, StepSkipped
		m.gate.end(ctx, nil)
		return m.status, handlersDone(ctx)
	}
	info := workflow.GetInfo(ctx)
	ev := events.FromSplitResult(m.in.EventID, mut.Action, res, mut.ChangedBy)
	ev.WorkflowID, ev.RunID = info.WorkflowExecution.ID, info.WorkflowExecution.RunID
	ev.Principal = m.in.Principal
	ev.RequestedBy, ev.ApprovedBy = actorName(m.in.RequestedBy), actorName(m.status.ApprovedBy)
	steps := &m.status.Steps
	runSideEffects(ctx, []sideEffect{
		{a.InvalidateSplit, []any{mut.Key, res.Split.Revision}, &steps.Invalidated},
		{a.PublishSplit, []any{ev}, &steps.Published},
		{a.AuditSplit, []any{ev}, &steps.Audited},
	}, firstAttemptTimeout)
	m.gate.end(ctx, nil)
	return m.status, handlersDone(ctx)
}

// awaitCommit is the commit update: it returns once the commit is decided
// or the mutation ended in its gate.
func (m *splitMutation) awaitCommit(ctx workflow.Context) (SplitCommitOutput, error) {
	if err := workflow.Await(ctx, func() bool { return m.committed || m.gate.ended() }); err != nil {
		return SplitCommitOutput{}, err
	}
	if err := m.gate.endedErr(); err != nil {
		return SplitCommitOutput{}, err
	}
	if m.commitErr != nil {
		return SplitCommitOutput{}, m.commitErr
	}
	return SplitCommitOutput{Result: *m.status.Result, EventID: m.in.EventID, RequestHash: m.in.RequestHash}, nil
}

// SetSplit is how another workflow (a rollout) sets or deletes a split:
// it runs SplitMutation as a child workflow with id
// SplitWorkflowID(m, key) and the event id EventIDFor of that id, so a
// re-run of the parent (same key) re-attaches to the same change and never
// applies it twice. key must be deterministic (derived from the parent's
// workflow id and step). A rejected commit (invalid or inactive versions,
// If-Match, missing split) comes back as a non-retryable application
// error of the commit's error type (activities.ErrType*).
func SetSplit(ctx workflow.Context, m routes.SplitMutation, key string) (routes.SplitResult, error) {
	wfID := SplitWorkflowID(m, key)
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            wfID,
		TypedSearchAttributes: SplitSearchAttributes(m),
	})
	var st SplitStatus
	err := workflow.ExecuteChildWorkflow(cctx, SplitWorkflowType, SplitInput{Mutation: m, EventID: EventIDFor(wfID)}).Get(ctx, &st)
	if err != nil {
		return routes.SplitResult{}, err
	}
	if st.ErrorType != "" {
		return routes.SplitResult{}, temporal.NewNonRetryableApplicationError(st.Error, st.ErrorType, nil)
	}
	if st.Result == nil {
		return routes.SplitResult{}, temporal.NewNonRetryableApplicationError("the split mutation ended without applying", ErrTypeCancelled, nil)
	}
	return *st.Result, nil
}
