package main

import (
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/trafficmanager/trafficmanager/routes"
)

type mutationAnswer struct {
	Route      routes.Route `json:"route"`
	Action     string       `json:"action"`
	Changed    bool         `json:"changed"`
	EventID    string       `json:"event_id"`
	WorkflowID string       `json:"workflow_id"`
	RunID      string       `json:"run_id"`
	Status     string       `json:"status"` // "pending", "scheduled" or "awaiting_approval" on 202
	NotBefore  string       `json:"not_before,omitempty"`
	RevertAt   string       `json:"revert_at,omitempty"`
}

// notBeforeValue turns --not-before into the body's not_before: an RFC 3339
// time as is, or a duration ("2h") from now.
func notBeforeValue(v string, now time.Time) (string, error) {
	if _, err := time.Parse(time.RFC3339, v); err == nil {
		return v, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(d).UTC().Format(time.RFC3339), nil
	}
	return "", usageErr("--not-before must be an RFC 3339 time (2026-12-01T09:00:00Z) or a duration from now (2h)")
}

// checkRevertAfter refuses a --revert-after that is no Go duration; its
// range (1s to 30 days) is the api's to decide.
func checkRevertAfter(v string) error {
	if _, err := time.ParseDuration(v); err != nil {
		return usageErr("--revert-after must be a duration such as 1h or 30m")
	}
	return nil
}

func routeRow(r routes.Route) []string {
	return []string{r.Tenant, r.Service, r.Env, r.Version, r.URL, strconv.FormatBool(r.IsActive), strconv.FormatInt(r.Revision, 10), r.UpdatedAt.UTC().Format(time.RFC3339)}
}

var routeHeader = []string{"TENANT", "SERVICE", "ENV", "VERSION", "URL", "ACTIVE", "REVISION", "UPDATED"}

func newRoutesCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{Use: "routes", Short: "Create, change and read routes through the api"}
	cf.register(cmd)

	var k routes.Key
	var u, changedBy, idemKey, ifMatch, notBefore, revertAfter string
	var inactive bool
	keyFlags := func(c *cobra.Command, withURL bool) {
		c.Flags().StringVar(&k.Tenant, "tenant", "", "tenant")
		c.Flags().StringVar(&k.Service, "service", "", "service")
		c.Flags().StringVar(&k.Env, "env", "", "environment")
		c.Flags().StringVar(&k.Version, "version", "", "version")
		if withURL {
			c.Flags().StringVar(&u, "url", "", "target URL")
		}
		c.Flags().StringVar(&changedBy, "changed-by", "", "who makes the change (default: the token's name)")
		c.Flags().StringVar(&idemKey, "idempotency-key", "", "makes a retried command the same mutation")
	}
	path := func() string {
		return "/api/v1/routes/" + url.PathEscape(k.Tenant) + "/" + url.PathEscape(k.Service) + "/" + url.PathEscape(k.Env) + "/" + url.PathEscape(k.Version)
	}
	mutate := func(c *cobra.Command, method, p string, body map[string]any) error {
		if err := cf.validate(); err != nil {
			return err
		}
		if changedBy != "" {
			body["changed_by"] = changedBy
		}
		if notBefore != "" {
			v, err := notBeforeValue(notBefore, time.Now())
			if err != nil {
				return err
			}
			body["not_before"] = v
		}
		if revertAfter != "" {
			if err := checkRevertAfter(revertAfter); err != nil {
				return err
			}
			body["revert_after"] = revertAfter
		}
		var out mutationAnswer
		status, err := cf.callWithHeaders(c.Context(), method, p, body, &out, "Idempotency-Key", idemKey, "If-Match", ifMatch)
		if err != nil {
			return err
		}
		if status == 202 {
			switch out.Status {
			case "scheduled":
				return cf.print(c.OutOrStdout(), out, []string{"STATUS", "NOT BEFORE", "WORKFLOW"}, [][]string{{out.Status, out.NotBefore, out.WorkflowID}})
			case "awaiting_approval":
				// `mutations approve|reject|cancel <workflow>` decide it.
				return cf.print(c.OutOrStdout(), out, []string{"STATUS", "NOT BEFORE", "WORKFLOW"}, [][]string{{out.Status, dash(out.NotBefore), out.WorkflowID}})
			}
			return cf.print(c.OutOrStdout(), out, []string{"STATUS", "WORKFLOW"}, [][]string{{"pending", out.WorkflowID}})
		}
		header := append([]string{"ACTION", "CHANGED"}, routeHeader...)
		row := append([]string{out.Action, strconv.FormatBool(out.Changed)}, routeRow(out.Route)...)
		if out.RevertAt != "" {
			header, row = append(header, "REVERT AT"), append(row, out.RevertAt)
		}
		// The workflow id is what `mutations status` takes.
		header, row = append(header, "WORKFLOW"), append(row, out.WorkflowID)
		return cf.print(c.OutOrStdout(), out, header, [][]string{row})
	}

	create := &cobra.Command{Use: "create", Short: "Create a route", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
		return mutate(c, "POST", "/api/v1/routes", map[string]any{
			"tenant": k.Tenant, "service": k.Service, "env": k.Env, "version": k.Version, "url": u, "active": !inactive,
		})
	}}
	keyFlags(create, true)
	create.Flags().BoolVar(&inactive, "inactive", false, "create the route inactive")

	update := &cobra.Command{Use: "update", Short: "Point a route at another URL", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
		return mutate(c, "PUT", path(), map[string]any{"url": u})
	}}
	keyFlags(update, true)
	activate := &cobra.Command{Use: "activate", Short: "Activate a route", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
		return mutate(c, "POST", path()+"/activate", map[string]any{})
	}}
	keyFlags(activate, false)
	deactivate := &cobra.Command{Use: "deactivate", Short: "Deactivate a route", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
		return mutate(c, "POST", path()+"/deactivate", map[string]any{})
	}}
	keyFlags(deactivate, false)
	var to int64
	rollback := &cobra.Command{Use: "rollback", Short: "Restore the url and active state of an earlier revision, as a new revision", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
		if to < 1 {
			return usageErr("--to must name a revision (1 or more); `routes history` lists them")
		}
		return mutate(c, "POST", path()+"/rollback", map[string]any{"revision": to})
	}}
	keyFlags(rollback, false)
	rollback.Flags().Int64Var(&to, "to", 0, "the revision to restore")
	for _, w := range []*cobra.Command{update, activate, deactivate, rollback} {
		w.Flags().StringVar(&ifMatch, "if-match", "", "apply only if the route is at this revision (its ETag)")
		w.Flags().StringVar(&revertAfter, "revert-after", "", "once applied, restore the previous state after this `DURATION` (1s to 720h) unless the route changed meanwhile; mutations cancel cancels the revert")
	}
	for _, w := range []*cobra.Command{create, update, activate, deactivate, rollback} {
		w.Flags().StringVar(&notBefore, "not-before", "", "apply at this `TIME` (RFC 3339, or a duration from now such as 2h); mutations cancel cancels it until then")
	}

	get := &cobra.Command{Use: "get", Short: "Show one route (active or not)", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
		if err := cf.validate(); err != nil {
			return err
		}
		var r routes.Route
		if _, err := cf.call(c.Context(), "GET", path(), nil, nil, &r); err != nil {
			return err
		}
		return cf.print(c.OutOrStdout(), r, routeHeader, [][]string{routeRow(r)})
	}}
	keyFlags(get, false)

	var limit int
	var active, cursor string
	list := &cobra.Command{Use: "list", Short: "List routes", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
		if err := cf.validate(); err != nil {
			return err
		}
		q := url.Values{}
		for name, v := range map[string]string{"tenant": k.Tenant, "service": k.Service, "env": k.Env, "active": active} {
			if v != "" {
				q.Set(name, v)
			}
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var all routes.Page
		for {
			if limit > 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			var p routes.Page
			if _, err := cf.call(c.Context(), "GET", "/api/v1/routes", q, nil, &p); err != nil {
				return err
			}
			all.Routes = append(all.Routes, p.Routes...)
			all.NextCursor = p.NextCursor // kept when --limit stops early
			if p.NextCursor == "" || (limit > 0 && len(all.Routes) >= limit) {
				break
			}
			q.Set("cursor", p.NextCursor)
		}
		rows := make([][]string, 0, len(all.Routes))
		for _, r := range all.Routes {
			rows = append(rows, routeRow(r))
		}
		if err := cf.print(c.OutOrStdout(), all, routeHeader, rows); err != nil {
			return err
		}
		printNextCursor(c.OutOrStdout(), &cf, all.NextCursor)
		return nil
	}}
	list.Flags().StringVar(&k.Tenant, "tenant", "", "only this tenant")
	list.Flags().StringVar(&k.Service, "service", "", "only this service")
	list.Flags().StringVar(&k.Env, "env", "", "only this environment")
	list.Flags().StringVar(&active, "active", "", "only active (true) or inactive (false) routes")
	list.Flags().IntVar(&limit, "limit", 0, "at most this many routes (default: all)")
	list.Flags().StringVar(&cursor, "cursor", "", "continue after a previous list's next cursor")

	cmd.AddCommand(create, update, activate, deactivate, rollback, get, list, newHistoryCmd(&cf), newImportCmd(&cf), newWatchCmd(&cf))
	return cmd
}

// printNextCursor ends a table with the cursor of the next page, when there
// is one (JSON output carries it as next_cursor).
func printNextCursor(w io.Writer, cf *clientFlags, cursor string) {
	if cf.output == "table" && cursor != "" {
		fmt.Fprintf(w, "next cursor: %s  (--cursor %s for the next page)\n", cursor, cursor)
	}
}
