package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// policyAnswer is a tenant's approval policy as the api answers it.
type policyAnswer struct {
	Tenant          string `json:"tenant"`
	RequireApproval struct {
		Envs []string `json:"envs"`
	} `json:"require_approval"`
	ApprovalTimeout string `json:"approval_timeout"`
}

func (p policyAnswer) row(tenant string) []string {
	if p.Tenant != "" {
		tenant = p.Tenant
	}
	envs := strings.Join(p.RequireApproval.Envs, ",")
	if envs == "" {
		envs = "(none)"
	}
	return []string{tenant, envs, dash(p.ApprovalTimeout)}
}

var policyHeader = []string{"TENANT", "REQUIRE APPROVAL (ENVS)", "APPROVAL TIMEOUT"}

func newTenantsCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{Use: "tenants", Short: "Tenant settings: the approval policy (admin token required to set it)"}
	cf.register(cmd)
	policy := &cobra.Command{Use: "policy", Short: "Which envs of a tenant need an approval before a write applies"}
	path := func(tenant string) string { return "/api/v1/tenants/" + url.PathEscape(tenant) + "/policy" }
	show := func(c *cobra.Command, tenant string, raw json.RawMessage) error {
		var p policyAnswer
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("decoding the answer: %w", err)
		}
		return cf.print(c.OutOrStdout(), raw, policyHeader, [][]string{p.row(tenant)})
	}

	get := &cobra.Command{Use: "get <tenant>", Short: "Show a tenant's approval policy", Args: cobra.ExactArgs(1), RunE: func(c *cobra.Command, args []string) error {
		if err := cf.validate(); err != nil {
			return err
		}
		var raw json.RawMessage
		if _, err := cf.call(c.Context(), "GET", path(args[0]), nil, nil, &raw); err != nil {
			return err
		}
		return show(c, args[0], raw)
	}}

	var envs []string
	var timeout string
	set := &cobra.Command{
		Use:   "set <tenant>",
		Short: "Replace a tenant's approval policy",
		Long: `Replaces the tenant's approval policy: a write to a route whose env is listed waits for
an approver (mutations approve|reject) before it applies. Without --require-approval-env no env needs
an approval. --approval-timeout is how long a write waits for a decision before it expires.`,
		Example: "  trafficmanager tenants policy set team-a --require-approval-env prod --approval-timeout 72h",
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := cf.validate(); err != nil {
				return err
			}
			if timeout != "" {
				if d, err := time.ParseDuration(timeout); err != nil || d <= 0 {
					return usageErr("--approval-timeout must be a duration such as 72h")
				}
			}
			body := map[string]any{"require_approval": map[string]any{"envs": append([]string{}, envs...)}}
			if timeout != "" {
				body["approval_timeout"] = timeout
			}
			var raw json.RawMessage
			if _, err := cf.call(c.Context(), "PUT", path(args[0]), nil, body, &raw); err != nil {
				return err
			}
			return show(c, args[0], raw)
		},
	}
	set.Flags().StringSliceVar(&envs, "require-approval-env", nil, "an env whose writes need an approval (repeatable)")
	set.Flags().StringVar(&timeout, "approval-timeout", "", "how long a write waits for a decision before it expires (default: the api's)")

	policy.AddCommand(get, set)
	cmd.AddCommand(policy)
	return cmd
}
