package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"

	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/workflows"
)

// maxBatchBody is the largest batch request: MaxBatch routes of
// maximum-length names and URLs would not fit, ordinary ones do.
const maxBatchBody = 1 << 20

// batchAction labels batch requests in the write metrics.
const batchAction = "batch_created"

type batchRequest struct {
	Routes    []createRequest `json:"routes"`
	ChangedBy string          `json:"changed_by"`
	// not_before applies to the whole batch; revert_after is refused (a
	// batch creates routes: there is no previous state to restore).
	timingFields
}

// batchItem is one route of a batch's answer.
type batchItem struct {
	routes.Route
	Changed bool   `json:"changed"`
	EventID string `json:"event_id"`
}

type batchResponse struct {
	WorkflowID string      `json:"workflow_id"`
	RunID      string      `json:"run_id"`
	BatchID    string      `json:"batch_id"`
	Tenant     string      `json:"tenant"`
	Created    int         `json:"created"`
	Unchanged  int         `json:"unchanged"`
	Routes     []batchItem `json:"routes"`
}

// createBatch is POST /api/v1/routes/batch: up to routes.MaxBatch routes of
// one tenant created in one transaction (all or none), each with its own
// event, cache invalidation and audit document, as a RouteBatch workflow.
// A batch takes one token of the tenant's write rate: it is one workflow.
func (s *Server) createBatch(c *gin.Context) {
	var req batchRequest
	err := decodeJSONUpTo(c, &req, false, maxBatchBody)
	var t timing
	if err == nil {
		t, err = req.timingFields.parse()
	}
	if err == nil && req.RevertAfter != "" {
		err = errRevertCreate
	}
	if err != nil {
		s.fail(c, batchAction, err)
		return
	}
	ms := make([]routes.Mutation, len(req.Routes))
	for i, r := range req.Routes {
		ms[i] = r.mutation(c, req.ChangedBy)
	}
	if len(req.ChangedBy) > 256 {
		s.fail(c, batchAction, routes.Invalid("changed_by", "must be at most 256 bytes"))
		return
	}
	if err := routes.ValidateBatch(ms); err != nil {
		s.fail(c, batchAction, err)
		return
	}
	tenant := ms[0].Key.Tenant
	s.startWrite(c, write{
		action:     batchAction,
		tenant:     tenant,
		workflowID: func(key string) string { return workflows.BatchWorkflowID(tenant, key) },
		commit: func(ctx context.Context, wfID string) (int, any, error) {
			envs := make([]string, len(ms))
			for i, m := range ms {
				envs[i] = m.Key.Env
			}
			approval, err := s.approvalFor(tenant, envs...)
			if err != nil {
				return 0, nil, err
			}
			in := workflows.BatchInput{
				Mutations: ms, BatchID: workflows.EventIDFor(wfID), Principal: PrincipalName(c),
				RequestHash: batchRequestHash(ms, t), Approval: approval, RequestedBy: requester(c),
			}
			if t.nb.scheduled() {
				in.NotBefore = &t.nb.at
			}
			state := initialState(in.Approval, in.NotBefore)
			opts := s.startOptions(wfID, workflows.BatchSearchAttributes(tenant, ms...), state, in.NotBefore, in.RequestedBy)
			if state != workflows.StateRunning {
				return s.schedule(ctx, c, gated{
					wfType: workflows.BatchWorkflowType, input: in, opts: opts,
					requestHash: in.RequestHash, state: state, notBefore: in.NotBefore,
					finished: func(ctx context.Context) (int, any, error) {
						resp, err := s.finishedBatch(ctx, wfID, in.RequestHash)
						return batchStatusCode(resp), resp, err
					},
				})
			}
			resp, err := s.executeBatch(ctx, opts, in)
			return batchStatusCode(resp), resp, err
		},
		recorded: func(ctx context.Context, wfID string) (int, any, bool, error) {
			return s.recordedBatch(ctx, wfID, tenant, len(ms))
		},
	})
}

// recordedBatch answers a batch from the ledger (see write.recorded).
func (s *Server) recordedBatch(ctx context.Context, wfID, tenant string, n int) (int, any, bool, error) {
	batchID := workflows.EventIDFor(wfID)
	ids := make([]string, n)
	at := make(map[string]int, n)
	for i := range ids {
		ids[i] = workflows.BatchEventID(batchID, i)
		at[ids[i]] = i
	}
	recs, err := s.o.Ledger.Recorded(ctx, ids...)
	if err != nil || len(recs) == 0 {
		return 0, nil, false, err
	}
	res := make([]routes.Result, n)
	for _, rec := range recs {
		if rec.Err != nil {
			return 0, rec.Err, true, nil
		}
		res[at[rec.EventID]] = rec.Result
	}
	if len(recs) != n {
		return 0, nil, false, nil
	}
	resp := newBatchResponse(wfID, s.runID(ctx, wfID), batchID, tenant, res, ids)
	return batchStatusCode(resp), resp, true, nil
}

// batchStatusCode is 201 when the batch created a route, else 200.
func batchStatusCode(resp batchResponse) int {
	if resp.Created > 0 {
		return http.StatusCreated
	}
	return http.StatusOK
}

