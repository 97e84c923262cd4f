package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// This file is the contract between the mutation workflows and the API for
// changes that wait before they apply (not_before, approval) and after
// (revert_after): the inputs the API sets, the updates it sends, and what
// the status query reports.

// More states of a mutation reported in Status.State (and in the TmStatus
// search attribute, see AttrStatus).
const (
	// StateAwaitingApproval: waiting for ApproveUpdate or RejectUpdate by
	// another principal, at most Approval.Timeout.
	StateAwaitingApproval = "awaiting_approval"
	// StateDenied: an approver rejected it (RejectUpdate); it never
	// committed. The API reports it as status "rejected".
	StateDenied = "rejected"
	// StateExpired: no decision within Approval.Timeout; it never committed.
	StateExpired = "expired"
	// StateRevertPending: applied; its revert waits on a timer until
	// Status.RevertAt (cancellable with CancelUpdate).
	StateRevertPending = "revert_pending"
	// StateRunning and StateCompleted are the TmStatus values of a mutation
	// that applies now, and of one that has ended after applying.
	StateRunning   = "running"
	StateCompleted = "completed"
)

// Updates of a mutation awaiting approval. Both take a Decision and return
// the Status. They are rejected with ErrTypeNotPending unless the mutation
// is awaiting approval, and ApproveUpdate with ErrTypeSelfApproval when the
// approver is the requester (four eyes).
const (
	ApproveUpdate = "approve"
	RejectUpdate  = "reject"
)

// ErrTypeSelfApproval is the error type of an approval by the requester.
const ErrTypeSelfApproval = "SelfApproval"

// Actor is a principal as the workflows record it: the token's id (empty
// with TM_AUTH=off) and name.
type Actor struct {
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

// Decision is the argument of ApproveUpdate and RejectUpdate.
type Decision struct {
	By      Actor  `json:"by"`
	Comment string `json:"comment,omitempty"`
}

// Approval asks a mutation to wait for a decision before it applies.
type Approval struct {
	// Timeout ends the wait with StateExpired (zero or less: no expiry;
	// the API always sets one).
	Timeout time.Duration `json:"timeout"`
}

// Revert reports a mutation's revert_after.
type Revert struct {
	// State is pending, done, skipped or cancelled.
	State string `json:"state"`
	// At is when the revert applies (or applied).
	At time.Time `json:"at"`
	// Revision is the revision the revert produced (done).
	Revision int64 `json:"revision,omitempty"`
	// EventID is the revert's own event id (RevertEventID).
	EventID string `json:"event_id,omitempty"`
	// Reason says why it was skipped.
	Reason string `json:"reason,omitempty"`
	// Steps are the revert's own side effects (done).
	Steps *Steps `json:"steps,omitempty"`
}

// Revert states.
const (
	RevertPending   = "pending"
	RevertDone      = "done"
	RevertSkipped   = "skipped"
	RevertCancelled = "cancelled"
)

// Error types of the commit update of a mutation that ended without
// committing (besides ErrTypeCancelled): rejected by an approver, or no
// decision within Approval.Timeout.
const (
	ErrTypeDenied  = "MutationRejected"
	ErrTypeExpired = "MutationExpired"
)

// StateFailed is the TmStatus of a mutation that waited (scheduled or
// approved) and whose commit was then rejected (not found, precondition
// failed, conflict): GET /api/v1/mutations?status=failed lists it.
const StateFailed = "failed"

// TmStatusChange is the change id (workflow.GetVersion) of the TmStatus
// upserts. It is only looked up in the waiting branches, so a mutation
// that applies at once records neither the marker nor an upsert, and
// histories recorded before the upserts replay unchanged.
const TmStatusChange = "tm-status"

// gate holds a mutation or a batch back before its commit: first until an
// approver decides (Approval), then until NotBefore. RouteMutation and
// RouteBatch share it; it writes what it decides into their status through
// view, so both report the same fields.
type gate struct {
	notBefore   *time.Time
	approval    *Approval
	requestedBy *Actor
	view        gateView

	// approved, denied and cancelled are set by the updates; expired when
	// the approval wait timed out.
	approved, denied, cancelled, expired bool

	// waited is set once the workflow waited on anything: only then does
	// it upsert TmStatus (guarded by TmStatusChange).
	waited  bool
	version *workflow.Version
}

// gateView points at the gate's fields in a Status or BatchStatus.
type gateView struct {
	state      *string
	notBefore  **time.Time
	approvedBy **Actor
	decidedBy  **Actor
	comment    *string
	expiresAt  **time.Time
	steps      *Steps
}

var skippedSteps = Steps{StepSkipped, StepSkipped, StepSkipped, StepSkipped}

// wait runs the gate: it returns ended=true when the mutation must end
// without committing (rejected, expired or cancelled; the status says
// which). A mutation that has nothing to wait for adds no command.
func (g *gate) wait(ctx workflow.Context) (ended bool, err error) {
	if nb := g.notBefore; nb != nil && nb.After(workflow.Now(ctx)) {
		*g.view.notBefore = nb // reported while awaiting approval too
	}
	if g.approval != nil {
		g.waited = true
		*g.view.state = StateAwaitingApproval
		decided := func() bool { return g.approved || g.denied || g.cancelled }
		if g.approval.Timeout > 0 {
			exp := workflow.Now(ctx).Add(g.approval.Timeout)
			*g.view.expiresAt = &exp
			if _, err := workflow.AwaitWithTimeout(ctx, g.approval.Timeout, decided); err != nil {
				return false, err
			}
		} else if err := workflow.Await(ctx, decided); err != nil {
			return false, err
		}
		switch {
		case g.cancelled:
			g.upsert(ctx, StateCancelled)
			return true, nil
		case g.denied:
			g.upsert(ctx, StateDenied)
			return true, nil
		case !g.approved:
			g.expired = true
			*g.view.state, *g.view.steps = StateExpired, skippedSteps
			g.upsert(ctx, StateExpired)
			return true, nil
		}
	}
	if nb := g.notBefore; nb != nil && nb.After(workflow.Now(ctx)) {
		if g.waited {
			g.upsert(ctx, StateScheduled) // approved, now waiting for its time
		}
		g.waited = true
		*g.view.state, *g.view.notBefore = StateScheduled, nb
		if _, err := workflow.AwaitWithTimeout(ctx, nb.Sub(workflow.Now(ctx)), func() bool { return g.cancelled }); err != nil {
			return false, err
		}
		if g.cancelled {
			g.upsert(ctx, StateCancelled)
			return true, nil
		}
	}
	if g.waited {
		*g.view.state = StateApplying
		g.upsert(ctx, StateRunning)
	}
	return false, nil
}

// upsert sets the TmStatus search attribute, only after a wait and only
// in histories recorded since TmStatusChange.
func (g *gate) upsert(ctx workflow.Context, state string) {
	if !g.waited {
		return
	}
	if g.version == nil {
		v := workflow.GetVersion(ctx, TmStatusChange, workflow.DefaultVersion, 1)
		g.version = &v
	}
	if *g.version == workflow.DefaultVersion {
		return
	}
	// An upsert fails only on a malformed attribute, never on this one;
	// the status query stays the reference either way.
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrStatus.ValueSet(state))
}

