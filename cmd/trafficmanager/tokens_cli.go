package main

import (
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

type tokenAnswer struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	Tenants    []string   `json:"tenants"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	Token      string     `json:"token,omitempty"`
}

func (t tokenAnswer) row() []string {
	when := func(p *time.Time) string {
		if p == nil {
			return "-"
		}
		return p.UTC().Format(time.RFC3339)
	}
	tenants := strings.Join(t.Tenants, ",")
	if tenants == "" {
		tenants = "*"
	}
	return []string{t.ID, t.Name, t.Role, tenants, t.CreatedAt.UTC().Format(time.RFC3339), when(t.LastUsedAt), when(t.RevokedAt)}
}

var tokenHeader = []string{"ID", "NAME", "ROLE", "TENANTS", "CREATED", "LAST USED", "REVOKED"}

func newTokensCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{Use: "tokens", Short: "Manage API tokens (admin token required)"}
	cf.register(cmd)

	var name, role string
	var tenants []string
	create := &cobra.Command{Use: "create", Short: "Create a token and print its secret once", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
		if err := cf.validate(); err != nil {
			return err
		}
		var out tokenAnswer
		body := map[string]any{"name": name, "role": role, "tenants": tenants}
		if _, err := cf.call(c.Context(), "POST", "/api/v1/tokens", nil, body, &out); err != nil {
			return err
		}
		return cf.print(c.OutOrStdout(), out, append(tokenHeader, "TOKEN (shown once)"), [][]string{append(out.row(), out.Token)})
	}}
	create.Flags().StringVar(&name, "name", "", "who or what uses the token (becomes changed_by)")
	create.Flags().StringVar(&role, "role", "", "admin, writer, approver (reads, approve and reject), reader or resolver")
	create.Flags().StringSliceVar(&tenants, "tenant", nil, "tenant the token may act on (repeatable; not for admin tokens, which act on every tenant)")

	list := &cobra.Command{Use: "list", Short: "List tokens (never their secrets)", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
		if err := cf.validate(); err != nil {
			return err
		}
		var out struct {
			Tokens []tokenAnswer `json:"tokens"`
		}
		if _, err := cf.call(c.Context(), "GET", "/api/v1/tokens", nil, nil, &out); err != nil {
			return err
		}
		rows := make([][]string, 0, len(out.Tokens))
		for _, t := range out.Tokens {
			rows = append(rows, t.row())
		}
		return cf.print(c.OutOrStdout(), out, tokenHeader, rows)
	}}

	revoke := &cobra.Command{Use: "revoke <id>", Short: "Revoke a token", Args: cobra.ExactArgs(1), RunE: func(c *cobra.Command, args []string) error {
		if err := cf.validate(); err != nil {
			return err
		}
		var out tokenAnswer
		if _, err := cf.call(c.Context(), "DELETE", "/api/v1/tokens/"+url.PathEscape(args[0]), nil, nil, &out); err != nil {
			return err
		}
		return cf.print(c.OutOrStdout(), out, tokenHeader, [][]string{out.row()})
	}}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
