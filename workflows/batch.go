package workflows

import (
	"strconv"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/trafficmanager/trafficmanager/activities"
	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/routes"
)

// BatchWorkflowType is the registered name of RouteBatch.
const BatchWorkflowType = "RouteBatch"

// BatchInput is the input of RouteBatch: up to routes.MaxBatch creations of
// one tenant. Each route's event id derives from BatchID and its position
// (BatchEventID), so a re-run sends the same ids.
type BatchInput struct {
	Mutations   []routes.Mutation `json:"mutations"`
	BatchID     string            `json:"batch_id"`
	Principal   string            `json:"principal,omitempty"`
	RequestHash string            `json:"request_hash,omitempty"`
	// NotBefore, Approval and RequestedBy are as in MutationInput.
	NotBefore   *time.Time `json:"not_before,omitempty"`
	Approval    *Approval  `json:"approval,omitempty"`
	RequestedBy *Actor     `json:"requested_by,omitempty"`
}

// BatchStatus is what the status query and the workflow result of a batch
// report. Results (in input order, with EventIDs) are set once committed.
type BatchStatus struct {
	Action    routes.Action   `json:"action"`
	Tenant    string          `json:"tenant"`
	BatchID   string          `json:"batch_id"`
	Routes    int             `json:"routes"`
	Created   int             `json:"created"`
	Unchanged int             `json:"unchanged"`
	Results   []routes.Result `json:"results,omitempty"`
	EventIDs  []string        `json:"event_ids,omitempty"`
	Steps     Steps           `json:"steps"`
	Error     string          `json:"error,omitempty"`
	ErrorType string          `json:"error_type,omitempty"`
	// RequestHash is the input's (see MutationInput).
	RequestHash string `json:"request_hash,omitempty"`
	// State, NotBefore, RequestedBy, ApprovedBy, DecidedBy, Comment and
	// ExpiresAt are as in Status.
	State       string     `json:"state,omitempty"`
	NotBefore   *time.Time `json:"not_before,omitempty"`
	RequestedBy *Actor     `json:"requested_by,omitempty"`
	ApprovedBy  *Actor     `json:"approved_by,omitempty"`
	DecidedBy   *Actor     `json:"decided_by,omitempty"`
	Comment     string     `json:"comment,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
}

// BatchCommitOutput is what the commit update of a batch returns.
type BatchCommitOutput struct {
	BatchID     string          `json:"batch_id"`
	Results     []routes.Result `json:"results"`
	EventIDs    []string        `json:"event_ids"`
	RequestHash string          `json:"request_hash,omitempty"`
}

// batchFirstAttemptTimeout bounds the first attempt of a batch's side
// effects (a thousand audit documents take longer than one), well inside
// the default TM_WRITE_ACK_TIMEOUT (5 s): the batch's commit is answered
// when this attempt ends.
const batchFirstAttemptTimeout = 2 * time.Second

// BatchEventID is the event id of the i-th route of a batch: a name-based
// UUID, so it is the same on every run of the workflow.
func BatchEventID(batchID string, i int) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("trafficmanager:batch:"+batchID+":"+strconv.Itoa(i))).String()
}

// BatchWorkflowID returns the id of a batch workflow:
// batch/{tenant}/created/{key}.
func BatchWorkflowID(tenant, key string) string {
	return "batch/" + tenant + "/" + string(routes.ActionCreated) + "/" + key
}

// BatchSearchAttributes returns the attributes of a batch workflow of
// tenant creating ms: TmTenant, TmAction and the routes in TmRoutes.
func BatchSearchAttributes(tenant string, ms ...routes.Mutation) temporal.SearchAttributes {
	updates := []temporal.SearchAttributeUpdate{
		AttrTenant.ValueSet(tenant),
		AttrAction.ValueSet(string(routes.ActionCreated)),
	}
	if rs := TmRoutes(ms); len(rs) > 0 {
		updates = append(updates, AttrRoutes.ValueSet(rs))
	}
	return temporal.NewSearchAttributes(updates...)
}

// RouteBatch creates up to routes.MaxBatch routes of one tenant: one
// Postgres transaction for all of them (the "commit" update returns once it
// is decided), then the invalidations, events and audit documents of the
// routes it created, each kind in one round trip and retried until done —
// the same guarantees as RouteMutation, per route. A batch with an
// Approval or a NotBefore first waits in the same gate as RouteMutation
// (cancel, approve and reject updates alike); batches have no revert.
func RouteBatch(ctx workflow.Context, in BatchInput) (BatchStatus, error) {
	b := &batch{in: in, status: BatchStatus{
		Action:  routes.ActionCreated,
		BatchID: in.BatchID,
		Routes:  len(in.Mutations),
		Steps:   Steps{StepPending, StepPending, StepPending, StepPending},

		RequestHash: in.RequestHash,
		RequestedBy: in.RequestedBy,
	}}
	if len(in.Mutations) > 0 {
		b.status.Tenant = in.Mutations[0].Key.Tenant
	}
	b.gate = &gate{notBefore: in.NotBefore, approval: in.Approval, requestedBy: in.RequestedBy, view: gateView{
		state: &b.status.State, notBefore: &b.status.NotBefore, approvedBy: &b.status.ApprovedBy,
		decidedBy: &b.status.DecidedBy, comment: &b.status.Comment, expiresAt: &b.status.ExpiresAt, steps: &b.status.Steps,
	}}
	return b.run(ctx)
}

type batch struct {
	in        BatchInput
	status    BatchStatus
	gate      *gate
	committed bool
	commitErr error
}

// snapshot is the batch's status as the query and the gate's updates
// answer it: counts and steps; the results are in the commit update's
// answer.
func (b *batch) snapshot() BatchStatus {
	st := b.status
	st.Results, st.EventIDs = nil, nil
	return st
}

func (b *batch) run(ctx workflow.Context) (BatchStatus, error) {
	if err := workflow.SetQueryHandler(ctx, StatusQuery, func() (BatchStatus, error) { return b.snapshot(), nil }); err != nil {
		return b.status, err
	}
	if err := workflow.SetUpdateHandler(ctx, CommitUpdate, b.awaitCommit); err != nil {
		return b.status, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, CancelUpdate, func(workflow.Context) (BatchStatus, error) {
		b.gate.cancel()
		return b.snapshot(), nil
	}, workflow.UpdateHandlerOptions{Validator: func() error {
		if !b.gate.pending() {
			return errNotPending("the batch is not pending: it has applied or ended")
		}
		return nil
	}}); err != nil {
		return b.status, err
	}
	if err := registerGate(ctx, b.gate, b.snapshot); err != nil {
		return b.status, err
	}
	if ended, err := b.gate.wait(ctx); err != nil || ended {
		if err != nil {
			return b.status, err
		}
		return b.finish(ctx)
	}

	ms := make([]routes.Mutation, len(b.in.Mutations))
	ids := make([]string, len(ms))
	for i, m := range b.in.Mutations {
		ids[i] = BatchEventID(b.in.BatchID, i)
		m.EventID = ids[i]
		ms[i] = m
	}
	var a *activities.Activities
	var res []routes.Result
	err := commitUntilDecided(ctx, a.CommitBatch, ms, &res)
	b.committed, b.commitErr = true, err
	if err != nil {
		b.status.Steps = RejectedSteps
		b.status.Error, b.status.ErrorType = rejectionOf(err)
		b.gate.end(ctx, err)
		return b.finish(ctx)
	}
	b.status.Results, b.status.EventIDs = res, ids
	b.status.Steps.Committed = StepDone

	var changes []cache.Invalidation
	var evs []events.Event
	info := workflow.GetInfo(ctx)
	for i, r := range res {
		if !r.Changed {
			continue
		}
		changes = append(changes, cache.Invalidation{Key: r.Route.Key(), Revision: r.Route.Revision})
		ev := events.FromResult(ids[i], routes.ActionCreated, r, ms[i].ChangedBy)
		ev.WorkflowID, ev.RunID, ev.Principal = info.WorkflowExecution.ID, info.WorkflowExecution.RunID, b.in.Principal
		ev.RequestedBy, ev.ApprovedBy = actorName(b.in.RequestedBy), actorName(b.status.ApprovedBy)
		evs = append(evs, ev)
	}
	b.status.Created, b.status.Unchanged = len(evs), len(res)-len(evs)
	if len(evs) == 0 {
		b.status.Steps.Invalidated, b.status.Steps.Published, b.status.Steps.Audited = StepSkipped, StepSkipped, StepSkipped
		b.gate.end(ctx, nil)
		return b.finish(ctx)
	}
	runSideEffects(ctx, []sideEffect{
		{a.InvalidateMany, []any{changes}, &b.status.Steps.Invalidated},
		{a.PublishMany, []any{evs}, &b.status.Steps.Published},
		{a.AuditMany, []any{evs}, &b.status.Steps.Audited},
	}, batchFirstAttemptTimeout)
	b.gate.end(ctx, nil)
	return b.finish(ctx)
}

// awaitCommit is the commit update of a batch: it returns once the commit
// is decided (or the batch ended before it: cancelled, rejected, expired).
func (b *batch) awaitCommit(ctx workflow.Context) (BatchCommitOutput, error) {
	if err := workflow.Await(ctx, func() bool { return b.committed || b.gate.ended() }); err != nil {
		return BatchCommitOutput{}, err
	}
	if err := b.gate.endedErr(); err != nil {
		return BatchCommitOutput{}, err
	}
	if b.commitErr != nil {
		return BatchCommitOutput{}, b.commitErr
	}
	return BatchCommitOutput{BatchID: b.in.BatchID, Results: b.status.Results, EventIDs: b.status.EventIDs, RequestHash: b.in.RequestHash}, nil
}

func (b *batch) finish(ctx workflow.Context) (BatchStatus, error) {
	return b.status, handlersDone(ctx)
}
