package workflows_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/activities"
	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/worker"
	"github.com/trafficmanager/trafficmanager/workflows"
)

type splitPublisher struct {
	*recordingPublisher
	mu     sync.Mutex
	splits []events.SplitEvent
}

func (p *splitPublisher) PublishSplit(_ context.Context, e events.SplitEvent) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.splits = append(p.splits, e)
	return nil
}

type splitCache struct {
	*recordingCache
	mu   sync.Mutex
	keys []string
}

func (c *splitCache) InvalidateSplit(_ context.Context, k routes.SplitKey, _ int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keys = append(c.keys, k.String())
	return nil
}

type splitFixture struct {
	store *routes.Store
	pub   *splitPublisher
	cache *splitCache
	aud   *recordingAudit
	acts  *activities.Activities
	key   routes.SplitKey
}

func newSplitFixture(t *testing.T) *splitFixture {
	f := &splitFixture{
		store: routes.NewStore(testenv.Postgres(t)),
		pub:   &splitPublisher{recordingPublisher: &recordingPublisher{}},
		cache: &splitCache{recordingCache: &recordingCache{}},
		aud:   &recordingAudit{},
	}
	f.acts = &activities.Activities{Routes: f.store, Cache: f.cache, Events: f.pub, AuditLog: f.aud, Log: zaptest.NewLogger(t)}
	f.key = routes.SplitKey{Tenant: testenv.Name(t, "team"), Service: "checkout", Env: "prod"}
	for _, v := range []string{"v1", "v2"} {
		_, err := f.store.Apply(context.Background(), routes.Mutation{Action: routes.ActionCreated, Key: f.key.Route(v), URL: "https://" + v + ".example", Active: true})
		require.NoError(t, err)
	}
	return f
}

func (f *splitFixture) run(t *testing.T, in workflows.SplitInput, during func(env *testsuite.TestWorkflowEnvironment)) workflows.SplitStatus {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	worker.Register(env, f.acts)
	if during != nil {
		during(env)
	}
	env.ExecuteWorkflow(workflows.SplitWorkflowType, in)
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var st workflows.SplitStatus
	require.NoError(t, env.GetWorkflowResult(&st))
	return st
}

func TestASplitMutationCommitsOnceThenInvalidatesPublishesAndAudits(t *testing.T) {
	f := newSplitFixture(t)
	m := routes.SplitMutation{Action: routes.ActionSplitUpdated, Key: f.key, Weights: routes.Weights{"v1": 90, "v2": 10}, ChangedBy: "alice"}
	in := workflows.SplitInput{Mutation: m, EventID: "split-ev-1"}
	st := f.run(t, in, nil)
	require.Equal(t, workflows.Steps{workflows.StepDone, workflows.StepDone, workflows.StepDone, workflows.StepDone}, st.Steps)
	require.EqualValues(t, 1, st.Result.Split.Revision)
	require.Len(t, f.pub.splits, 1)
	ev := f.pub.splits[0]
	require.Equal(t, events.TypeSplitChanged, ev.EventType)
	require.Equal(t, routes.ActionSplitUpdated, ev.Action)
	require.Equal(t, "split-ev-1", ev.EventID)
	require.Equal(t, routes.Weights{"v1": 90, "v2": 10}, ev.Weights)
	require.Equal(t, []string{f.key.String()}, f.cache.keys)
	doc := f.aud.docs["split-ev-1"]
	require.Equal(t, "split_updated", doc.Action)
	require.Equal(t, "split_changed", doc.EventType)
	require.EqualValues(t, 1, doc.Metadata.Revision)

	// Newer change, then a re-run of the first one: it reports revision 1
	// and changes nothing.
	_, err := f.store.ApplySplit(context.Background(), routes.SplitMutation{Action: routes.ActionSplitUpdated, Key: f.key, Weights: routes.Weights{"v1": 50, "v2": 50}})
	require.NoError(t, err)
	again := f.run(t, in, nil)
	require.EqualValues(t, 1, again.Result.Split.Revision)
	cur, err := f.store.GetSplit(context.Background(), f.key)
	require.NoError(t, err)
	require.EqualValues(t, 2, cur.Revision)
	require.Equal(t, routes.Weights{"v1": 50, "v2": 50}, cur.Weights)
}

