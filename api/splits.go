package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/trafficmanager/trafficmanager/activities"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/workflows"
)

// Splits: PUT, GET and DELETE /api/v1/splits/{tenant}/{service}/{env}.
// A split write is a SplitMutation workflow started through the same
// write path as route writes (startWrite: auth, rate limit,
// Idempotency-Key, ack timeout then 202, ledger fallback), with the same
// gate (not_before, tenant approval policy, cancel).

// SplitReader reads splits (*routes.Store; the API's Routes reader is
// asked for it, so the server needs no new option).
type SplitReader interface {
	GetSplit(ctx context.Context, k routes.SplitKey) (routes.Split, error)
}

// SplitHistoryReader reads a split's revisions (*routes.Store).
type SplitHistoryReader interface {
	SplitHistory(ctx context.Context, k routes.SplitKey, limit int) ([]routes.SplitRevision, error)
}

// SplitLedger reads recorded split mutations (*routes.Store).
type SplitLedger interface {
	RecordedSplits(ctx context.Context, eventIDs ...string) ([]routes.SplitRecorded, error)
}

var (
	_ SplitReader        = (*routes.Store)(nil)
	_ SplitLedger        = (*routes.Store)(nil)
	_ SplitHistoryReader = (*routes.Store)(nil)
)

// registerSplits registers the split endpoints on v1.
func (s *Server) registerSplits(v1 gin.IRoutes) {
	v1.PUT("/splits/:tenant/:service/:env", s.putSplit)
	v1.GET("/splits/:tenant/:service/:env", s.getSplit)
	v1.DELETE("/splits/:tenant/:service/:env", s.deleteSplit)
	v1.GET("/splits/:tenant/:service/:env/history", s.splitHistory)
}

// SplitNotFound is the answer about an env without a split.
func SplitNotFound(msg string) *Error {
	return &Error{Status: http.StatusNotFound, Code: "split_not_found", Message: msg}
}

type putSplitRequest struct {
	Weights   routes.Weights `json:"weights"`
	ChangedBy string         `json:"changed_by"`
	NotBefore string         `json:"not_before"`
}

type deleteSplitRequest struct {
	ChangedBy string `json:"changed_by"`
	NotBefore string `json:"not_before"`
}

// splitBody is the "split" of a split mutation's answer and GET's body.
type splitBody struct {
	Weights  routes.Weights `json:"weights"`
	Revision int64          `json:"revision"`
}

// splitMutationResponse is the answer to an acknowledged split mutation.
type splitMutationResponse struct {
	Split      splitBody       `json:"split"`
	Key        routes.SplitKey `json:"key"`
	Action     routes.Action   `json:"action"`
	Changed    bool            `json:"changed"`
	EventID    string          `json:"event_id"`
	WorkflowID string          `json:"workflow_id"`
	RunID      string          `json:"run_id"`
}

func splitPathKey(c *gin.Context) (routes.SplitKey, error) {
	k := routes.SplitKey{Tenant: c.Param("tenant"), Service: c.Param("service"), Env: c.Param("env")}
	return k, k.Validate()
}

func (s *Server) putSplit(c *gin.Context) {
	const action = string(routes.ActionSplitUpdated)
	k, err := splitPathKey(c)
	var req putSplitRequest
	var ifRev int64
	if err == nil {
		ifRev, err = ifMatch(c)
	}
	if err == nil {
		err = decodeJSON(c, &req, false)
	}
	if err == nil && req.Weights == nil {
		err = InvalidArgument("weights is required, as in {\"weights\": {\"v1\": 90, \"v2\": 10}}")
	}
	var nb *notBefore
	if err == nil {
		nb, err = parseNotBefore(req.NotBefore, time.Now())
	}
	m := routes.SplitMutation{Action: routes.ActionSplitUpdated, Key: k, Weights: req.Weights,
		ChangedBy: changedBy(c, req.ChangedBy), IfRevision: ifRev}
	if err == nil {
		err = m.Validate()
	}
	if err != nil {
		s.fail(c, action, err)
		return
	}
	s.mutateSplit(c, m, nb)
}

