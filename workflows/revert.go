package workflows

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/trafficmanager/trafficmanager/activities"
	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/routes"
)

// revert waits until Status.RevertAt on a durable timer (or until the
// cancel update calls it off), then restores the route's state before the
// change: a mutation with action reverted, RollbackTo the revision before
// the one the change produced and IfRevision that produced revision, so a
// route that changed meanwhile is left alone (Revert.State skipped). Its
// event id is RevertEventID of the change's, so the ledger applies it at
// most once, whatever re-runs the workflow.
func (m *mutation) revert(ctx workflow.Context, changed routes.Result) error {
	m.gate.waited = true
	at := *m.status.RevertAt
	m.status.State = StateRevertPending
	m.status.Revert = &Revert{State: RevertPending, At: at}
	m.gate.upsert(ctx, StateRevertPending)
	if d := at.Sub(workflow.Now(ctx)); d > 0 {
		if _, err := workflow.AwaitWithTimeout(ctx, d, func() bool { return m.revertCancelled }); err != nil {
			return err
		}
	}
	if m.revertCancelled {
		return nil // the cancel update reported it
	}

	produced := changed.Route.Revision
	info := workflow.GetInfo(ctx)
	rm := routes.Mutation{
		Action:     routes.ActionReverted,
		Key:        m.in.Mutation.Key,
		RollbackTo: produced - 1,
		IfRevision: produced,
		EventID:    RevertEventID(m.in.EventID),
		WorkflowID: info.WorkflowExecution.ID,
		ChangedBy:  m.in.Mutation.ChangedBy,
	}
	// From here a cancel is too late: the revert is applying.
	m.status.State = StateRunning
	m.status.Revert.EventID = rm.EventID
	var a *activities.Activities
	var res routes.Result
	err := commitUntilDecided(ctx, a.Commit, rm, &res)
	m.status.State = StateCompleted
	if err != nil {
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) {
			return err // not a rejection: the workflow ended (cancelled)
		}
		m.status.Revert.State, m.status.Revert.Reason = RevertSkipped, revertSkipReason(appErr)
		return nil
	}
	if !res.Changed {
		m.status.Revert.State, m.status.Revert.Reason = RevertSkipped, "the route already has its state from before the change"
		return nil
	}
	m.status.Revert.State, m.status.Revert.Revision = RevertDone, res.Route.Revision
	ev := events.FromResult(rm.EventID, routes.ActionReverted, res, rm.ChangedBy)
	ev.WorkflowID, ev.RunID = info.WorkflowExecution.ID, info.WorkflowExecution.RunID
	ev.Principal = m.in.Principal
	ev.RollbackTo = rm.RollbackTo
	ev.RequestedBy, ev.ApprovedBy = actorName(m.in.RequestedBy), actorName(m.status.ApprovedBy)
	steps := Steps{StepDone, StepPending, StepPending, StepPending}
	m.status.Revert.Steps = &steps
	runSideEffects(ctx, eventSideEffects(ev, res, &steps), firstAttemptTimeout)
	return nil
}

// revertPending reports whether the mutation's revert waits on its timer.
func (m *mutation) revertPending() bool {
	return m.status.State == StateRevertPending && !m.revertCancelled
}

// revertSkipReason says why the revert's commit was rejected.
func revertSkipReason(err *temporal.ApplicationError) string {
	switch err.Type() {
	case activities.ErrTypePreconditionFailed:
		return fmt.Sprintf("the route changed after this mutation: %s", err.Message())
	case activities.ErrTypeNotFound:
		return "the route no longer exists"
	}
	return fmt.Sprintf("the previous state cannot be restored: %s", err.Message())
}
