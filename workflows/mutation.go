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
)

// Step states reported by the status query.
const (
	StepPending  = "pending"
	StepDone     = "done"
	StepSkipped  = "skipped"
	StepRejected = "rejected"
)

// MutationInput is the input of RouteMutation. EventID is decided once by
// the caller, so every retry of the side effects (and a re-run of the
// workflow with the same input) re-sends the same id.
type MutationInput struct {
	Mutation  routes.Mutation `json:"mutation"`
	EventID   string          `json:"event_id"`
	Principal string          `json:"principal,omitempty"`
}

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
	Error     string `json:"error,omitempty"`
	ErrorType string `json:"error_type,omitempty"`
}

// CommitOutput is what the commit update returns to the API.
type CommitOutput struct {
	Result  routes.Result `json:"result"`
	EventID string        `json:"event_id"`
}

// Retry policies, explicit and documented in docs/temporal.md.
var (
	// commitRetry retries a commit that failed for a transient reason
	// (Postgres unreachable, serialization failure) until it succeeds; the
	// caller has long been answered 202 by then.
	commitRetry = &temporal.RetryPolicy{
		InitialInterval:    100 * time.Millisecond,
		BackoffCoefficient: 2,
		MaximumInterval:    5 * time.Second,
		NonRetryableErrorTypes: []string{
			activities.ErrTypeInvalid, activities.ErrTypeNotFound, activities.ErrTypeConflict,
		},
	}
	// sideEffectRetry retries without a limit on attempts: an outage of
	// Redis, Kafka or MongoDB delays a side effect, never drops it.
	sideEffectRetry = &temporal.RetryPolicy{
		InitialInterval:    200 * time.Millisecond,
		BackoffCoefficient: 2,
		MaximumInterval:    10 * time.Second,
	}
)

// RouteMutation applies one route mutation: the Postgres commit first (a
// local activity whose result the "commit" update returns), then, when the
// route changed, cache invalidation, event publish and audit insert in
// parallel, each retried until it succeeds.
func RouteMutation(ctx workflow.Context, in MutationInput) (Status, error) {
	m := &mutation{in: in, status: Status{
		Action:  in.Mutation.Action,
		Key:     in.Mutation.Key,
		EventID: in.EventID,
		Steps:   Steps{StepPending, StepPending, StepPending, StepPending},
	}}
	return m.run(ctx)
}

type mutation struct {
	in        MutationInput
	status    Status
	committed bool
	commitErr error
}

func (m *mutation) run(ctx workflow.Context) (Status, error) {
	if err := workflow.SetQueryHandler(ctx, StatusQuery, func() (Status, error) { return m.status, nil }); err != nil {
		return m.status, err
	}
	if err := workflow.SetUpdateHandler(ctx, CommitUpdate, m.awaitCommit); err != nil {
		return m.status, err
	}

	res, err := m.commit(ctx)
	m.committed, m.commitErr = true, err
	if err != nil {
		m.reject(err)
		return m.finish(ctx)
	}
	m.status.Result = &res
	m.status.Steps.Committed = StepDone
	if !res.Changed {
		m.status.Steps.Invalidated, m.status.Steps.Published, m.status.Steps.Audited = StepSkipped, StepSkipped, StepSkipped
		return m.finish(ctx)
	}
	m.sideEffects(ctx, res)
	return m.finish(ctx)
}

// awaitCommit is the commit update: it returns once the commit is decided.
func (m *mutation) awaitCommit(ctx workflow.Context) (CommitOutput, error) {
	if err := workflow.Await(ctx, func() bool { return m.committed }); err != nil {
		return CommitOutput{}, err
	}
	if m.commitErr != nil {
		return CommitOutput{}, m.commitErr
	}
	return CommitOutput{Result: *m.status.Result, EventID: m.in.EventID}, nil
}

func (m *mutation) commit(ctx workflow.Context) (routes.Result, error) {
	var a *activities.Activities
	mut := m.in.Mutation
	mut.EventID = m.in.EventID // a re-run of this mutation is recognised by the store
	var res routes.Result
	err := commitUntilDecided(ctx, func(lctx workflow.Context) workflow.Future {
		return workflow.ExecuteLocalActivity(lctx, a.Commit, mut)
	}, &res)
	return res, err
}

