package api_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/api"
	"github.com/trafficmanager/trafficmanager/auth"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/policies"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/workflows"
)

// fakeAuth authenticates the secrets of a fixed set of principals.
type fakeAuth map[string]*auth.Principal

func (f fakeAuth) Authenticate(_ context.Context, secret string) (*auth.Principal, error) {
	if p, ok := f[secret]; ok {
		return p, nil
	}
	return nil, auth.ErrUnknownToken
}

// principals of the role matrix: tenant is theirs, "other" is not.
func principals(tenant string) fakeAuth {
	return fakeAuth{
		"admin":          {ID: "tok_admin", Name: "root", Role: auth.RoleAdmin},
		"admin-2":        {ID: "tok_admin2", Name: "root-2", Role: auth.RoleAdmin},
		"writer":         {ID: "tok_writer", Name: "ci", Role: auth.RoleWriter, TenantList: []string{tenant}},
		"reader":         {ID: "tok_reader", Name: "dash", Role: auth.RoleReader, TenantList: []string{tenant}},
		"approver":       {ID: "tok_approver", Name: "lead", Role: auth.RoleApprover, TenantList: []string{tenant}},
		"other-approver": {ID: "tok_other", Name: "elsewhere", Role: auth.RoleApprover, TenantList: []string{"other"}},
		"other-writer":   {ID: "tok_other_w", Name: "elsewhere-ci", Role: auth.RoleWriter, TenantList: []string{"other"}},
	}
}

// memPolicies is an in-memory api.Policies; loaded false answers as a
// snapshot that never loaded.
type memPolicies struct {
	mu     sync.Mutex
	loaded bool
	m      map[string]policies.Policy
}

func newMemPolicies() *memPolicies {
	return &memPolicies{loaded: true, m: map[string]policies.Policy{}}
}

func (p *memPolicies) Get(_ context.Context, tenant string) (policies.Policy, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if v, ok := p.m[tenant]; ok {
		return v, nil
	}
	return policies.Default(tenant), nil
}

func (p *memPolicies) Put(_ context.Context, v policies.Policy) (policies.Policy, error) {
	if err := v.Validate(); err != nil {
		return policies.Policy{}, err
	}
	v.UpdatedAt = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[v.Tenant] = v
	return v, nil
}

func (p *memPolicies) Current(tenant string) (policies.Policy, error) {
	if !p.loaded {
		return policies.Policy{}, policies.ErrNotLoaded
	}
	return p.Get(context.Background(), tenant)
}

