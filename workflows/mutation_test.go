package workflows_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/activities"
	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/worker"
	"github.com/trafficmanager/trafficmanager/workflows"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// recordingPublisher and recordingAudit sit at the far edge (Kafka and
// MongoDB are exercised for real in the end-to-end tests); they record what
// the workflow sends and can fail a number of times first.
type recordingPublisher struct {
	mu       sync.Mutex
	failures int
	calls    int
	ids      []string
}

func (p *recordingPublisher) Publish(_ context.Context, e events.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.calls <= p.failures {
		return errors.New("broker unavailable")
	}
	p.ids = append(p.ids, e.EventID)
	return nil
}

func (p *recordingPublisher) PublishMany(ctx context.Context, es []events.Event) error {
	p.mu.Lock()
	p.calls++
	fail := p.calls <= p.failures
	if !fail {
		for _, e := range es {
			p.ids = append(p.ids, e.EventID)
		}
	}
	p.mu.Unlock()
	if fail {
		return errors.New("broker unavailable")
	}
	return nil
}

type recordingAudit struct {
	mu   sync.Mutex
	docs map[string]audit.Document
}

func (a *recordingAudit) Insert(_ context.Context, d audit.Document) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.docs == nil {
		a.docs = map[string]audit.Document{}
	}
	if _, ok := a.docs[d.EventID]; ok {
		return false, nil
	}
	a.docs[d.EventID] = d
	return true, nil
}

func (a *recordingAudit) InsertMany(ctx context.Context, docs []audit.Document) (int, error) {
	n := 0
	for _, d := range docs {
		if ok, _ := a.Insert(ctx, d); ok {
			n++
		}
	}
	return n, nil
}

type recordingCache struct {
	mu   sync.Mutex
	keys []string
}

func (c *recordingCache) Invalidate(_ context.Context, k routes.Key, _ int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keys = append(c.keys, k.String())
	return nil
}

func (c *recordingCache) InvalidateMany(ctx context.Context, changes []cache.Invalidation) error {
	for _, ch := range changes {
		_ = c.Invalidate(ctx, ch.Key, ch.Revision)
	}
	return nil
}

type fixture struct {
	store *routes.Store
	pub   *recordingPublisher
	aud   *recordingAudit
	cache *recordingCache
	acts  *activities.Activities
	// registered are the environments the workflows are registered on.
	registered map[*testsuite.TestWorkflowEnvironment]bool
}

// register registers the workflows and activities on env once (before any
// mock, which the test suite requires).
func (f *fixture) register(env *testsuite.TestWorkflowEnvironment) {
	if f.registered[env] {
		return
	}
	if f.registered == nil {
		f.registered = map[*testsuite.TestWorkflowEnvironment]bool{}
	}
	f.registered[env] = true
	worker.Register(env, f.acts)
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{
		store: routes.NewStore(testenv.Postgres(t)),
		pub:   &recordingPublisher{},
		aud:   &recordingAudit{},
		cache: &recordingCache{},
	}
	f.acts = &activities.Activities{Routes: f.store, Cache: f.cache, Events: f.pub, AuditLog: f.aud, Log: zaptest.NewLogger(t)}
	return f
}

type updateResult struct {
	out      workflows.CommitOutput
	err      error
	rejected error
}

// run executes RouteMutation with the commit update sent right after start.
func (f *fixture) run(t *testing.T, env *testsuite.TestWorkflowEnvironment, in workflows.MutationInput) (workflows.Status, updateResult) {
	t.Helper()
	f.register(env)
	var ur updateResult
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(workflows.CommitUpdate, "commit", &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(err error) { ur.rejected = err },
			OnComplete: func(v any, err error) {
				ur.err = err
				if out, ok := v.(workflows.CommitOutput); ok {
					ur.out = out
				}
			},
		})
	}, 0)
	env.ExecuteWorkflow(workflows.RouteMutation, in)
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var st workflows.Status
	require.NoError(t, env.GetWorkflowResult(&st))
	return st, ur
}

func create(tenant, url string) routes.Mutation {
	return routes.Mutation{Action: routes.ActionCreated, Key: routes.Key{Tenant: tenant, Service: "payments", Env: "prod", Version: "v2"}, URL: url, Active: true, ChangedBy: "alice"}
}

func TestRouteMutationCommitsThenRunsEverySideEffectOnce(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f := newFixture(t)
	m := create(testenv.Name(t, "team"), "https://payments.example/v2")

	st, ur := f.run(t, env, workflows.MutationInput{Mutation: m, EventID: "ev-1"})

	require.NoError(t, ur.err)
	require.Nil(t, ur.rejected)
	require.True(t, ur.out.Result.Changed)
	require.Equal(t, "ev-1", ur.out.EventID)
	require.EqualValues(t, 1, ur.out.Result.Route.Revision)
	require.Equal(t, workflows.Steps{Committed: "done", Invalidated: "done", Published: "done", Audited: "done"}, st.Steps)
	require.Equal(t, []string{"ev-1"}, f.pub.ids)
	require.Len(t, f.aud.docs, 1)
	require.Equal(t, "alice", f.aud.docs["ev-1"].ChangedBy)
	require.Equal(t, []string{m.Key.String()}, f.cache.keys)

	got, err := f.store.Get(context.Background(), m.Key)
	require.NoError(t, err)
	require.Equal(t, m.URL, got.URL)
}

