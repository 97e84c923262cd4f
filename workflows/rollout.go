package workflows

import (
	"sort"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/trafficmanager/trafficmanager/activities"
	"github.com/trafficmanager/trafficmanager/routes"
)

// Rollout names: the workflow type, the lock workflow's, and the updates.
const (
	RolloutWorkflowType     = "Rollout"
	RolloutLockWorkflowType = "RolloutLock"
	// RolloutStartUpdate answers once the rollout holds its env's lock and
	// has planned its steps (the API's 201), or with its rejection
	// (ErrTypeRolloutConflict, activities.ErrTypeInvalid).
	RolloutStartUpdate = "rollout_start"
	PauseUpdate        = "pause"
	ResumeUpdate       = "resume"
	PromoteUpdate      = "promote"
	AbortUpdate        = "abort"
	// rolloutReleaseSignal ends the lock workflow.
	rolloutReleaseSignal = "release"
)

// Rollout states (status and TmStatus).
const (
	RolloutRunning   = "running"
	RolloutPaused    = "paused"
	RolloutCompleted = "completed"
	RolloutAborted   = "aborted"
	// RolloutRejected: the rollout never started (another one runs in the
	// env, or its input does not fit the env).
	RolloutRejected = "rejected"
)

// Abort reasons.
const (
	ReasonManual      = "manual"
	ReasonCheckFailed = "check_failed"
	// ReasonStepRejected: a step's split was rejected (a version was
	// deactivated or deleted meanwhile).
	ReasonStepRejected = "step_rejected"
)

// Error types of rollout updates.
const (
	ErrTypeRolloutConflict = "RolloutConflict"
	// ErrTypeRolloutState: the rollout is not in a state that allows the
	// action (the API's 409 rollout_state).
	ErrTypeRolloutState = "RolloutState"
)

// RolloutStep is one step of a rollout: give To Weight percent, then wait
// Pause.
type RolloutStep struct {
	Weight int           `json:"weight"`
	Pause  time.Duration `json:"pause"`
}

// RolloutCheck is the optional check gate: URL is called every Interval
// while a step's pause runs; the rollout aborts after MaxFailures failed
// calls, counted over the whole rollout (not consecutive ones).
type RolloutCheck struct {
	URL         string        `json:"url"`
	Interval    time.Duration `json:"interval"`
	MaxFailures int           `json:"max_failures"`
}

// RolloutInput is the input of Rollout. RolloutKey is the last segment of
// the workflow id (the Idempotency-Key or a fresh id): the split changes'
// ids derive from it, so it is in the input (a replay runs under another
// workflow id); empty means the workflow id's last segment.
type RolloutInput struct {
	Key         routes.SplitKey `json:"key"`
	RolloutKey  string          `json:"rollout_key,omitempty"`
	To          string          `json:"to"`
	Steps       []RolloutStep   `json:"steps"`
	Check       *RolloutCheck   `json:"check,omitempty"`
	RequestedBy *Actor          `json:"requested_by,omitempty"`
	// Approval holds the rollout before its first step until an approver
	// other than RequestedBy decides (the tenant's policy lists the env):
	// the same gate as a route or split mutation's. The split changes of
	// the approved rollout are not gated again.
	Approval    *Approval `json:"approval,omitempty"`
	Principal   string    `json:"principal,omitempty"`
	ChangedBy   string    `json:"changed_by,omitempty"`
	RequestHash string    `json:"request_hash,omitempty"`
}

// RolloutStepState is a step in the status: pending, running (its split
// is set, its pause runs), done, or skipped (promote or abort came first).
type RolloutStepState struct {
	Weight     int            `json:"weight"`
	Pause      string         `json:"pause"`
	State      string         `json:"state"`
	Weights    routes.Weights `json:"weights,omitempty"`
	StartedAt  *time.Time     `json:"started_at,omitempty"`
	FinishedAt *time.Time     `json:"finished_at,omitempty"`
}