// standInMutation plays RouteMutation's side of workflows/gate.go, so the
// API's half of the contract is tested on its own: it waits for a decision
// when asked to, refuses self-approval and decisions once decided, and
// "commits" on approval without touching any store.
func standInMutation(ctx workflow.Context, in workflows.MutationInput) (workflows.Status, error) {
	st := workflows.Status{
		Action: in.Mutation.Action, Key: in.Mutation.Key, EventID: in.EventID, RequestHash: in.RequestHash,
		RequestedBy: in.RequestedBy, NotBefore: in.NotBefore,
		Steps: workflows.Steps{Committed: workflows.StepPending, Invalidated: workflows.StepPending, Published: workflows.StepPending, Audited: workflows.StepPending},
	}
	if in.Approval != nil {
		st.State = workflows.StateAwaitingApproval
		exp := workflow.Now(ctx).Add(in.Approval.Timeout)
		st.ExpiresAt = &exp
	}
	decided := in.Approval == nil
	if err := workflow.SetQueryHandler(ctx, workflows.StatusQuery, func() (workflows.Status, error) { return st, nil }); err != nil {
		return st, err
	}
	pending := func() error {
		if st.State != workflows.StateAwaitingApproval {
			return temporal.NewNonRetryableApplicationError("not awaiting approval", workflows.ErrTypeNotPending, nil)
		}
		return nil
	}
	decide := func(state string) func(workflow.Context, workflows.Decision) (workflows.Status, error) {
		return func(_ workflow.Context, d workflows.Decision) (workflows.Status, error) {
			st.State, st.Comment, decided = state, d.Comment, true
			if state == workflows.StateDenied {
				st.DecidedBy = &d.By
				st.Steps = workflows.Steps{Committed: workflows.StepSkipped, Invalidated: workflows.StepSkipped, Published: workflows.StepSkipped, Audited: workflows.StepSkipped}
			} else {
				st.ApprovedBy = &d.By
			}
			return st, nil
		}
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, workflows.ApproveUpdate, decide(workflows.StateRunning), workflow.UpdateHandlerOptions{
		Validator: func(d workflows.Decision) error {
			if err := pending(); err != nil {
				return err
			}
			if in.RequestedBy != nil && in.RequestedBy.ID != "" && d.By.ID == in.RequestedBy.ID {
				return temporal.NewNonRetryableApplicationError("four eyes", workflows.ErrTypeSelfApproval, nil)
			}
			return nil
		},
	}); err != nil {
		return st, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, workflows.RejectUpdate, decide(workflows.StateDenied), workflow.UpdateHandlerOptions{
		Validator: func(workflows.Decision) error { return pending() },
	}); err != nil {
		return st, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, workflows.CancelUpdate, func(workflow.Context) (workflows.Status, error) {
		st.State, decided = workflows.StateCancelled, true
		return st, nil
	}, workflow.UpdateHandlerOptions{Validator: func() error { return pending() }}); err != nil {
		return st, err
	}
	if err := workflow.SetUpdateHandler(ctx, workflows.CommitUpdate, func(ctx workflow.Context) (workflows.CommitOutput, error) {
		if err := workflow.Await(ctx, func() bool {
			return st.Result != nil || st.State == workflows.StateDenied || st.State == workflows.StateCancelled
		}); err != nil {
			return workflows.CommitOutput{}, err
		}
		if st.Result == nil {
			return workflows.CommitOutput{}, temporal.NewNonRetryableApplicationError("did not apply", "StandInEnded", nil)
		}
		return workflows.CommitOutput{Result: *st.Result, EventID: in.EventID, RequestHash: in.RequestHash}, nil
	}); err != nil {
		return st, err
	}
	if err := workflow.Await(ctx, func() bool { return decided }); err != nil {
		return st, err
	}
	final := st.State
	if st.State == workflows.StateRunning || st.State == "" {
		st.Result = &routes.Result{Route: routes.Route{Tenant: in.Mutation.Key.Tenant, Service: in.Mutation.Key.Service,
			Env: in.Mutation.Key.Env, Version: in.Mutation.Key.Version, URL: in.Mutation.URL, Revision: 2}, Changed: true}
		st.Steps = workflows.Steps{Committed: workflows.StepDone, Invalidated: workflows.StepDone, Published: workflows.StepDone, Audited: workflows.StepDone}
		st.State, final = "", workflows.StateCompleted
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, workflows.AttrStatus.ValueSet(final)); err != nil {
		return st, err
	}
	return st, workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
}

// standInBatch plays RouteBatch's side of the gate: it waits for a
// decision, then "creates" every route.
func standInBatch(ctx workflow.Context, in workflows.BatchInput) (workflows.BatchStatus, error) {
	st := workflows.BatchStatus{
		Action: routes.ActionCreated, Tenant: in.Mutations[0].Key.Tenant, BatchID: in.BatchID, Routes: len(in.Mutations),
		RequestHash: in.RequestHash, RequestedBy: in.RequestedBy, State: workflows.StateAwaitingApproval,
		Steps: workflows.Steps{Committed: workflows.StepPending, Invalidated: workflows.StepPending, Published: workflows.StepPending, Audited: workflows.StepPending},
	}
	decided := false
	if err := workflow.SetQueryHandler(ctx, workflows.StatusQuery, func() (workflows.BatchStatus, error) { return st, nil }); err != nil {
		return st, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, workflows.ApproveUpdate, func(_ workflow.Context, d workflows.Decision) (workflows.BatchStatus, error) {
		st.State, st.ApprovedBy, st.Comment, decided = workflows.StateApplying, &d.By, d.Comment, true
		return st, nil
	}, workflow.UpdateHandlerOptions{Validator: func(d workflows.Decision) error {
		if decided {
			return temporal.NewNonRetryableApplicationError("decided", workflows.ErrTypeNotPending, nil)
		}
		return nil
	}}); err != nil {
		return st, err
	}
	if err := workflow.SetUpdateHandler(ctx, workflows.CommitUpdate, func(ctx workflow.Context) (workflows.BatchCommitOutput, error) {
		err := workflow.Await(ctx, func() bool { return st.Results != nil })
		return workflows.BatchCommitOutput{BatchID: in.BatchID, Results: st.Results, RequestHash: in.RequestHash}, err
	}); err != nil {
		return st, err
	}
	if err := workflow.Await(ctx, func() bool { return decided }); err != nil {
		return st, err
	}
	for _, m := range in.Mutations {
		st.Results = append(st.Results, routes.Result{Route: routes.Route{Tenant: m.Key.Tenant, Service: m.Key.Service, Env: m.Key.Env, Version: m.Key.Version, URL: m.URL, Revision: 1}, Changed: true})
	}
	st.State, st.Created = "", len(st.Results)
	st.Steps = workflows.Steps{Committed: workflows.StepDone, Invalidated: workflows.StepDone, Published: workflows.StepDone, Audited: workflows.StepDone}
	if err := workflow.UpsertTypedSearchAttributes(ctx, workflows.AttrStatus.ValueSet(workflows.StateCompleted)); err != nil {
		return st, err
	}
	return st, workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
}