func (s *Server) deleteSplit(c *gin.Context) {
	const action = string(routes.ActionSplitDeleted)
	k, err := splitPathKey(c)
	var req deleteSplitRequest
	var ifRev int64
	if err == nil {
		ifRev, err = ifMatch(c)
	}
	if err == nil {
		err = decodeJSON(c, &req, true)
	}
	var nb *notBefore
	if err == nil {
		nb, err = parseNotBefore(req.NotBefore, time.Now())
	}
	m := routes.SplitMutation{Action: routes.ActionSplitDeleted, Key: k, ChangedBy: changedBy(c, req.ChangedBy), IfRevision: ifRev}
	if err == nil {
		err = m.Validate()
	}
	if err != nil {
		s.fail(c, action, err)
		return
	}
	s.mutateSplit(c, m, nb)
}

// splitStatusCode is 201 for a split that did not exist before, else 200.
func splitStatusCode(res routes.SplitResult) int {
	if res.Changed && res.PreviousWeights == nil && res.Split.Weights != nil {
		return http.StatusCreated
	}
	return http.StatusOK
}

func splitResponse(m routes.SplitMutation, res routes.SplitResult, eventID, wfID, runID string) splitMutationResponse {
	w := res.Split.Weights
	if w == nil {
		w = routes.Weights{}
	}
	return splitMutationResponse{
		Split: splitBody{Weights: w, Revision: res.Split.Revision}, Key: m.Key, Action: m.Action,
		Changed: res.Changed, EventID: eventID, WorkflowID: wfID, RunID: runID,
	}
}

// splitError maps a split commit's rejection: a missing split is
// split_not_found (a split commit never reports a missing route).
func splitError(err error) error {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == activities.ErrTypeNotFound {
		return SplitNotFound("the env has no split")
	}
	if errors.Is(err, routes.ErrSplitNotFound) {
		return SplitNotFound("the env has no split")
	}
	var apiErr *Error
	if errors.As(err, &apiErr) && apiErr.Code == "route_not_found" {
		return SplitNotFound("the env has no split")
	}
	return err
}

func (s *Server) mutateSplit(c *gin.Context, m routes.SplitMutation, nb *notBefore) {
	hash := workflows.RequestHash(m)
	if nb != nil {
		hash = workflows.RequestHash(struct {
			Mutation  routes.SplitMutation `json:"mutation"`
			NotBefore string               `json:"not_before"`
		}{m, nb.at.String()})
	}
	s.startWrite(c, write{
		action:     string(m.Action),
		tenant:     m.Key.Tenant,
		workflowID: func(key string) string { return workflows.SplitWorkflowID(m, key) },
		commit: func(ctx context.Context, wfID string) (int, any, error) {
			approval, err := s.approvalFor(m.Key.Tenant, m.Key.Env)
			if err != nil {
				return 0, nil, err
			}
			in := workflows.SplitInput{Mutation: m, EventID: workflows.EventIDFor(wfID), Principal: PrincipalName(c),
				RequestHash: hash, Approval: approval, RequestedBy: requester(c)}
			if nb.scheduled() {
				in.NotBefore = &nb.at
			}
			state := initialState(in.Approval, in.NotBefore)
			opts := s.startOptions(wfID, workflows.SplitSearchAttributes(m), state, in.NotBefore, in.RequestedBy)
			finished := func(ctx context.Context) (int, any, error) {
				st, runID, err := closedResult[workflows.SplitStatus](ctx, s, wfID)
				if err != nil {
					return 0, nil, err
				}
				switch {
				case !sameRequest(st.RequestHash, hash):
					return 0, nil, errKeyReused
				case st.ErrorType != "":
					return 0, nil, splitError(rejection(st.ErrorType, st.Error))
				}
				if err := endedWithout(st.State); err != nil {
					return 0, nil, err
				}
				if st.Result == nil {
					return 0, nil, errors.New("finished split mutation has no result")
				}
				return splitStatusCode(*st.Result), splitResponse(m, *st.Result, st.EventID, wfID, runID), nil
			}
			if state != workflows.StateRunning {
				return s.schedule(ctx, c, gated{wfType: workflows.SplitWorkflowType, input: in, opts: opts,
					requestHash: hash, state: state, notBefore: in.NotBefore, finished: finished})
			}
			out, runID, err := commitWithStart[workflows.SplitCommitOutput](ctx, s, opts, workflows.SplitWorkflowType, in)
			if errors.Is(err, errClosed) {
				return finished(ctx)
			}
			if err != nil {
				return 0, nil, splitError(s.didNotApply(ctx, wfID, err))
			}
			if !sameRequest(out.RequestHash, hash) {
				return 0, nil, errKeyReused
			}
			return splitStatusCode(out.Result), splitResponse(m, out.Result, out.EventID, wfID, runID), nil
		},
		recorded: func(ctx context.Context, wfID string) (int, any, bool, error) {
			l, ok := s.o.Ledger.(SplitLedger)
			if !ok {
				return 0, nil, false, nil
			}
			recs, err := l.RecordedSplits(ctx, workflows.EventIDFor(wfID))
			if err != nil || len(recs) == 0 {
				return 0, nil, false, err
			}
			rec := recs[0]
			if rec.Err != nil {
				return 0, splitError(rec.Err), true, nil
			}
			return splitStatusCode(rec.Result), splitResponse(m, rec.Result, rec.EventID, wfID, s.runID(ctx, wfID)), true, nil
		},
	})
}

