package workflows_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/worker"
	"github.com/trafficmanager/trafficmanager/workflows"
)

func TestStepWeightsShareTheRestInProportionAndSumTo100(t *testing.T) {
	cases := []struct {
		name   string
		from   routes.Weights
		weight int
		want   routes.Weights
	}{
		{"one version gives up what the target takes", routes.Weights{"v1": 100}, 10, routes.Weights{"v1": 90, "v2": 10}},
		{"two versions keep their proportion", routes.Weights{"v1": 60, "v3": 40}, 50, routes.Weights{"v1": 30, "v2": 50, "v3": 20}},
		{"a tie in remainders goes to the first version by name", routes.Weights{"v1": 50, "v3": 50}, 33, routes.Weights{"v1": 34, "v2": 33, "v3": 33}},
		{"the largest remainders get the leftover points", routes.Weights{"v1": 20, "v3": 30, "v4": 50}, 7, routes.Weights{"v1": 19, "v2": 7, "v3": 28, "v4": 46}},
		{"the target's own starting weight is replaced", routes.Weights{"v1": 80, "v2": 20}, 50, routes.Weights{"v1": 50, "v2": 50}},
		{"100 leaves only the target", routes.Weights{"v1": 70, "v3": 30}, 100, routes.Weights{"v2": 100}},
		{"versions rounded to 0 are left out", routes.Weights{"v1": 99, "v3": 1}, 90, routes.Weights{"v1": 10, "v2": 90}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := workflows.StepWeights(c.from, "v2", c.weight)
			require.Equal(t, c.want, got)
			sum := 0
			for _, w := range got {
				sum += w
			}
			require.Equal(t, 100, sum)
		})
	}
}

type rolloutRun struct {
	env *testsuite.TestWorkflowEnvironment
	st  workflows.RolloutStatus
}

func (f *splitFixture) rollout(t *testing.T, wfID string, in workflows.RolloutInput, during func(env *testsuite.TestWorkflowEnvironment)) workflows.RolloutStatus {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(time.Minute)
	worker.Register(env, f.acts)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: wfID})
	if during != nil {
		during(env)
	}
	env.ExecuteWorkflow(workflows.RolloutWorkflowType, in)
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var st workflows.RolloutStatus
	require.NoError(t, env.GetWorkflowResult(&st))
	return st
}

func (f *splitFixture) input(steps ...workflows.RolloutStep) workflows.RolloutInput {
	return workflows.RolloutInput{Key: f.key, To: "v2", Steps: steps}
}

func (f *splitFixture) current(t *testing.T) (routes.Split, bool) {
	sp, err := f.store.GetSplit(context.Background(), f.key)
	if err != nil {
		require.ErrorIs(t, err, routes.ErrSplitNotFound)
		return sp, false
	}
	return sp, true
}

func (f *splitFixture) revisions(t *testing.T) []routes.SplitRevision {
	revs, err := f.store.SplitHistory(context.Background(), f.key, 100)
	require.NoError(t, err)
	return revs
}

func rolloutUpdate(t *testing.T, env *testsuite.TestWorkflowEnvironment, name string, at time.Duration, rejected *error) {
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(name, name+"-"+at.String(), &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(err error) {
				if rejected != nil {
					*rejected = err
					return
				}
				t.Errorf("%s rejected: %v", name, err)
			},
			OnComplete: func(any, error) {},
		})
	}, at)
}

func steps(ws ...int) []workflows.RolloutStep {
	var out []workflows.RolloutStep
	for _, w := range ws {
		out = append(out, workflows.RolloutStep{Weight: w, Pause: 10 * time.Minute})
	}
	out[len(out)-1].Pause = 0
	return out
}