// RolloutStatus is what the status query, the updates and the result of
// Rollout report. Step is the 1-based step in progress (0 before the
// first), Weight To's current weight.
type RolloutStatus struct {
	ID            string             `json:"id"`
	WorkflowID    string             `json:"workflow_id"`
	Key           routes.SplitKey    `json:"key"`
	To            string             `json:"to"`
	Status        string             `json:"status"`
	Step          int                `json:"step"`
	Weight        int                `json:"weight"`
	Steps         []RolloutStepState `json:"steps"`
	Reason        string             `json:"reason,omitempty"`
	Error         string             `json:"error,omitempty"`
	ErrorType     string             `json:"error_type,omitempty"`
	Starting      routes.Weights     `json:"starting_split,omitempty"`
	CheckFailures int                `json:"check_failures,omitempty"`
	RequestHash   string             `json:"request_hash,omitempty"`
	RequestedBy   *Actor             `json:"requested_by,omitempty"`
	// The approval's outcome (a rollout with Approval): who approved or
	// rejected it, their comment, and until when it awaits a decision.
	ApprovedBy *Actor     `json:"approved_by,omitempty"`
	RejectedBy *Actor     `json:"rejected_by,omitempty"`
	Comment    string     `json:"comment,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
}

// RolloutWorkflowID returns rollout/{tenant}/{service}/{env}/{key}.
func RolloutWorkflowID(k routes.SplitKey, key string) string {
	return "rollout/" + RolloutID(k, key)
}

// RolloutID is the rollout's id in the API: {tenant}/{service}/{env}/{key}.
func RolloutID(k routes.SplitKey, key string) string {
	return k.Tenant + "/" + k.Service + "/" + k.Env + "/" + key
}

// RolloutLockID is the id of the lock workflow of k's env: one runs while
// a rollout of the env runs.
func RolloutLockID(k routes.SplitKey) string {
	return "rollout-lock/" + k.Tenant + "/" + k.Service + "/" + k.Env
}

// RolloutSearchAttributes are the attributes the API starts a rollout
// with (the workflow upserts TmStatus as it moves on): TmStatus running,
// or awaiting_approval for a rollout with an Approval (so
// GET /api/v1/mutations?status=awaiting_approval lists it at once).
func RolloutSearchAttributes(k routes.SplitKey, awaitingApproval ...bool) temporal.SearchAttributes {
	state := RolloutRunning
	if len(awaitingApproval) > 0 && awaitingApproval[0] {
		state = StateAwaitingApproval
	}
	return temporal.NewSearchAttributes(
		AttrTenant.ValueSet(k.Tenant),
		AttrService.ValueSet(k.Service),
		AttrEnv.ValueSet(k.Env),
		AttrStatus.ValueSet(state),
	)
}

// StepWeights is the split of a step: to gets weight, the other versions
// of from share 100-weight in proportion to their weights in from, by
// the largest remainder method (floors first, then one point each to the
// largest fractional parts, ties to the version first in name order), so
// the weights are integers summing to 100 and the same input gives the
// same split. Versions that end at 0 are left out.
func StepWeights(from routes.Weights, to string, weight int) routes.Weights {
	out := routes.Weights{}
	if weight > 0 {
		out[to] = weight
	}
	rest := 100 - weight
	var others []string
	total := 0
	for _, v := range from.Versions() {
		if v != to && from[v] > 0 {
			others = append(others, v)
			total += from[v]
		}
	}
	if rest <= 0 || total == 0 {
		if weight < 100 && len(others) == 0 {
			out[to] = 100
		}
		return out
	}
	type share struct {
		v    string
		frac int // remainder of rest*w / total
	}
	shares := make([]share, 0, len(others))
	given := 0
	for _, v := range others {
		n := rest * from[v]
		out[v] = n / total
		given += n / total
		shares = append(shares, share{v, n % total})
	}
	sort.SliceStable(shares, func(i, j int) bool { return shares[i].frac > shares[j].frac })
	for i := 0; given < rest; i++ {
		out[shares[i%len(shares)].v]++
		given++
	}
	for v, w := range out {
		if w == 0 {
			delete(out, v)
		}
	}
	return out
}

// RolloutLock holds the env's rollout lock while it runs: its id is
// RolloutLockID, so a second rollout of the env cannot start it. It ends
// on the release signal; as a child with the terminate parent-close
// policy it also ends when its rollout ends any other way (terminated,
// timed out).
func RolloutLock(ctx workflow.Context, holder string) error {
	workflow.GetSignalChannel(ctx, rolloutReleaseSignal).Receive(ctx, nil)
	return nil
}

// Rollout moves an env's traffic to In.To step by step (docs/rollouts.md).
func Rollout(ctx workflow.Context, in RolloutInput) (RolloutStatus, error) {
	key := in.RolloutKey
	if key == "" {
		wfID := workflow.GetInfo(ctx).WorkflowExecution.ID
		key = wfID[strings.LastIndex(wfID, "/")+1:]
	}
	r := &rollout{in: in, key: key, st: RolloutStatus{
		ID: RolloutID(in.Key, key), WorkflowID: RolloutWorkflowID(in.Key, key), Key: in.Key, To: in.To,
		Status: RolloutRunning, RequestHash: in.RequestHash, RequestedBy: in.RequestedBy,
	}}
	for _, s := range in.Steps {
		r.st.Steps = append(r.st.Steps, RolloutStepState{Weight: s.Weight, Pause: s.Pause.String(), State: "pending"})
	}
	var nb *time.Time
	var steps Steps
	r.gate = &gate{approval: in.Approval, requestedBy: in.RequestedBy, view: gateView{
		state: &r.gateState, notBefore: &nb, approvedBy: &r.st.ApprovedBy, decidedBy: &r.st.RejectedBy,
		comment: &r.st.Comment, expiresAt: &r.st.ExpiresAt, steps: &steps,
	}}
	return r.run(ctx)
}

type rollout struct {
	in   RolloutInput
	key  string
	st   RolloutStatus
	from routes.Weights // the versions traffic moves from

	started  bool  // the start update may answer
	startErr error // its rejection
	paused   bool
	promote  bool
	abort    bool
	reason   string
	ended    bool

	// gate holds a rollout with an Approval before its first step;
	// gateState is the gate's state (awaiting_approval, rejected, expired,
	// cancelled, applying), reported as the status while gating is set.
	gate      *gate
	gateState string
	gating    bool
}

// status is the rollout's status as the query and the updates answer it.
func (r *rollout) status() RolloutStatus {
	st := r.st
	if r.gating {
		switch r.gateState {
		case StateAwaitingApproval, StateDenied, StateExpired, StateCancelled:
			st.Status = r.gateState
		default: // approved: the steps are about to run
			st.Status = RolloutRunning
		}
	}
	return st
}

func (r *rollout) stopping() bool { return r.promote || r.abort }

func (r *rollout) run(ctx workflow.Context) (RolloutStatus, error) {
	if err := r.handlers(ctx); err != nil {
		return r.st, err
	}
	lockFut, err := r.lock(ctx)
	if err == nil {
		err = r.plan(ctx)
	}
	if err != nil {
		r.startErr, r.st.Status = err, RolloutRejected
		r.st.Error, r.st.ErrorType = rejectionOf(err)
		r.started, r.ended = true, true
		r.upsertStatus(ctx)
		if lockFut != nil {
			r.release(ctx, lockFut)
		}
		return r.st, handlersDone(ctx)
	}
	if r.in.Approval != nil {
		// Only rollouts with an Approval take this branch: histories
		// recorded before it replay unchanged.
		if done, err := r.awaitApproval(ctx, lockFut); done || err != nil {
			return r.st, err
		}
	}
	r.started = true

	for i, step := range r.in.Steps {
		if err := workflow.Await(ctx, func() bool { return !r.paused || r.stopping() }); err != nil {
			return r.st, err
		}
		if r.stopping() {
			break
		}
		r.st.Step = i + 1
		now := workflow.Now(ctx)
		ss := &r.st.Steps[i]
		ss.State, ss.StartedAt = "running", &now
		w := StepWeights(r.from, r.in.To, step.Weight)
		ss.Weights = w
		if err := r.set(ctx, w, "step-"+strconv.Itoa(i+1)); err != nil {
			r.st.Error, r.st.ErrorType = rejectionOf(err)
			r.abort, r.reason = true, ReasonStepRejected
			break
		}
		r.st.Weight = step.Weight
		r.waitPause(ctx, step.Pause)
		done := workflow.Now(ctx)
		ss.State, ss.FinishedAt = "done", &done
	}

	switch {
	case r.abort:
		r.restore(ctx)
		r.st.Status, r.st.Reason = RolloutAborted, r.reason
	case r.promote && r.st.Weight < 100:
		if err := r.set(ctx, routes.Weights{r.in.To: 100}, "promote"); err != nil {
			r.st.Error, r.st.ErrorType = rejectionOf(err)
			r.restore(ctx)
			r.st.Status, r.st.Reason = RolloutAborted, ReasonStepRejected
		} else {
			r.st.Weight, r.st.Status = 100, RolloutCompleted
		}
	default:
		r.st.Status = RolloutCompleted
	}
	end := workflow.Now(ctx)
	for i := range r.st.Steps {
		switch ss := &r.st.Steps[i]; ss.State {
		case "pending":
			ss.State = "skipped"
		case "running":
			ss.State, ss.FinishedAt = "done", &end
		}
	}
	r.paused, r.ended = false, true
	r.upsertStatus(ctx)
	r.release(ctx, lockFut)
	return r.st, handlersDone(ctx)
}

// awaitApproval runs the gate of a rollout with an Approval, after it
// took the env's lock and planned its steps: the start update answers
// awaiting_approval, then the rollout waits for ApproveUpdate,
// RejectUpdate, CancelUpdate or the Approval's timeout. A rollout that
// ends in the gate (done) never touched the split; it releases the lock.
// An approved one plans again: the split may have changed meanwhile.
func (r *rollout) awaitApproval(ctx workflow.Context, lockFut workflow.ChildWorkflowFuture) (done bool, err error) {
	r.gating, r.gateState, r.started = true, StateAwaitingApproval, true
	ended, err := r.gate.wait(ctx)
	if err != nil {
		return true, err
	}
	r.st = r.status()
	r.gating = false
	switch {
	case r.gate.denied:
		r.st.Error, r.st.ErrorType = "the rollout was rejected by an approver", ErrTypeDenied
	case r.gate.expired:
		r.st.Error, r.st.ErrorType = "the rollout expired: no approval decision in time", ErrTypeExpired
	case r.gate.cancelled:
		r.st.Error, r.st.ErrorType = "the rollout was cancelled before its first step", ErrTypeCancelled
	}
	if !ended {
		r.st.Starting, r.from = nil, nil
		err = r.plan(ctx)
	}
	if ended || err != nil {
		if err != nil {
			// Nothing was applied: the rollout ends aborted without a
			// restore.
			r.st.Error, r.st.ErrorType = rejectionOf(err)
			r.st.Status, r.st.Reason = RolloutAborted, ReasonStepRejected
			r.upsertStatus(ctx)
		}
		for i := range r.st.Steps {
			r.st.Steps[i].State = "skipped"
		}
		r.ended = true
		r.release(ctx, lockFut)
		return true, handlersDone(ctx)
	}
	return false, nil
}

// handlers registers the status query and the updates. ApproveUpdate,
// RejectUpdate and CancelUpdate (the gate's) are refused unless the
// rollout awaits approval.
func (r *rollout) handlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, StatusQuery, func() (RolloutStatus, error) { return r.status(), nil }); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandler(ctx, RolloutStartUpdate, func(ctx workflow.Context) (RolloutStatus, error) {
		if err := workflow.Await(ctx, func() bool { return r.started }); err != nil {
			return r.status(), err
		}
		return r.status(), r.startErr
	}); err != nil {
		return err
	}
	if err := registerGate(ctx, r.gate, r.status); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, CancelUpdate, func(workflow.Context) (RolloutStatus, error) {
		r.gate.cancel()
		return r.status(), nil
	}, workflow.UpdateHandlerOptions{Validator: func() error {
		if r.gating && r.gate.pending() {
			return nil
		}
		return errNotPending("the rollout is not awaiting approval: abort a running rollout instead")
	}}); err != nil {
		return err
	}
	active := func() error {
		if r.gating {
			return temporal.NewNonRetryableApplicationError("the rollout is "+r.status().Status+
				": approve, reject or cancel it through /api/v1/mutations/"+r.st.WorkflowID, ErrTypeRolloutState, nil)
		}
		if !r.started || r.ended || r.st.Status == RolloutRejected {
			return temporal.NewNonRetryableApplicationError("the rollout is "+r.st.Status, ErrTypeRolloutState, nil)
		}
		if r.stopping() {
			return temporal.NewNonRetryableApplicationError("the rollout is ending", ErrTypeRolloutState, nil)
		}
		return nil
	}
	set := func(name string, valid func() error, act func(ctx workflow.Context) error) error {
		return workflow.SetUpdateHandlerWithOptions(ctx, name, func(ctx workflow.Context) (RolloutStatus, error) {
			err := act(ctx)
			return r.st, err
		}, workflow.UpdateHandlerOptions{Validator: valid})
	}
	if err := set(PauseUpdate, func() error {
		if err := active(); err != nil {
			return err
		}
		if r.paused {
			return temporal.NewNonRetryableApplicationError("the rollout is paused already", ErrTypeRolloutState, nil)
		}
		return nil
	}, func(ctx workflow.Context) error {
		r.paused, r.st.Status = true, RolloutPaused
		r.upsertStatus(ctx)
		return nil
	}); err != nil {
		return err
	}
	if err := set(ResumeUpdate, func() error {
		if err := active(); err != nil {
			return err
		}
		if !r.paused {
			return temporal.NewNonRetryableApplicationError("the rollout is not paused", ErrTypeRolloutState, nil)
		}
		return nil
	}, func(ctx workflow.Context) error {
		r.paused, r.st.Status = false, RolloutRunning
		r.upsertStatus(ctx)
		return nil
	}); err != nil {
		return err
	}
	untilEnded := func(ctx workflow.Context) error { return workflow.Await(ctx, func() bool { return r.ended }) }
	if err := set(PromoteUpdate, active, func(ctx workflow.Context) error {
		r.promote = true
		return untilEnded(ctx)
	}); err != nil {
		return err
	}
	return set(AbortUpdate, active, func(ctx workflow.Context) error {
		r.abort, r.reason = true, ReasonManual
		return untilEnded(ctx)
	})
}

// lock starts the env's lock workflow; another running rollout of the env
// makes it fail with ErrTypeRolloutConflict.
func (r *rollout) lock(ctx workflow.Context) (workflow.ChildWorkflowFuture, error) {
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            RolloutLockID(r.in.Key),
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_TERMINATE,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	})
	fut := workflow.ExecuteChildWorkflow(cctx, RolloutLockWorkflowType, r.st.WorkflowID)
	if err := fut.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
			return nil, temporal.NewNonRetryableApplicationError("another rollout of "+r.in.Key.String()+" is running", ErrTypeRolloutConflict, nil)
		}
		return nil, err
	}
	return fut, nil
}

// release ends the lock workflow and waits for it.
func (r *rollout) release(ctx workflow.Context, fut workflow.ChildWorkflowFuture) {
	if fut == nil {
		return
	}
	_ = fut.SignalChildWorkflow(ctx, rolloutReleaseSignal, nil).Get(ctx, nil)
	_ = fut.Get(ctx, nil)
}

// plan records the starting split. Without one, the env's only active
// version other than To is where traffic comes from.
func (r *rollout) plan(ctx workflow.Context) error {
	var a *activities.Activities
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: 10 * time.Second},
	})
	var cur activities.CurrentSplit
	if err := workflow.ExecuteActivity(actx, a.ReadSplit, r.in.Key).Get(ctx, &cur); err != nil {
		return err
	}
	var active []string
	if err := workflow.ExecuteActivity(actx, a.ActiveVersions, r.in.Key).Get(ctx, &active); err != nil {
		return err
	}
	invalid := func(msg string) error {
		return temporal.NewNonRetryableApplicationError(msg, activities.ErrTypeInvalid, nil)
	}
	isActive := map[string]bool{}
	for _, v := range active {
		isActive[v] = true
	}
	if !isActive[r.in.To] {
		return invalid("to: version " + r.in.To + " is not an active route of " + r.in.Key.String())
	}
	from := routes.Weights{}
	if cur.Found {
		r.st.Starting = cur.Weights
		for v, w := range cur.Weights {
			if v != r.in.To && w > 0 {
				from[v] = w
			}
		}
		if len(from) == 0 {
			return invalid("the split already gives all traffic to " + r.in.To)
		}
		if len(from)+1 > routes.MaxSplitVersions {
			return invalid("the rollout's split would name more than " + strconv.Itoa(routes.MaxSplitVersions) + " versions")
		}
		r.from = from
		return nil
	}
	var others []string
	for _, v := range active {
		if v != r.in.To {
			others = append(others, v)
		}
	}
	if len(others) != 1 {
		return invalid("the env has no split and " + strconv.Itoa(len(others)) + " active versions besides " + r.in.To + "; set a split first")
	}
	// Starting stays nil (no split to restore: abort deletes it); the steps
	// move traffic from the one active version.
	r.from = routes.Weights{others[0]: 100}
	return nil
}