// end upserts the final TmStatus of a mutation that waited: completed, or
// failed when its commit was rejected.
func (g *gate) end(ctx workflow.Context, commitErr error) {
	if commitErr != nil {
		g.upsert(ctx, StateFailed)
		return
	}
	g.upsert(ctx, StateCompleted)
}

// endedErr is what the commit update answers for a mutation that ended
// without committing, nil otherwise.
func (g *gate) endedErr() error {
	switch {
	case g.cancelled:
		return temporal.NewNonRetryableApplicationError("the mutation was cancelled before it applied", ErrTypeCancelled, nil)
	case g.denied:
		return temporal.NewNonRetryableApplicationError("the mutation was rejected by an approver", ErrTypeDenied, nil)
	case g.expired:
		return temporal.NewNonRetryableApplicationError("the mutation expired: no approval decision in time", ErrTypeExpired, nil)
	}
	return nil
}

// ended reports whether the mutation ended in the gate.
func (g *gate) ended() bool { return g.cancelled || g.denied || g.expired }

// pending reports whether a cancel may still stop the commit.
func (g *gate) pending() bool {
	s := *g.view.state
	return (s == StateScheduled || s == StateAwaitingApproval) && !g.ended()
}

// errNotPending is the answer to an update sent to a mutation that no
// longer waits for it.
func errNotPending(msg string) error {
	return temporal.NewNonRetryableApplicationError(msg, ErrTypeNotPending, nil)
}

func (g *gate) validateDecision(approve bool) func(workflow.Context, Decision) error {
	return func(_ workflow.Context, d Decision) error {
		if *g.view.state != StateAwaitingApproval || g.approved || g.denied || g.cancelled {
			return errNotPending("the mutation is not awaiting approval: it was decided, cancelled or has expired")
		}
		if approve && g.requestedBy != nil && g.requestedBy.ID != "" && d.By.ID == g.requestedBy.ID {
			return temporal.NewNonRetryableApplicationError("the requester of a mutation cannot approve it", ErrTypeSelfApproval, nil)
		}
		return nil
	}
}

// approve records the approval; the mutation goes on to its NotBefore (or
// applies now).
func (g *gate) approve(ctx workflow.Context, d Decision) {
	g.approved = true
	by := d.By
	*g.view.approvedBy, *g.view.comment = &by, d.Comment
	*g.view.expiresAt = nil
	if nb := g.notBefore; nb != nil && nb.After(workflow.Now(ctx)) {
		*g.view.state, *g.view.notBefore = StateScheduled, nb
	} else {
		*g.view.state = StateApplying
	}
}

// reject records the rejection; the mutation ends without committing.
func (g *gate) reject(d Decision) {
	g.denied = true
	by := d.By
	*g.view.decidedBy, *g.view.comment = &by, d.Comment
	*g.view.state, *g.view.steps = StateDenied, skippedSteps
	*g.view.expiresAt = nil
}

// cancel ends a scheduled or awaiting mutation without committing.
func (g *gate) cancel() {
	g.cancelled = true
	*g.view.state, *g.view.steps = StateCancelled, skippedSteps
	*g.view.expiresAt = nil
}

// registerGate registers ApproveUpdate and RejectUpdate; both answer the
// status snapshot returns.
func registerGate[S any](ctx workflow.Context, g *gate, snapshot func() S) error {
	if err := workflow.SetUpdateHandlerWithOptions(ctx, ApproveUpdate, func(ctx workflow.Context, d Decision) (S, error) {
		g.approve(ctx, d)
		return snapshot(), nil
	}, workflow.UpdateHandlerOptions{Validator: g.validateDecision(true)}); err != nil {
		return err
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, RejectUpdate, func(_ workflow.Context, d Decision) (S, error) {
		g.reject(d)
		return snapshot(), nil
	}, workflow.UpdateHandlerOptions{Validator: g.validateDecision(false)})
}

// actorName is how events and audit documents name a principal.
func actorName(a *Actor) string {
	if a == nil {
		return ""
	}
	if a.Name != "" {
		return a.Name
	}
	return a.ID
}