func TestARolloutStepsThroughItsPausesTo100(t *testing.T) {
	f := newSplitFixture(t)
	wfID := workflows.RolloutWorkflowID(f.key, "r1")
	var seen []workflows.RolloutStatus
	st := f.rollout(t, wfID, f.input(steps(10, 50, 100)...), func(env *testsuite.TestWorkflowEnvironment) {
		for _, at := range []time.Duration{5 * time.Minute, 15 * time.Minute} {
			env.RegisterDelayedCallback(func() {
				v, err := env.QueryWorkflow(workflows.StatusQuery)
				require.NoError(t, err)
				var s workflows.RolloutStatus
				require.NoError(t, v.Get(&s))
				seen = append(seen, s)
			}, at)
		}
	})
	require.Equal(t, workflows.RolloutCompleted, st.Status)
	require.Equal(t, 100, st.Weight)
	require.Equal(t, 3, st.Step)
	require.Equal(t, "r1", st.ID[len(st.ID)-2:])
	for _, s := range st.Steps {
		require.Equal(t, "done", s.State)
		require.NotNil(t, s.StartedAt)
		require.NotNil(t, s.FinishedAt)
	}
	require.Equal(t, 10*time.Minute, st.Steps[0].FinishedAt.Sub(*st.Steps[0].StartedAt))
	require.Len(t, seen, 2)
	require.Equal(t, 10, seen[0].Weight)
	require.Equal(t, 50, seen[1].Weight)
	require.Equal(t, routes.Weights{"v1": 50, "v2": 50}, seen[1].Steps[1].Weights)
	sp, ok := f.current(t)
	require.True(t, ok)
	require.Equal(t, routes.Weights{"v2": 100}, sp.Weights)
	require.Len(t, f.revisions(t), 3)

	// Re-running the finished rollout (same id, same input) changes
	// nothing: v2 has all the traffic, so it is rejected at its start.
	again := f.rollout(t, wfID, f.input(steps(10, 50, 100)...), nil)
	require.Equal(t, workflows.RolloutRejected, again.Status)
	require.Len(t, f.revisions(t), 3)
}

func TestAnAbortMidwayRestoresTheStartingSplit(t *testing.T) {
	f := newSplitFixture(t)
	_, err := f.store.ApplySplit(context.Background(), routes.SplitMutation{Action: routes.ActionSplitUpdated, Key: f.key, Weights: routes.Weights{"v1": 95, "v2": 5}})
	require.NoError(t, err)
	abort := func(env *testsuite.TestWorkflowEnvironment) {
		rolloutUpdate(t, env, workflows.AbortUpdate, 15*time.Minute, nil)
	}
	wfID := workflows.RolloutWorkflowID(f.key, "r-abort")
	st := f.rollout(t, wfID, f.input(steps(20, 50, 100)...), abort)
	require.Equal(t, workflows.RolloutAborted, st.Status)
	require.Equal(t, workflows.ReasonManual, st.Reason)
	require.Equal(t, 5, st.Weight)
	require.Equal(t, []string{"done", "done", "skipped"}, stepStates(st))
	sp, _ := f.current(t)
	require.Equal(t, routes.Weights{"v1": 95, "v2": 5}, sp.Weights)
	revs := f.revisions(t)
	require.Len(t, revs, 4) // the start, two steps, the restore

	// A re-run with the same id and input plans the same steps and
	// re-attaches to the changes the first run made (the split ledger
	// answers them): no step is applied twice.
	again := f.rollout(t, wfID, f.input(steps(20, 50, 100)...), abort)
	require.Equal(t, workflows.RolloutAborted, again.Status)
	require.Equal(t, revs, f.revisions(t))
}

func TestAnAbortWithoutAStartingSplitDeletesTheSplit(t *testing.T) {
	f := newSplitFixture(t)
	st := f.rollout(t, workflows.RolloutWorkflowID(f.key, "r-abort-del"), f.input(steps(20, 100)...), func(env *testsuite.TestWorkflowEnvironment) {
		rolloutUpdate(t, env, workflows.AbortUpdate, 5*time.Minute, nil)
	})
	require.Equal(t, workflows.RolloutAborted, st.Status)
	_, ok := f.current(t)
	require.False(t, ok)
}

func TestAFailingCheckAbortsAfterMaxFailures(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	f := newSplitFixture(t)
	in := f.input(steps(10, 100)...)
	in.Check = &workflows.RolloutCheck{URL: srv.URL, Interval: 20 * time.Millisecond, MaxFailures: 3}
	st := f.rollout(t, workflows.RolloutWorkflowID(f.key, "r-check"), in, nil)
	require.Equal(t, workflows.RolloutAborted, st.Status)
	require.Equal(t, workflows.ReasonCheckFailed, st.Reason)
	require.Equal(t, 3, st.CheckFailures)
	require.EqualValues(t, 3, calls.Load())
	_, ok := f.current(t)
	require.False(t, ok, "the abort deletes the split the rollout created")
}