func (s *Server) getSplit(c *gin.Context) {
	k, err := splitPathKey(c)
	if err == nil {
		err = Authorize(c, k.Tenant, false)
	}
	rd, ok := s.o.Routes.(SplitReader)
	if err == nil && !ok {
		err = Unavailable("this server cannot read splits")
	}
	if err != nil {
		WriteError(c, s.log, err)
		return
	}
	sp, err := read(c.Request.Context(), s, func(ctx context.Context) (routes.Split, error) { return rd.GetSplit(ctx, k) })
	if err != nil {
		WriteError(c, s.log, splitError(err))
		return
	}
	c.Header("ETag", `"`+strconv.FormatInt(sp.Revision, 10)+`"`)
	c.JSON(http.StatusOK, splitBody{Weights: sp.Weights, Revision: sp.Revision})
}

// splitStatusAnswer is GET /api/v1/mutations/{id} of a split mutation.
func (s *Server) splitStatusAnswer(ctx context.Context, id mutationID, info *workflowpb.WorkflowExecutionInfo) any {
	out := mutationStatus{
		WorkflowID: id.wfID,
		RunID:      info.GetExecution().GetRunId(),
		Status:     statusName(info.GetStatus()),
		Steps:      pendingSteps,
		Action:     routes.Action(id.parts[4]),
		Route:      id.key(),
	}
	var st workflows.SplitStatus
	if err := s.workflowStatus(ctx, id.wfID, out.RunID, info.GetStatus(), &st); err == nil {
		out.Action, out.Steps, out.EventID = st.Action, st.Steps, st.EventID
		out.Route = st.Key
		if st.Result != nil {
			sp := st.Result.Split
			if sp.Weights == nil { // a delete: {} as in the write's answer and the history
				sp.Weights = routes.Weights{}
			}
			out.Route = sp
			out.Changed = &st.Result.Changed
		}
		if st.ErrorType != "" {
			e := ToError(splitError(rejection(st.ErrorType, st.Error)))
			out.Error = &statusError{Code: e.Code, Message: e.Message}
		}
		out.waiting = waitingOf(st.State, st.NotBefore, st.RequestedBy, st.ApprovedBy, st.DecidedBy, st.Comment, st.ExpiresAt, nil, nil)
		out.Status = statusOf(out.Status, st.State, st.ErrorType)
	}
	out.Hint = retryHint(info.GetStatus(), id.wfID)
	return out
}

// splitHistory answers GET /api/v1/splits/{t}/{s}/{e}/history?limit=: the
// split's revisions, newest first, from split_ledger (deletes included,
// with empty weights): {"revisions": [...]}.
func (s *Server) splitHistory(c *gin.Context) {
	k, err := splitPathKey(c)
	if err == nil {
		err = Authorize(c, k.Tenant, false)
	}
	var limit int
	if err == nil {
		limit, err = ParseLimit(c)
	}
	rd, ok := s.o.Routes.(SplitHistoryReader)
	if err == nil && !ok {
		err = Unavailable("this server cannot read splits")
	}
	if err != nil {
		WriteError(c, s.log, err)
		return
	}
	revs, err := read(c.Request.Context(), s, func(ctx context.Context) ([]routes.SplitRevision, error) {
		return rd.SplitHistory(ctx, k, limit)
	})
	if err != nil {
		WriteError(c, s.log, err)
		return
	}
	if revs == nil {
		revs = []routes.SplitRevision{}
	}
	c.JSON(http.StatusOK, gin.H{"revisions": revs})
}