// approvalAPI is the api with authentication, a prod approval policy for
// tenant, on the tests' Temporal with the stand-in workflow polling.
func approvalAPI(t *testing.T, tenant string) http.Handler {
	t.Helper()
	tc := dialTemporal(t)
	queue := testenv.Name(t, "approvals")
	w := sdkworker.New(tc, queue, sdkworker.Options{})
	w.RegisterWorkflowWithOptions(standInMutation, workflow.RegisterOptions{Name: workflows.WorkflowType})
	w.RegisterWorkflowWithOptions(standInBatch, workflow.RegisterOptions{Name: workflows.BatchWorkflowType})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	pols := newMemPolicies()
	_, err := pols.Put(context.Background(), policies.Policy{Tenant: tenant, RequireApprovalEnvs: []string{"prod"}, ApprovalTimeout: time.Hour})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	return api.New(api.Options{
		Temporal: tc, TaskQueue: queue, Routes: noRoutes{}, AckTimeout: 5 * time.Second,
		Metrics: observability.NewWriteMetrics(reg), Registry: reg, Log: zaptest.NewLogger(t),
		Auth: principals(tenant), Policies: pols,
	}).Handler()
}

func TestAWriteToAnEnvThatNeedsApprovalWaitsForAnotherPrincipal(t *testing.T) {
	tenant := testenv.Name(t, "team")
	h := approvalAPI(t, tenant)
	path := "/api/v1/routes/" + tenant + "/payments/prod/v2"

	res := call(t, h, "PUT", path, "Bearer writer", map[string]any{"url": "https://v3.example"})
	require.Equal(t, http.StatusAccepted, res.Code, res.Raw)
	require.Equal(t, "awaiting_approval", res.Body["status"])
	require.NotContains(t, res.Body, "not_before")
	wfID := res.Body["workflow_id"].(string)
	mut := "/api/v1/mutations/" + wfID

	st := call(t, h, "GET", mut, "Bearer reader", nil)
	require.Equal(t, http.StatusOK, st.Code, st.Raw)
	require.Equal(t, "awaiting_approval", st.Body["status"], st.Raw)
	require.Equal(t, map[string]any{"id": "tok_writer", "name": "ci"}, st.Body["requested_by"])
	require.NotEmpty(t, st.Body["expires_at"])

	for _, tc := range []struct {
		name, token, path string
		status            int
		code              string
	}{
		{"a writer of the tenant may not approve", "writer", "/approve", http.StatusForbidden, "permission_denied"},
		{"a reader of the tenant may not approve", "reader", "/approve", http.StatusForbidden, "permission_denied"},
		{"a reader of the tenant may not reject", "reader", "/reject", http.StatusForbidden, "permission_denied"},
		{"an approver of another tenant does not learn it exists", "other-approver", "/approve", http.StatusNotFound, "mutation_not_found"},
		{"a writer of another tenant may not cancel it and does not learn it exists", "other-writer", "/cancel", http.StatusNotFound, "mutation_not_found"},
		{"an approver may not cancel (cancel is a writer's)", "approver", "/cancel", http.StatusForbidden, "permission_denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, h, "POST", mut+tc.path, "Bearer "+tc.token, nil)
			require.Equal(t, tc.status, a.Code, a.Raw)
			require.Equal(t, tc.code, a.errorCode())
		})
	}
	a := call(t, h, "POST", mut+"/approve", "Bearer approver", map[string]any{"comment": strings.Repeat("x", 1025)})
	require.Equal(t, http.StatusBadRequest, a.Code, a.Raw)
	a = call(t, h, "POST", mut+"/approve", "Bearer approver", map[string]any{"comment": "ok", "colour": "red"})
	require.Equal(t, http.StatusBadRequest, a.Code, a.Raw)

	// It is listed as awaiting approval, with who asked, for its tenant's tokens only.
	list := "/api/v1/mutations?status=awaiting_approval&tenant=" + tenant
	require.Eventually(t, func() bool {
		l := call(t, h, "GET", list, "Bearer approver", nil)
		return l.Code == http.StatusOK && listed(l, wfID) != nil
	}, 10*time.Second, 100*time.Millisecond)
	item := listed(call(t, h, "GET", list, "Bearer approver", nil), wfID)
	require.Equal(t, "awaiting_approval", item["status"])
	require.Equal(t, "updated", item["action"])
	require.Equal(t, map[string]any{"id": "tok_writer", "name": "ci"}, item["requested_by"])
	require.Equal(t, tenant, item["route"].(map[string]any)["tenant"])
	other := call(t, h, "GET", list, "Bearer other-approver", nil)
	require.Equal(t, http.StatusForbidden, other.Code, other.Raw)
	other = call(t, h, "GET", "/api/v1/mutations?status=awaiting_approval", "Bearer other-approver", nil)
	require.Equal(t, http.StatusOK, other.Code, other.Raw)
	require.Nil(t, listed(other, wfID), "another tenant's approver does not see it")

	approved := call(t, h, "POST", mut+"/approve", "Bearer approver", map[string]any{"comment": "looks right"})
	require.Equal(t, http.StatusOK, approved.Code, approved.Raw)
	require.Equal(t, map[string]any{"id": "tok_approver", "name": "lead"}, approved.Body["approved_by"], approved.Raw)
	require.Equal(t, "looks right", approved.Body["comment"])
	require.Contains(t, []any{"running", "completed"}, approved.Body["status"])

	retried := call(t, h, "POST", mut+"/approve", "Bearer approver", nil)
	require.Equal(t, http.StatusOK, retried.Code, "the approver's retry is answered as its approval was: %s", retried.Raw)
	require.Equal(t, map[string]any{"id": "tok_approver", "name": "lead"}, retried.Body["approved_by"], retried.Raw)
	again := call(t, h, "POST", mut+"/approve", "Bearer admin", nil)
	require.Equal(t, http.StatusConflict, again.Code, "approving twice applies once: %s", again.Raw)
	require.Equal(t, "mutation_not_pending", again.errorCode())
	require.Eventually(t, func() bool {
		return call(t, h, "GET", mut, "Bearer reader", nil).Body["status"] == "completed"
	}, 10*time.Second, 100*time.Millisecond)
	cancelled := call(t, h, "POST", mut+"/cancel", "Bearer writer", nil)
	require.Equal(t, http.StatusConflict, cancelled.Code, cancelled.Raw)
	require.Eventually(t, func() bool {
		return listed(call(t, h, "GET", "/api/v1/mutations?status=completed&tenant="+tenant, "Bearer reader", nil), wfID) != nil
	}, 10*time.Second, 100*time.Millisecond, "listed as completed once it upserted TmStatus")
}