func TestAPausedRolloutHoldsItsRemainingPauseUntilResumed(t *testing.T) {
	f := newSplitFixture(t)
	var atPause workflows.RolloutStatus
	var rejected error
	st := f.rollout(t, workflows.RolloutWorkflowID(f.key, "r-pause"), f.input(steps(10, 100)...), func(env *testsuite.TestWorkflowEnvironment) {
		rolloutUpdate(t, env, workflows.PauseUpdate, 4*time.Minute, nil)
		rolloutUpdate(t, env, workflows.ResumeUpdate, 2*time.Minute, &rejected) // not paused yet: rejected
		env.RegisterDelayedCallback(func() {
			v, err := env.QueryWorkflow(workflows.StatusQuery)
			require.NoError(t, err)
			require.NoError(t, v.Get(&atPause))
		}, 5*time.Hour)
		rolloutUpdate(t, env, workflows.ResumeUpdate, 10*time.Hour, nil)
	})
	require.Error(t, rejected)
	require.Equal(t, workflows.RolloutPaused, atPause.Status)
	require.Equal(t, 10, atPause.Weight)
	require.Equal(t, workflows.RolloutCompleted, st.Status)
	// 4 minutes before the pause, 6 after the resume.
	require.Equal(t, 10*time.Hour+6*time.Minute, st.Steps[0].FinishedAt.Sub(*st.Steps[0].StartedAt))
}

func TestPromoteJumpsTo100(t *testing.T) {
	f := newSplitFixture(t)
	st := f.rollout(t, workflows.RolloutWorkflowID(f.key, "r-promote"), f.input(steps(10, 50, 100)...), func(env *testsuite.TestWorkflowEnvironment) {
		rolloutUpdate(t, env, workflows.PromoteUpdate, 5*time.Minute, nil)
	})
	require.Equal(t, workflows.RolloutCompleted, st.Status)
	require.Equal(t, 100, st.Weight)
	require.Equal(t, []string{"done", "skipped", "skipped"}, stepStates(st))
	sp, _ := f.current(t)
	require.Equal(t, routes.Weights{"v2": 100}, sp.Weights)
	require.Len(t, f.revisions(t), 2)
}

func TestARolloutToAnInactiveVersionIsRejected(t *testing.T) {
	f := newSplitFixture(t)
	in := f.input(steps(10, 100)...)
	in.To = "v9"
	st := f.rollout(t, workflows.RolloutWorkflowID(f.key, "r-bad"), in, nil)
	require.Equal(t, workflows.RolloutRejected, st.Status)
	require.Contains(t, st.Error, "not an active route")
}

func stepStates(st workflows.RolloutStatus) []string {
	var out []string
	for _, s := range st.Steps {
		out = append(out, s.State)
	}
	return out
}

// decideAt sends the gate update name (approve, reject, cancel) at, with
// d as its argument (nil: none); rejected receives a refusal.
func decideAt(t *testing.T, env *testsuite.TestWorkflowEnvironment, name string, at time.Duration, d *workflows.Decision, rejected *error) {
	env.RegisterDelayedCallback(func() {
		cb := &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(err error) {
				if rejected != nil {
					*rejected = err
					return
				}
				t.Errorf("%s rejected: %v", name, err)
			},
			OnComplete: func(any, error) {},
		}
		if d == nil {
			env.UpdateWorkflow(name, name+"-"+at.String(), cb)
			return
		}
		env.UpdateWorkflow(name, name+"-"+at.String(), cb, *d)
	}, at)
}

func queryAt(t *testing.T, env *testsuite.TestWorkflowEnvironment, at time.Duration, into *workflows.RolloutStatus) {
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(workflows.StatusQuery)
		require.NoError(t, err)
		require.NoError(t, v.Get(into))
	}, at)
}

var (
	writer   = workflows.Actor{ID: "tok-writer", Name: "ci"}
	approver = workflows.Actor{ID: "tok-approver", Name: "alice"}
)

func (f *splitFixture) gatedInput(timeout time.Duration, steps ...workflows.RolloutStep) workflows.RolloutInput {
	in := f.input(steps...)
	w := writer
	in.RequestedBy, in.Approval = &w, &workflows.Approval{Timeout: timeout}
	return in
}