func TestRouteMutationRollbackRecordsTheRestoredRevisionInItsAuditDocument(t *testing.T) {
	f := newFixture(t)
	m := create(testenv.Name(t, "team"), "https://a.example")
	_, err := f.store.Apply(context.Background(), m)
	require.NoError(t, err)
	upd := m
	upd.Action, upd.URL = routes.ActionUpdated, "https://b.example"
	_, err = f.store.Apply(context.Background(), upd)
	require.NoError(t, err)

	rb := routes.Mutation{Action: routes.ActionRolledBack, Key: m.Key, RollbackTo: 1, ChangedBy: "oncall"}
	var s testsuite.WorkflowTestSuite
	st, ur := f.run(t, s.NewTestWorkflowEnvironment(), workflows.MutationInput{Mutation: rb, EventID: "ev-rb"})

	require.NoError(t, ur.err)
	require.True(t, ur.out.Result.Changed)
	require.EqualValues(t, 3, ur.out.Result.Route.Revision)
	require.Equal(t, "https://a.example", ur.out.Result.Route.URL)
	require.Equal(t, "done", st.Steps.Audited)
	require.Equal(t, []string{"ev-rb"}, f.pub.ids)
	doc := f.aud.docs["ev-rb"]
	require.Equal(t, "rolled_back", doc.Action)
	require.EqualValues(t, 1, doc.Metadata.RollbackTo)
	require.Equal(t, "https://b.example", doc.PreviousURL)
}

func TestRouteMutationWithoutChangeSkipsSideEffects(t *testing.T) {
	f := newFixture(t)
	m := create(testenv.Name(t, "team"), "https://payments.example/v2")
	_, err := f.store.Apply(context.Background(), m)
	require.NoError(t, err)

	var s testsuite.WorkflowTestSuite
	st, ur := f.run(t, s.NewTestWorkflowEnvironment(), workflows.MutationInput{Mutation: m, EventID: "ev-2"})

	require.NoError(t, ur.err)
	require.False(t, ur.out.Result.Changed)
	require.Equal(t, workflows.Steps{Committed: "done", Invalidated: "skipped", Published: "skipped", Audited: "skipped"}, st.Steps)
	require.Empty(t, f.pub.ids)
	require.Empty(t, f.aud.docs)
	require.Empty(t, f.cache.keys)
}

func TestRouteMutationRejectsPermanentErrorsWithoutRetry(t *testing.T) {
	tenant := "team-x"
	tests := []struct {
		name     string
		prepare  func(*testing.T, *routes.Store, string)
		mutation func(string) routes.Mutation
		errType  string
	}{
		{
			name:     "deactivating a route that does not exist is not found",
			mutation: func(tn string) routes.Mutation { m := create(tn, ""); m.Action = routes.ActionDeactivated; return m },
			errType:  activities.ErrTypeNotFound,
		},
		{
			name: "creating an existing route with another url is a conflict",
			prepare: func(t *testing.T, s *routes.Store, tn string) {
				_, err := s.Apply(context.Background(), create(tn, "https://a.example"))
				require.NoError(t, err)
			},
			mutation: func(tn string) routes.Mutation { return create(tn, "https://b.example") },
			errType:  activities.ErrTypeConflict,
		},
		{
			name:     "an invalid url is invalid",
			mutation: func(tn string) routes.Mutation { return create(tn, "ftp://x") },
			errType:  activities.ErrTypeInvalid,
		},
		{
			name: "a change whose If-Match names another revision fails its precondition",
			prepare: func(t *testing.T, s *routes.Store, tn string) {
				_, err := s.Apply(context.Background(), create(tn, "https://a.example"))
				require.NoError(t, err)
			},
			mutation: func(tn string) routes.Mutation {
				m := create(tn, "https://b.example")
				m.Action, m.IfRevision = routes.ActionUpdated, 5
				return m
			},
			errType: activities.ErrTypePreconditionFailed,
		},
		{
			name: "a rollback to a revision the route never had is invalid",
			prepare: func(t *testing.T, s *routes.Store, tn string) {
				_, err := s.Apply(context.Background(), create(tn, "https://a.example"))
				require.NoError(t, err)
			},
			mutation: func(tn string) routes.Mutation {
				m := create(tn, "")
				m.Action, m.RollbackTo = routes.ActionRolledBack, 9
				return m
			},
			errType: activities.ErrTypeInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tn := testenv.Name(t, tenant)
			if tt.prepare != nil {
				tt.prepare(t, f.store, tn)
			}
			var s testsuite.WorkflowTestSuite
			st, ur := f.run(t, s.NewTestWorkflowEnvironment(), workflows.MutationInput{Mutation: tt.mutation(tn), EventID: "ev-3"})

			var appErr *temporal.ApplicationError
			require.ErrorAs(t, ur.err, &appErr)
			require.Equal(t, tt.errType, appErr.Type())
			require.True(t, appErr.NonRetryable())
			require.Equal(t, tt.errType, st.ErrorType)
			require.Equal(t, "rejected", st.Steps.Committed)
			require.Empty(t, f.pub.ids)
			require.Empty(t, f.aud.docs)
		})
	}
}