func TestTheRequesterCannotApproveItsOwnChange(t *testing.T) {
	tenant := testenv.Name(t, "team")
	h := approvalAPI(t, tenant)
	res := call(t, h, "POST", "/api/v1/routes/"+tenant+"/payments/prod/v2/deactivate", "Bearer admin", nil)
	require.Equal(t, http.StatusAccepted, res.Code, res.Raw)
	mut := "/api/v1/mutations/" + res.Body["workflow_id"].(string)

	self := call(t, h, "POST", mut+"/approve", "Bearer admin", nil)
	require.Equal(t, http.StatusForbidden, self.Code, self.Raw)
	require.Equal(t, "permission_denied", self.errorCode())

	rejected := call(t, h, "POST", mut+"/reject", "Bearer admin-2", map[string]any{"comment": "not tonight"})
	require.Equal(t, http.StatusOK, rejected.Code, rejected.Raw)
	require.Equal(t, "rejected", rejected.Body["status"], rejected.Raw)
	require.Equal(t, map[string]any{"id": "tok_admin2", "name": "root-2"}, rejected.Body["rejected_by"])
	require.Equal(t, "skipped", rejected.Body["steps"].(map[string]any)["committed"])

	late := call(t, h, "POST", mut+"/approve", "Bearer approver", nil)
	require.Equal(t, http.StatusConflict, late.Code, late.Raw)
	require.Equal(t, "mutation_not_pending", late.errorCode())
}