func TestARejectedSplitMutationHasNoSideEffects(t *testing.T) {
	f := newSplitFixture(t)
	m := routes.SplitMutation{Action: routes.ActionSplitUpdated, Key: f.key, Weights: routes.Weights{"v1": 90, "v9": 10}}
	st := f.run(t, workflows.SplitInput{Mutation: m, EventID: "split-bad"}, nil)
	require.Equal(t, workflows.RejectedSteps, st.Steps)
	require.Equal(t, activities.ErrTypeInvalid, st.ErrorType)
	require.Empty(t, f.pub.splits)
	del := routes.SplitMutation{Action: routes.ActionSplitDeleted, Key: f.key}
	st = f.run(t, workflows.SplitInput{Mutation: del, EventID: "split-del-missing"}, nil)
	require.Equal(t, activities.ErrTypeNotFound, st.ErrorType)
}

func TestAScheduledSplitMutationCanBeCancelled(t *testing.T) {
	f := newSplitFixture(t)
	m := routes.SplitMutation{Action: routes.ActionSplitUpdated, Key: f.key, Weights: routes.Weights{"v1": 90, "v2": 10}}
	at := time.Now().Add(time.Hour)
	st := f.run(t, workflows.SplitInput{Mutation: m, EventID: "split-sched", NotBefore: &at}, func(env *testsuite.TestWorkflowEnvironment) {
		env.RegisterDelayedCallback(func() {
			env.UpdateWorkflow(workflows.CancelUpdate, "cancel", &testsuite.TestUpdateCallback{
				OnAccept: func() {}, OnReject: func(err error) { t.Errorf("cancel rejected: %v", err) }, OnComplete: func(any, error) {},
			})
		}, time.Minute)
	})
	require.Equal(t, workflows.StateCancelled, st.State)
	_, err := f.store.GetSplit(context.Background(), f.key)
	require.ErrorIs(t, err, routes.ErrSplitNotFound)
}

// SetSplit is what a rollout calls: a child SplitMutation, exactly once.
func TestSetSplitRunsTheMutationAsAChildWorkflow(t *testing.T) {
	f := newSplitFixture(t)
	parent := func(ctx workflow.Context, w routes.Weights) (int64, error) {
		res, err := workflows.SetSplit(ctx, routes.SplitMutation{Action: routes.ActionSplitUpdated, Key: f.key, Weights: w}, "rollout-1-step-0")
		return res.Split.Revision, err
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	worker.Register(env, f.acts)
	env.RegisterWorkflow(parent)
	env.ExecuteWorkflow(parent, routes.Weights{"v1": 80, "v2": 20})
	require.NoError(t, env.GetWorkflowError())
	var rev int64
	require.NoError(t, env.GetWorkflowResult(&rev))
	require.EqualValues(t, 1, rev)
	cur, err := f.store.GetSplit(context.Background(), f.key)
	require.NoError(t, err)
	require.Equal(t, routes.Weights{"v1": 80, "v2": 20}, cur.Weights)
}

func TestReadSplitReportsTheCurrentSplit(t *testing.T) {
	f := newSplitFixture(t)
	ctx := context.Background()
	cur, err := f.acts.ReadSplit(ctx, f.key)
	require.NoError(t, err)
	require.Equal(t, activities.CurrentSplit{}, cur)
	_, err = f.store.ApplySplit(ctx, routes.SplitMutation{Action: routes.ActionSplitUpdated, Key: f.key, Weights: routes.Weights{"v1": 70, "v2": 30}})
	require.NoError(t, err)
	cur, err = f.acts.ReadSplit(ctx, f.key)
	require.NoError(t, err)
	require.Equal(t, activities.CurrentSplit{Found: true, Weights: routes.Weights{"v1": 70, "v2": 30}, Revision: 1}, cur)
}