// commitUntilDecided runs a commit local activity until it succeeds or is
// rejected (validation, not found, conflict), decoding its result into out.
func commitUntilDecided(ctx workflow.Context, run func(workflow.Context) workflow.Future, out any) error {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		// Without it the SDK bounds all attempts by StartToCloseTimeout: a
		// Postgres outage longer than 10 s would end the commit.
		ScheduleToCloseTimeout: commitGiveUpAfter,
		RetryPolicy:            commitRetry,
	})
	for {
		err := run(lctx).Get(ctx, out)
		if err == nil || isRejection(err) {
			return err
		}
		// Not a decision about the mutation (the retry window ran out):
		// keep trying; the caller was answered 202 long ago.
		if err := workflow.Sleep(ctx, commitRetry.MaximumInterval); err != nil {
			return err
		}
	}
}

// commitGiveUpAfter bounds one series of commit attempts; the workflow then
// starts another, so an acknowledged (202) mutation is never dropped.
const commitGiveUpAfter = 24 * time.Hour

// isRejection reports whether err is a permanent answer about the mutation.
func isRejection(err error) bool {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		return false
	}
	switch appErr.Type() {
	case activities.ErrTypeInvalid, activities.ErrTypeNotFound, activities.ErrTypeConflict:
		return true
	}
	return false
}

// reject records a permanent commit failure. The workflow then completes:
// a rejected mutation is answered (4xx), not an operational failure to retry.
func (m *mutation) reject(err error) {
	m.status.Steps = Steps{StepRejected, StepSkipped, StepSkipped, StepSkipped}
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

// sideEffects runs invalidation, publish and audit as local activities, in
// parallel, until each has succeeded.
//
// The first attempt runs in the commit's workflow task, so the change
// reaches caches and resolvers within milliseconds and a whole mutation is
// usually one workflow task (few history events, high throughput on any
// Temporal store). That task's completion also carries the update's answer:
// the caller's acknowledgement waits for the commit plus this first,
// time-boxed attempt (firstAttemptTimeout), never for a retry. Whatever
// failed is then retried with the durable policy, backing off with server
// timers, without a limit on attempts.
func (m *mutation) sideEffects(ctx workflow.Context, res routes.Result) {
	var a *activities.Activities
	info := workflow.GetInfo(ctx)
	ev := events.FromResult(m.in.EventID, m.in.Mutation.Action, res, m.in.Mutation.ChangedBy)
	ev.WorkflowID, ev.RunID = info.WorkflowExecution.ID, info.WorkflowExecution.RunID
	ev.Principal = m.in.Principal
	key := res.Route.Key()
	steps := []sideEffect{
		{func(c workflow.Context) workflow.Future {
			return workflow.ExecuteLocalActivity(c, a.Invalidate, key, res.Route.Revision)
		}, &m.status.Steps.Invalidated},
		{func(c workflow.Context) workflow.Future { return workflow.ExecuteLocalActivity(c, a.Publish, ev) }, &m.status.Steps.Published},
		{func(c workflow.Context) workflow.Future { return workflow.ExecuteLocalActivity(c, a.Audit, ev) }, &m.status.Steps.Audited},
	}
	runSideEffects(ctx, steps, firstAttemptTimeout)
}

// sideEffect is one step after the commit: how to run it as a local
// activity, and where to record that it is done.
type sideEffect struct {
	run   func(workflow.Context) workflow.Future
	state *string
}

// runSideEffects runs the steps in parallel: a first attempt bounded by
// first, then durable retries until each has succeeded.
func runSideEffects(ctx workflow.Context, steps []sideEffect, first time.Duration) {
	firstCtx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: first,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	durable := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    10 * time.Second,
		ScheduleToCloseTimeout: commitGiveUpAfter,
		RetryPolicy:            sideEffectRetry,
	})
	wg := workflow.NewWaitGroup(ctx)
	for _, s := range steps {
		wg.Add(1)
		workflow.Go(ctx, func(gctx workflow.Context) {
			defer wg.Done()
			if s.run(firstCtx).Get(gctx, nil) == nil {
				*s.state = StepDone
				return
			}
			for s.run(durable).Get(gctx, nil) != nil {
				// The retry window ran out: start another one.
				if workflow.Sleep(gctx, sideEffectRetry.MaximumInterval) != nil {
					return
				}
			}
			*s.state = StepDone
		})
	}
	wg.Wait(ctx)
}

// firstAttemptTimeout bounds how much a side effect may add to the
// caller's acknowledgement when its dependency is slow or down.
const firstAttemptTimeout = time.Second

// finish waits for update handlers still running (a late duplicate request)
// before completing, so none is left unanswered.
func (m *mutation) finish(ctx workflow.Context) (Status, error) {
	return m.status, handlersDone(ctx)
}

// handlersDone waits until no update handler is running.
func handlersDone(ctx workflow.Context) error {
	return workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
}