func TestAWaitingWriteCanBeCancelledAndItsKeyAnswers409(t *testing.T) {
	tenant := testenv.Name(t, "team")
	h := approvalAPI(t, tenant)
	path := "/api/v1/routes/" + tenant + "/payments/prod/v2/activate"
	send := func(body any) apiAnswer {
		return callWithKey(t, h, "POST", path, "Bearer writer", "cancel-me", body)
	}
	first := send(nil)
	require.Equal(t, http.StatusAccepted, first.Code, first.Raw)
	again := send(nil)
	require.Equal(t, http.StatusAccepted, again.Code, "a repeated request joins the waiting mutation: %s", again.Raw)
	require.Equal(t, first.Body["workflow_id"], again.Body["workflow_id"])
	require.Equal(t, "awaiting_approval", again.Body["status"])
	other := send(map[string]any{"revert_after": "1h"})
	require.Equal(t, http.StatusUnprocessableEntity, other.Code, "revert_after is part of the request: %s", other.Raw)

	mut := "/api/v1/mutations/" + first.Body["workflow_id"].(string)
	cancelled := call(t, h, "POST", mut+"/cancel", "Bearer writer", nil)
	require.Equal(t, http.StatusOK, cancelled.Code, cancelled.Raw)
	require.Equal(t, "cancelled", cancelled.Body["status"])
	var res apiAnswer
	require.Eventually(t, func() bool {
		res = send(nil)
		return res.Code == http.StatusConflict && strings.Contains(res.errorMessage(), "cancelled")
	}, 10*time.Second, 100*time.Millisecond, "the key of a cancelled mutation answers 409, never 500")
}

func TestAWriteWhoseEnvNeedsNoApprovalIsNotGated(t *testing.T) {
	tenant := testenv.Name(t, "team")
	h := approvalAPI(t, tenant)
	res := call(t, h, "PUT", "/api/v1/routes/"+tenant+"/payments/staging/v2", "Bearer writer", map[string]any{"url": "https://v3.example"})
	require.Equal(t, http.StatusOK, res.Code, res.Raw)
	require.Equal(t, true, res.Body["changed"])
}

func TestABatchWithARouteInAnEnvThatNeedsApprovalWaitsAsAWhole(t *testing.T) {
	tenant := testenv.Name(t, "team")
	h := approvalAPI(t, tenant)
	route := func(env string) map[string]any {
		return map[string]any{"tenant": tenant, "service": "payments", "env": env, "version": "v1", "url": "https://a.example"}
	}
	res := call(t, h, "POST", "/api/v1/routes/batch", "Bearer writer", map[string]any{"routes": []any{route("staging"), route("prod")}})
	require.Equal(t, http.StatusAccepted, res.Code, res.Raw)
	require.Equal(t, "awaiting_approval", res.Body["status"])
	wfID := res.Body["workflow_id"].(string)
	require.True(t, strings.HasPrefix(wfID, "batch/"+tenant+"/created/"), wfID)
	mut := "/api/v1/mutations/" + wfID

	st := call(t, h, "GET", mut, "Bearer approver", nil)
	require.Equal(t, "awaiting_approval", st.Body["status"], st.Raw)
	require.Equal(t, map[string]any{"id": "tok_writer", "name": "ci"}, st.Body["requested_by"])
	require.Eventually(t, func() bool {
		item := listed(call(t, h, "GET", "/api/v1/mutations?status=awaiting_approval", "Bearer approver", nil), wfID)
		return item != nil && item["route"].(map[string]any)["tenant"] == tenant && item["action"] == "created"
	}, 10*time.Second, 100*time.Millisecond)

	require.Equal(t, http.StatusForbidden, call(t, h, "POST", mut+"/approve", "Bearer writer", nil).Code)
	ok := call(t, h, "POST", mut+"/approve", "Bearer approver", map[string]any{"comment": "go"})
	require.Equal(t, http.StatusOK, ok.Code, ok.Raw)
	require.Equal(t, map[string]any{"id": "tok_approver", "name": "lead"}, ok.Body["approved_by"], ok.Raw)
	require.Eventually(t, func() bool {
		return call(t, h, "GET", mut, "Bearer reader", nil).Body["status"] == "completed"
	}, 10*time.Second, 100*time.Millisecond)
	require.Equal(t, http.StatusOK, call(t, h, "POST", mut+"/approve", "Bearer approver", nil).Code, "the approver's retry")
	require.Equal(t, http.StatusConflict, call(t, h, "POST", mut+"/approve", "Bearer admin", nil).Code, "another principal's approval")
}

// callWithKey is call with an Idempotency-Key.
func callWithKey(t *testing.T, h http.Handler, method, path, authorization, key string, body any) apiAnswer {
	t.Helper()
	return call(t, withHeader{h, "Idempotency-Key", key}, method, path, authorization, body)
}

type withHeader struct {
	h           http.Handler
	name, value string
}

func (w withHeader) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	r.Header.Set(w.name, w.value)
	w.h.ServeHTTP(rw, r)
}

// listed returns wfID's item of a mutation list, or nil.
func listed(a apiAnswer, wfID string) map[string]any {
	items, _ := a.Body["mutations"].([]any)
	for _, it := range items {
		m, _ := it.(map[string]any)
		if m["workflow_id"] == wfID {
			return m
		}
	}
	return nil
}
