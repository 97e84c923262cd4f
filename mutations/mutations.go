// Package mutations finds route mutation workflows that did not complete and
// runs them again, for operators (`trafficmanager mutations failed|retry`).
package mutations

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/trafficmanager/trafficmanager/workflows"
)

// Failed is one mutation workflow that closed without completing.
type Failed struct {
	WorkflowID string    `json:"workflow_id"`
	RunID      string    `json:"run_id"`
	Status     string    `json:"status"`
	Tenant     string    `json:"tenant"`
	Action     string    `json:"action"`
	StartTime  time.Time `json:"start_time"`
	CloseTime  time.Time `json:"close_time"`
}

// Query returns the visibility query ListFailed runs; the README shows the
// same query for `temporal workflow list --query`.
func Query(since time.Time, tenant string) string {
	q := fmt.Sprintf("WorkflowType IN ('%s', '%s') AND ExecutionStatus IN ('Failed', 'TimedOut', 'Terminated', 'Canceled') AND CloseTime > '%s'",
		workflows.WorkflowType, workflows.BatchWorkflowType, since.UTC().Format(time.RFC3339))
	if tenant != "" {
		q += fmt.Sprintf(" AND TmTenant = '%s'", strings.ReplaceAll(tenant, "'", ""))
	}
	return q
}

// ListFailed lists mutation workflows that failed, timed out, were
// terminated or canceled since the given time, newest first: one entry per
// workflow, for its latest run, and only while that run is still the one
// that did not complete. A mutation that was retried (its workflow has a
// newer run, running or completed) is no longer listed, though visibility
// keeps the old run's record; `temporal workflow list` still shows it.
func ListFailed(ctx context.Context, c client.Client, namespace string, since time.Time, tenant string) ([]Failed, error) {
	var out []Failed
	seen := map[string]bool{}
	var token []byte
	for {
		res, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: namespace, Query: Query(since, tenant), NextPageToken: token, PageSize: 200,
		})
		if err != nil {
			return nil, fmt.Errorf("list failed mutations: %w", err)
		}
		for _, e := range res.GetExecutions() {
			id := e.GetExecution().GetWorkflowId()
			if seen[id] {
				continue
			}
			seen[id] = true
			latest, ok, err := latestRun(ctx, c, id)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue // retried (or its history is gone): nothing left to retry
			}
			f := Failed{
				WorkflowID: id,
				RunID:      latest.GetExecution().GetRunId(),
				Status:     StatusName(latest.GetStatus()),
				StartTime:  latest.GetStartTime().AsTime(),
				CloseTime:  latest.GetCloseTime().AsTime(),
			}
			if parts := strings.Split(f.WorkflowID, "/"); len(parts) == 7 {
				f.Tenant, f.Action = parts[1], parts[5]
			}
			out = append(out, f)
		}
		if token = res.GetNextPageToken(); len(token) == 0 {
			return out, nil
		}
	}
}

// latestRun describes the latest run of workflowID; ok is false when that
// run is running or completed (the mutation needs no retry) or when the
// workflow is no longer known.
func latestRun(ctx context.Context, c client.Client, workflowID string) (*workflowpb.WorkflowExecutionInfo, bool, error) {
	desc, err := c.DescribeWorkflowExecution(ctx, workflowID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("describe %s: %w", workflowID, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return info, false, nil
	}
	return info, true, nil
}

// StatusName renders a workflow status as the API and CLI show it:
// running, completed, failed, canceled, terminated, timed_out,
// continued_as_new.
func StatusName(s enumspb.WorkflowExecutionStatus) string {
	switch s {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return "running"
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return "completed"
	case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:
		return "failed"
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return "canceled"
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		return "terminated"
	case enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return "timed_out"
	case enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
		return "continued_as_new"
	}
	return "unknown"
}

// ErrNotRetryable says the mutation is running or has completed.
var ErrNotRetryable = errors.New("mutation is not failed")

// Retry runs a closed, not-completed mutation again by resetting its latest
// run to the first workflow task: the new run has the same input, hence the
// same event id, so the commit recognises its own change and every side
// effect stays idempotent. It returns the new run id.
func Retry(ctx context.Context, c client.Client, namespace, workflowID, reason string) (string, error) {
	desc, err := c.DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		return "", fmt.Errorf("describe %s: %w", workflowID, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return "", fmt.Errorf("%s is %s: %w", workflowID, StatusName(info.GetStatus()), ErrNotRetryable)
	}
	runID := info.GetExecution().GetRunId()
	first, started, err := firstWorkflowTaskCompleted(ctx, c, workflowID, runID)
	if err != nil {
		return "", err
	}
	if first == 0 {
		// It ended before completing a workflow task: there is no point to
		// reset to. Start it again with the same input (hence the same
		// event id): its commit finds itself in the ledger if it happened.
		return restart(ctx, c, namespace, workflowID, started)
	}
	if reason == "" {
		reason = "trafficmanager mutations retry"
	}
	res, err := c.ResetWorkflowExecution(ctx, &workflowservice.ResetWorkflowExecutionRequest{
		Namespace:                 namespace,
		WorkflowExecution:         &commonpb.WorkflowExecution{WorkflowId: workflowID, RunId: runID},
		Reason:                    reason,
		WorkflowTaskFinishEventId: first,
		RequestId:                 workflowID + "/" + runID + "/retry",
	})
	if err != nil {
		return "", fmt.Errorf("reset %s: %w", workflowID, err)
	}
	return res.GetRunId(), nil
}

// firstWorkflowTaskCompleted returns the event id of the run's first
// completed workflow task (0 when it has none) and its start event.
func firstWorkflowTaskCompleted(ctx context.Context, c client.Client, workflowID, runID string) (int64, *historypb.WorkflowExecutionStartedEventAttributes, error) {
	it := c.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var started *historypb.WorkflowExecutionStartedEventAttributes
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return 0, nil, fmt.Errorf("history of %s: %w", workflowID, err)
		}
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			started = ev.GetWorkflowExecutionStartedEventAttributes()
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			return ev.GetEventId(), started, nil
		}
	}
	if started == nil {
		return 0, nil, fmt.Errorf("history of %s has no start event", workflowID)
	}
	return 0, started, nil
}

// restart starts a new run of a closed workflow with the input, task queue
// and search attributes of its start event. The id reuse policy lets it
// start only over a run that did not complete.
func restart(ctx context.Context, c client.Client, namespace, workflowID string, started *historypb.WorkflowExecutionStartedEventAttributes) (string, error) {
	res, err := c.WorkflowService().StartWorkflowExecution(ctx, &workflowservice.StartWorkflowExecutionRequest{
		Namespace:                namespace,
		WorkflowId:               workflowID,
		WorkflowType:             started.GetWorkflowType(),
		TaskQueue:                started.GetTaskQueue(),
		Input:                    started.GetInput(),
		SearchAttributes:         started.GetSearchAttributes(),
		Memo:                     started.GetMemo(),
		WorkflowTaskTimeout:      started.GetWorkflowTaskTimeout(),
		WorkflowRunTimeout:       started.GetWorkflowRunTimeout(),
		WorkflowExecutionTimeout: started.GetWorkflowExecutionTimeout(),
		WorkflowIdReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		RequestId:                workflowID + "/" + started.GetOriginalExecutionRunId() + "/restart",
		Identity:                 "trafficmanager mutations retry",
	})
	if err != nil {
		return "", fmt.Errorf("start %s again: %w", workflowID, err)
	}
	return res.GetRunId(), nil
}
