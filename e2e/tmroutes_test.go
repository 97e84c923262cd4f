package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
)

// An imported route can be found in the Temporal UI (and with `temporal
// workflow list --query`) by service, env and version: its batch workflow
// carries TmRoutes = 'service/env/version'.
func TestABatchIsFoundByTheRoutesItCreated(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, 10*time.Second)
	tenant := testenv.Name(t, "tmr")
	res := p.do(t, "POST", "/api/v1/routes/batch", map[string]any{"routes": []map[string]any{
		{"tenant": tenant, "service": "search", "env": "prod", "version": "v1", "url": "https://s.example/v1"},
		{"tenant": tenant, "service": "search", "env": "prod", "version": "v2", "url": "https://s.example/v2"},
	}})
	require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	wf := res.Body["workflow_id"].(string)

	query := fmt.Sprintf("TmTenant = '%s' AND TmRoutes = 'search/prod/v2'", tenant)
	eventually(t, 20*time.Second, func() bool {
		list, err := p.tc.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default", Query: query})
		return err == nil && len(list.GetExecutions()) == 1 && list.GetExecutions()[0].GetExecution().GetWorkflowId() == wf
	}, "the batch is listed by "+query)
}