func TestRouteMutationRetriesAFailingSideEffectWithTheSameEventID(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(30 * time.Second)
	f := newFixture(t)
	f.pub.failures = 4
	m := create(testenv.Name(t, "team"), "https://payments.example/v2")

	st, ur := f.run(t, env, workflows.MutationInput{Mutation: m, EventID: "ev-4"})

	require.NoError(t, ur.err)
	require.Equal(t, 5, f.pub.calls, "four failures, then success")
	require.Equal(t, []string{"ev-4"}, f.pub.ids, "every retry re-sends the same event id, delivered once")
	require.Len(t, f.aud.docs, 1)
	require.Equal(t, "done", st.Steps.Published)
}

func TestRouteMutationRevisionsGrowWithEachChange(t *testing.T) {
	f := newFixture(t)
	m := create(testenv.Name(t, "team"), "https://payments.example/v2")
	var s testsuite.WorkflowTestSuite
	_, ur := f.run(t, s.NewTestWorkflowEnvironment(), workflows.MutationInput{Mutation: m, EventID: "a"})
	require.EqualValues(t, 1, ur.out.Result.Route.Revision)

	m.Action = routes.ActionDeactivated
	_, ur = f.run(t, s.NewTestWorkflowEnvironment(), workflows.MutationInput{Mutation: m, EventID: "b"})
	require.EqualValues(t, 2, ur.out.Result.Route.Revision)
	require.Equal(t, "active", ur.out.Result.PreviousState)
	require.False(t, ur.out.Result.Route.IsActive)
}

// A side effect whose dependency stays down for a week continues as a
// regular activity with unlimited attempts and ends done, with the commit
// answered at once. (History events per outage are measured on a real
// server in e2e; here Temporal's test clock skips the week.)
func TestRouteMutationOutlivesAWeekLongOutageOfASideEffect(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(2 * time.Minute)
	f := newFixture(t)
	week := 7 * 24 * time.Hour
	f.pub.failures = int(week / (30 * time.Second)) // the durable policy backs off to 30 s
	m := create(testenv.Name(t, "team"), "https://payments.example/v2")
	start := env.Now()

	st, ur := f.run(t, env, workflows.MutationInput{Mutation: m, EventID: "ev-week"})

	require.NoError(t, ur.err)
	require.True(t, ur.out.Result.Changed)
	// 20,160 failed attempts: more than four days on the test clock (its
	// environment restarts a retry series after ten attempts).
	require.Greater(t, env.Now().Sub(start), 4*24*time.Hour, "the test clock went through the outage")
	require.Equal(t, f.pub.failures+1, f.pub.calls)
	require.Equal(t, []string{"ev-week"}, f.pub.ids)
	require.Equal(t, workflows.Steps{Committed: "done", Invalidated: "done", Published: "done", Audited: "done"}, st.Steps)
}

// A re-run of a mutation (reset, mutations retry) after newer changes of
// its route reports the outcome recorded the first time, changes nothing,
// and re-sends its own side effects with its own event.
func TestRouteMutationReRunAfterNewerChangesReplaysItsOwnOutcome(t *testing.T) {
	f := newFixture(t)
	var s testsuite.WorkflowTestSuite
	m := create(testenv.Name(t, "team"), "https://a.example")
	f.run(t, s.NewTestWorkflowEnvironment(), workflows.MutationInput{Mutation: m, EventID: "ev-a"})
	toB := m
	toB.Action, toB.URL = routes.ActionUpdated, "https://b.example"
	_, first := f.run(t, s.NewTestWorkflowEnvironment(), workflows.MutationInput{Mutation: toB, EventID: "ev-b"})
	toC := toB
	toC.URL = "https://c.example"
	f.run(t, s.NewTestWorkflowEnvironment(), workflows.MutationInput{Mutation: toC, EventID: "ev-c"})

	st, again := f.run(t, s.NewTestWorkflowEnvironment(), workflows.MutationInput{Mutation: toB, EventID: "ev-b"})

	require.NoError(t, again.err)
	require.Equal(t, first.out.Result.Route.Revision, again.out.Result.Route.Revision)
	require.EqualValues(t, 2, again.out.Result.Route.Revision)
	require.Equal(t, "https://b.example", again.out.Result.Route.URL)
	require.Equal(t, "https://a.example", again.out.Result.PreviousURL)
	require.Equal(t, "done", st.Steps.Audited)
	require.Equal(t, []string{"ev-a", "ev-b", "ev-c", "ev-b"}, f.pub.ids, "the re-run re-sends its own event id")
	require.EqualValues(t, 2, f.aud.docs["ev-b"].Metadata.Revision)
	got, err := f.store.Get(context.Background(), m.Key)
	require.NoError(t, err)
	require.Equal(t, "https://c.example", got.URL)
	require.EqualValues(t, 3, got.Revision)
}
