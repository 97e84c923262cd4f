package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/trafficmanager/trafficmanager/activities"
	"github.com/trafficmanager/trafficmanager/routes"
)

// set applies weights as the split change "rollout:{key}:{what}": the
// child workflow id and the event id derive from it, so a re-run of the
// rollout (same id) re-attaches to the change and never applies it twice.
func (r *rollout) set(ctx workflow.Context, w routes.Weights, what string) error {
	m := routes.SplitMutation{Action: routes.ActionSplitUpdated, Key: r.in.Key, Weights: w, ChangedBy: r.changedBy()}
	_, err := SetSplit(ctx, m, "rollout:"+r.key+":"+what)
	return err
}

func (r *rollout) changedBy() string {
	if r.in.ChangedBy != "" {
		return r.in.ChangedBy
	}
	if r.in.RequestedBy != nil && r.in.RequestedBy.Name != "" {
		return r.in.RequestedBy.Name
	}
	if r.in.Principal != "" {
		return r.in.Principal
	}
	return "rollout"
}

// restore puts back the split the rollout started from, or deletes the
// split when there was none. A failure is recorded in the status; the
// rollout still ends aborted.
func (r *rollout) restore(ctx workflow.Context) {
	var err error
	if r.st.Starting != nil {
		err = r.set(ctx, r.st.Starting, "abort")
	} else {
		m := routes.SplitMutation{Action: routes.ActionSplitDeleted, Key: r.in.Key, ChangedBy: r.changedBy()}
		_, err = SetSplit(ctx, m, "rollout:"+r.key+":abort")
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.Type() == activities.ErrTypeNotFound {
			err = nil // no step was applied: nothing to delete
		}
	}
	if err != nil {
		r.st.Error, r.st.ErrorType = rejectionOf(err)
		r.st.Error = "restoring the starting split: " + r.st.Error
		return
	}
	if r.st.Starting != nil {
		r.st.Weight = r.st.Starting[r.in.To]
	} else {
		r.st.Weight = 0
	}
}

// waitPause waits pause on durable timers. While the rollout is paused
// the remaining time is held (not counted); promote and abort end the
// wait at once. With a check gate, the check activity runs beside each
// uninterrupted stretch of the wait; every failed call it reports counts,
// and MaxFailures of them abort the rollout (check_failed).
func (r *rollout) waitPause(ctx workflow.Context, pause time.Duration) {
	remaining := pause
	checked := false // the check ran to the end of this stretch
	for remaining > 0 && !r.stopping() {
		if r.paused {
			_ = workflow.Await(ctx, func() bool { return !r.paused || r.stopping() })
			checked = false
			continue
		}
		t0 := workflow.Now(ctx)
		var run *checkRun
		cctx, cancel := workflow.WithCancel(ctx)
		if c := r.in.Check; c != nil && !checked && remaining >= c.Interval {
			run = r.startCheck(cctx, c, remaining)
		}
		_, _ = workflow.AwaitWithTimeout(ctx, remaining, func() bool {
			return r.paused || r.stopping() || (run != nil && run.done)
		})
		cancel()
		remaining -= workflow.Now(ctx).Sub(t0)
		if run == nil || !run.done {
			continue // no check, or it was cancelled before answering
		}
		res := run.res
		if !res.Failed {
			checked = true
			continue
		}
		r.st.CheckFailures++
		if r.st.CheckFailures >= r.in.Check.MaxFailures && !r.stopping() {
			r.abort, r.reason = true, ReasonCheckFailed
			r.st.Error = "check failed: " + res.Detail
		}
	}
}

// checkRun is one check stretch: done once the activity answered.
type checkRun struct {
	done bool
	res  activities.RolloutCheckResult
}

// startCheck runs the check activity for one stretch.
func (r *rollout) startCheck(ctx workflow.Context, c *RolloutCheck, window time.Duration) *checkRun {
	var a *activities.Activities
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: window + c.Interval + time.Minute,
		HeartbeatTimeout:    c.Interval + 30*time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: 10 * time.Second},
	})
	run := &checkRun{}
	fut := workflow.ExecuteActivity(actx, a.RolloutCheck, activities.RolloutCheckInput{URL: c.URL, Interval: c.Interval, Window: window})
	workflow.Go(ctx, func(gctx workflow.Context) {
		if err := fut.Get(gctx, &run.res); err != nil {
			return // cancelled: the stretch ended first
		}
		run.done = true
	})
	return run
}

// upsertStatus sets TmStatus to the rollout's status.
func (r *rollout) upsertStatus(ctx workflow.Context) {
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrStatus.ValueSet(r.st.Status))
}