// batchRequestHash fingerprints a batch and its not_before (a batch
// without one hashes as before not_before existed on batches).
func batchRequestHash(ms []routes.Mutation, t timing) string {
	if t.nb == nil {
		return workflows.RequestHash(ms)
	}
	return workflows.RequestHash(struct {
		Mutations []routes.Mutation `json:"mutations"`
		NotBefore time.Time         `json:"not_before"`
	}{ms, t.nb.at})
}

func (s *Server) executeBatch(ctx context.Context, opts client.StartWorkflowOptions, in workflows.BatchInput) (batchResponse, error) {
	tenant, wfID := in.Mutations[0].Key.Tenant, opts.ID
	out, runID, err := commitWithStart[workflows.BatchCommitOutput](ctx, s, opts, workflows.BatchWorkflowType, in)
	if errors.Is(err, errClosed) {
		return s.finishedBatch(ctx, wfID, in.RequestHash)
	}
	if err != nil {
		return batchResponse{}, s.didNotApply(ctx, wfID, err)
	}
	if !sameRequest(out.RequestHash, in.RequestHash) {
		return batchResponse{}, errKeyReused
	}
	// out.BatchID: a repeated request attaches to the first one's workflow.
	return newBatchResponse(wfID, runID, out.BatchID, tenant, out.Results, out.EventIDs), nil
}

// finishedBatch answers a repeated batch request from the closed workflow.
func (s *Server) finishedBatch(ctx context.Context, wfID, requestHash string) (batchResponse, error) {
	st, runID, err := closedResult[workflows.BatchStatus](ctx, s, wfID)
	if err != nil {
		return batchResponse{}, err
	}
	if !sameRequest(st.RequestHash, requestHash) {
		return batchResponse{}, errKeyReused
	}
	if st.ErrorType != "" {
		return batchResponse{}, rejection(st.ErrorType, st.Error)
	}
	if err := endedWithout(st.State); err != nil {
		return batchResponse{}, err
	}
	return newBatchResponse(wfID, runID, st.BatchID, st.Tenant, st.Results, st.EventIDs), nil
}

func newBatchResponse(wfID, runID, batchID, tenant string, res []routes.Result, ids []string) batchResponse {
	out := batchResponse{WorkflowID: wfID, RunID: runID, BatchID: batchID, Tenant: tenant, Routes: make([]batchItem, len(res))}
	for i, r := range res {
		out.Routes[i] = batchItem{Route: r.Route, Changed: r.Changed}
		if i < len(ids) {
			out.Routes[i].EventID = ids[i]
		}
		if r.Changed {
			out.Created++
		} else {
			out.Unchanged++
		}
	}
	return out
}

// batchStatusAnswer is the answer of GET /api/v1/mutations/batch/...: counts and
// steps; the routes themselves are in the batch request's answer.
type batchStatusAnswer struct {
	WorkflowID string          `json:"workflow_id"`
	RunID      string          `json:"run_id"`
	Status     string          `json:"status"`
	Action     routes.Action   `json:"action"`
	Tenant     string          `json:"tenant"`
	BatchID    string          `json:"batch_id,omitempty"`
	Routes     int             `json:"routes"`
	Created    int             `json:"created"`
	Unchanged  int             `json:"unchanged"`
	Steps      workflows.Steps `json:"steps"`
	waiting
	Error *statusError `json:"error,omitempty"`
	Hint  string       `json:"hint,omitempty"`
}

// batchStatus answers GET /api/v1/mutations/batch/{tenant}/created/{key}.
func (s *Server) batchStatus(ctx context.Context, wfID, tenant string, info *workflowpb.WorkflowExecutionInfo) batchStatusAnswer {
	out := batchStatusAnswer{
		WorkflowID: wfID,
		RunID:      info.GetExecution().GetRunId(),
		Status:     statusName(info.GetStatus()),
		Action:     routes.ActionCreated,
		Tenant:     tenant,
		Steps:      pendingSteps,
	}
	var st workflows.BatchStatus
	if err := s.workflowStatus(ctx, wfID, out.RunID, info.GetStatus(), &st); err == nil {
		out.BatchID, out.Routes, out.Created, out.Unchanged, out.Steps = st.BatchID, st.Routes, st.Created, st.Unchanged, st.Steps
		out.Error = statusErrorOf(st.ErrorType, st.Error)
		out.waiting = waitingOf(st.State, st.NotBefore, st.RequestedBy, st.ApprovedBy, st.DecidedBy, st.Comment, st.ExpiresAt, nil, nil)
		out.Status = statusOf(out.Status, st.State, st.ErrorType)
	}
	if out.Steps.Committed == workflows.StepPending && !waitsToCommit(out.Status) {
		// A batch commits all or nothing: its first route's record says
		// whether it has.
		if rec, ok := s.recordedCommit(ctx, workflows.BatchEventID(workflows.EventIDFor(wfID), 0)); ok {
			if out.Error = recordedSteps(rec, &out.Steps); out.Error != nil && out.Status == "completed" {
				out.Status = workflows.StateDenied // a rejected commit
			}
		}
	}
	out.Hint = retryHint(info.GetStatus(), wfID)
	return out
}