// A rollout whose env needs approval waits before its first step: the
// requester cannot approve it, pause is refused while it waits, and once
// another principal approves it runs its steps as any rollout.
func TestARolloutAwaitingApprovalRunsItsStepsOnceApproved(t *testing.T) {
	f := newSplitFixture(t)
	var waiting, approved workflows.RolloutStatus
	var self, pause error
	st := f.rollout(t, workflows.RolloutWorkflowID(f.key, "r-approved"), f.gatedInput(time.Hour, steps(10, 100)...), func(env *testsuite.TestWorkflowEnvironment) {
		queryAt(t, env, time.Minute, &waiting)
		decideAt(t, env, workflows.ApproveUpdate, 2*time.Minute, &workflows.Decision{By: writer}, &self)
		rolloutUpdate(t, env, workflows.PauseUpdate, 3*time.Minute, &pause)
		decideAt(t, env, workflows.ApproveUpdate, 20*time.Minute, &workflows.Decision{By: approver, Comment: "go"}, nil)
		queryAt(t, env, 25*time.Minute, &approved)
	})
	require.Equal(t, workflows.StateAwaitingApproval, waiting.Status)
	require.Equal(t, 0, waiting.Step)
	require.NotNil(t, waiting.ExpiresAt)
	require.Equal(t, &writer, waiting.RequestedBy)
	require.ErrorContains(t, self, "cannot approve")
	require.ErrorContains(t, pause, "awaiting_approval")

	require.Equal(t, workflows.RolloutRunning, approved.Status)
	require.Equal(t, 10, approved.Weight)
	require.Equal(t, &approver, approved.ApprovedBy)
	require.Nil(t, approved.ExpiresAt)

	require.Equal(t, workflows.RolloutCompleted, st.Status)
	require.Equal(t, &approver, st.ApprovedBy)
	require.Equal(t, "go", st.Comment)
	require.Equal(t, 100, st.Weight)
	// The first step started once approved, not before.
	require.Equal(t, 20*time.Minute, st.Steps[0].StartedAt.Sub(waiting.ExpiresAt.Add(-time.Hour)))
	sp, ok := f.current(t)
	require.True(t, ok)
	require.Equal(t, routes.Weights{"v2": 100}, sp.Weights)
	require.Len(t, f.revisions(t), 2)
}

// A rejected, an expired and a cancelled rollout end before their first
// step: the split is untouched, the steps skipped, and the env's lock
// released (the rollout's workflow waits for its lock workflow to end).
func TestARolloutRejectedExpiredOrCancelledLeavesTheSplitUntouched(t *testing.T) {
	cases := []struct {
		name, state, errType string
		during               func(t *testing.T, env *testsuite.TestWorkflowEnvironment)
	}{
		{"rejected", workflows.StateDenied, workflows.ErrTypeDenied, func(t *testing.T, env *testsuite.TestWorkflowEnvironment) {
			decideAt(t, env, workflows.RejectUpdate, 5*time.Minute, &workflows.Decision{By: approver, Comment: "freeze"}, nil)
		}},
		{"expired", workflows.StateExpired, workflows.ErrTypeExpired, nil},
		{"cancelled", workflows.StateCancelled, workflows.ErrTypeCancelled, func(t *testing.T, env *testsuite.TestWorkflowEnvironment) {
			decideAt(t, env, workflows.CancelUpdate, 5*time.Minute, nil, nil)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newSplitFixture(t)
			_, err := f.store.ApplySplit(context.Background(), routes.SplitMutation{Action: routes.ActionSplitUpdated, Key: f.key, Weights: routes.Weights{"v1": 95, "v2": 5}})
			require.NoError(t, err)
			before := f.revisions(t)
			var late error
			st := f.rollout(t, workflows.RolloutWorkflowID(f.key, "r-"+c.name), f.gatedInput(30*time.Minute, steps(10, 100)...), func(env *testsuite.TestWorkflowEnvironment) {
				if c.during != nil {
					c.during(t, env)
				}
				// Once ended, an approval is refused.
				decideAt(t, env, workflows.ApproveUpdate, 2*time.Hour, &workflows.Decision{By: approver}, &late)
			})
			require.Equal(t, c.state, st.Status)
			require.Equal(t, c.errType, st.ErrorType)
			require.Equal(t, 0, st.Step)
			require.Equal(t, []string{"skipped", "skipped"}, stepStates(st))
			if c.name == "rejected" {
				require.Equal(t, &approver, st.RejectedBy)
				require.Equal(t, "freeze", st.Comment)
			}
			sp, _ := f.current(t)
			require.Equal(t, routes.Weights{"v1": 95, "v2": 5}, sp.Weights)
			require.Equal(t, before, f.revisions(t))
		})
	}
}

// A rollout without an Approval refuses the gate's updates.
func TestARolloutWithoutApprovalRefusesApproveAndCancel(t *testing.T) {
	f := newSplitFixture(t)
	var approve, cancel error
	st := f.rollout(t, workflows.RolloutWorkflowID(f.key, "r-ungated"), f.input(steps(10, 100)...), func(env *testsuite.TestWorkflowEnvironment) {
		decideAt(t, env, workflows.ApproveUpdate, time.Minute, &workflows.Decision{By: approver}, &approve)
		decideAt(t, env, workflows.CancelUpdate, time.Minute, nil, &cancel)
	})
	require.Error(t, approve)
	require.Error(t, cancel)
	require.Equal(t, workflows.RolloutCompleted, st.Status)
}
