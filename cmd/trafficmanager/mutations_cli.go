package main

import (
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/trafficmanager/trafficmanager/mutations"
)

func newMutationsCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{Use: "mutations", Short: "Inspect, list, approve, reject and cancel mutations; list failed ones and run them again"}
	cf.register(cmd)
	temporalAddr, namespace := os.Getenv("TM_TEMPORAL_ADDRESS"), os.Getenv("TM_TEMPORAL_NAMESPACE")
	if temporalAddr == "" {
		temporalAddr = "127.0.0.1:7233"
	}
	if namespace == "" {
		namespace = "default"
	}
	cmd.PersistentFlags().StringVar(&temporalAddr, "temporal-address", temporalAddr, "Temporal frontend for failed/retry (TM_TEMPORAL_ADDRESS)")
	cmd.PersistentFlags().StringVar(&namespace, "namespace", namespace, "Temporal namespace (TM_TEMPORAL_NAMESPACE)")
	dial := func(cmd *cobra.Command) (client.Client, error) {
		c, err := client.DialContext(cmd.Context(), client.Options{HostPort: temporalAddr, Namespace: namespace, Logger: quietTemporalLogger{}})
		if err != nil {
			return nil, &cliError{exitUnreachable, "cannot reach Temporal at " + temporalAddr + ": " + err.Error()}
		}
		return c, nil
	}

	status := &cobra.Command{Use: "status <workflow_id>", Short: "Show a mutation's status and steps", Args: cobra.ExactArgs(1), RunE: func(c *cobra.Command, args []string) error {
		if err := cf.validate(); err != nil {
			return err
		}
		var raw json.RawMessage
		if _, err := cf.call(c.Context(), "GET", "/api/v1/mutations/"+escapeWorkflowID(args[0]), nil, nil, &raw); err != nil {
			return err
		}
		return printMutationStatus(c.OutOrStdout(), &cf, raw)
	}}

	var since time.Duration
	var tenant string
	failed := &cobra.Command{Use: "failed", Short: "List mutations that failed, timed out or were terminated", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
		if err := cf.validate(); err != nil {
			return err
		}
		tc, err := dial(c)
		if err != nil {
			return err
		}
		defer tc.Close()
		list, err := mutations.ListFailed(c.Context(), tc, namespace, time.Now().Add(-since), tenant)
		if err != nil {
			return &cliError{exitAPIError, err.Error()}
		}
		rows := make([][]string, 0, len(list))
		for _, f := range list {
			rows = append(rows, []string{f.WorkflowID, f.RunID, f.Status, f.CloseTime.UTC().Format(time.RFC3339)})
		}
		if list == nil {
			list = []mutations.Failed{}
		}
		return cf.print(c.OutOrStdout(), list, []string{"WORKFLOW", "RUN", "STATUS", "CLOSED"}, rows)
	}}
	failed.Flags().DurationVar(&since, "since", 24*time.Hour, "how far back to look")
	failed.Flags().StringVar(&tenant, "tenant", "", "only this tenant's mutations")

	retry := &cobra.Command{Use: "retry <workflow_id>", Short: "Run a failed mutation again (same input, same event id)", Args: cobra.ExactArgs(1), RunE: func(c *cobra.Command, args []string) error {
		if err := cf.validate(); err != nil {
			return err
		}
		tc, err := dial(c)
		if err != nil {
			return err
		}
		defer tc.Close()
		runID, err := mutations.Retry(c.Context(), tc, namespace, args[0], "")
		if err != nil {
			return &cliError{exitAPIError, err.Error()}
		}
		out := map[string]string{"workflow_id": args[0], "run_id": runID, "status": "running"}
		return cf.print(c.OutOrStdout(), out, []string{"WORKFLOW", "NEW RUN", "STATUS"}, [][]string{{args[0], runID, "running"}})
	}}
	cancel := &cobra.Command{Use: "cancel <workflow_id>", Short: "Cancel a mutation that is scheduled (--not-before) or awaiting approval, or its pending revert (--revert-after)", Args: cobra.ExactArgs(1), RunE: func(c *cobra.Command, args []string) error {
		if err := cf.validate(); err != nil {
			return err
		}
		var raw json.RawMessage
		if _, err := cf.call(c.Context(), "POST", "/api/v1/mutations/"+escapeWorkflowID(args[0])+"/cancel", nil, nil, &raw); err != nil {
			return err
		}
		return printMutationStatus(c.OutOrStdout(), &cf, raw)
	}}
	approve := newDecisionCmd(&cf, "approve", "Approve a mutation awaiting approval (an approver or admin of its tenant, not its requester); it applies then")
	reject := newDecisionCmd(&cf, "reject", "Reject a mutation awaiting approval; it never applies")
	cmd.AddCommand(status, newMutationsListCmd(&cf), approve, reject, cancel, failed, retry)
	return cmd
}

// escapeWorkflowID escapes each segment of a workflow id but keeps its slashes.
func escapeWorkflowID(id string) string {
	parts := strings.Split(id, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// quietTemporalLogger drops the SDK's logs in CLI commands.
type quietTemporalLogger struct{}

func (quietTemporalLogger) Debug(string, ...any) {}
func (quietTemporalLogger) Info(string, ...any)  {}
func (quietTemporalLogger) Warn(string, ...any)  {}
func (quietTemporalLogger) Error(string, ...any) {}
