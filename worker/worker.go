// Package worker builds the Temporal worker that runs route mutation
// workflows and their activities, and registers the search attributes the
// Temporal UI filters mutations by.
package worker

import (
	"context"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/trafficmanager/trafficmanager/activities"
	"github.com/trafficmanager/trafficmanager/workflows"
)

// Options tune the worker.
type Options struct {
	// StopTimeout is how long a stopping worker lets running activities
	// finish (graceful draining).
	StopTimeout time.Duration
}

// New returns a worker on taskQueue with RouteMutation, RouteBatch and every activity of
// acts registered. Start it with Run or Start/Stop.
func New(c client.Client, taskQueue string, acts *activities.Activities, o Options) sdkworker.Worker {
	if o.StopTimeout == 0 {
		o.StopTimeout = 10 * time.Second
	}
	w := sdkworker.New(c, taskQueue, sdkworker.Options{
		WorkerStopTimeout: o.StopTimeout,
	})
	Register(w, acts)
	return w
}

// Register registers the workflows and activities on any registry (a real
// worker, a test environment or a replayer).
func Register(r interface {
	RegisterWorkflowWithOptions(any, workflow.RegisterOptions)
	RegisterActivityWithOptions(any, activity.RegisterOptions)
}, acts *activities.Activities) {
	r.RegisterWorkflowWithOptions(workflows.RouteMutation, workflow.RegisterOptions{Name: workflows.WorkflowType})
	r.RegisterWorkflowWithOptions(workflows.RouteBatch, workflow.RegisterOptions{Name: workflows.BatchWorkflowType})
	r.RegisterWorkflowWithOptions(workflows.SplitMutation, workflow.RegisterOptions{Name: workflows.SplitWorkflowType})
	r.RegisterWorkflowWithOptions(workflows.Rollout, workflow.RegisterOptions{Name: workflows.RolloutWorkflowType})
	r.RegisterWorkflowWithOptions(workflows.RolloutLock, workflow.RegisterOptions{Name: workflows.RolloutLockWorkflowType})
	r.RegisterActivityWithOptions(acts, activity.RegisterOptions{})
}

// EnsureSearchAttributes registers the Tm* keyword (and keyword-list) attributes in namespace
// when they are missing (a dev server started with --search-attribute
// already has them).
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	list, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes: %w", err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, name := range workflows.SearchAttributeNames {
		if _, ok := list.GetCustomAttributes()[name]; !ok {
			missing[name] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
		}
	}
	for _, name := range workflows.KeywordListAttributeNames {
		if _, ok := list.GetCustomAttributes()[name]; !ok {
			missing[name] = enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: namespace, SearchAttributes: missing,
	})
	if err != nil {
		return fmt.Errorf("add search attributes: %w", err)
	}
	return nil
}
