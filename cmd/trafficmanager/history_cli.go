package main

import (
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/trafficmanager/trafficmanager/routes"
)

// newHistoryCmd is `routes history`: a route's revisions, newest first.
func newHistoryCmd(cf *clientFlags) *cobra.Command {
	var k routes.Key
	var limit int
	cmd := &cobra.Command{Use: "history", Short: "List a route's revisions, newest first", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
		if err := cf.validate(); err != nil {
			return err
		}
		p := "/api/v1/routes/" + url.PathEscape(k.Tenant) + "/" + url.PathEscape(k.Service) + "/" + url.PathEscape(k.Env) + "/" + url.PathEscape(k.Version) + "/history"
		q := url.Values{}
		var all routes.HistoryPage
		for {
			if limit > 0 {
				q.Set("limit", strconv.Itoa(min(limit-len(all.Revisions), 1000)))
			}
			var page routes.HistoryPage
			if _, err := cf.call(c.Context(), "GET", p, q, nil, &page); err != nil {
				return err
			}
			all.Revisions = append(all.Revisions, page.Revisions...)
			if page.NextCursor == "" || (limit > 0 && len(all.Revisions) >= limit) {
				break
			}
			q.Set("cursor", page.NextCursor)
		}
		rows := make([][]string, 0, len(all.Revisions))
		for _, r := range all.Revisions {
			action := string(r.Action)
			if r.RollbackTo != 0 {
				action += " (to " + strconv.FormatInt(r.RollbackTo, 10) + ")"
			}
			rows = append(rows, []string{strconv.FormatInt(r.Revision, 10), action, r.URL, strconv.FormatBool(r.IsActive),
				r.ChangedBy, r.OccurredAt.UTC().Format(time.RFC3339)})
		}
		return cf.print(c.OutOrStdout(), all, []string{"REVISION", "ACTION", "URL", "ACTIVE", "WHO", "WHEN"}, rows)
	}}
	cmd.Flags().StringVar(&k.Tenant, "tenant", "", "tenant")
	cmd.Flags().StringVar(&k.Service, "service", "", "service")
	cmd.Flags().StringVar(&k.Env, "env", "", "environment")
	cmd.Flags().StringVar(&k.Version, "version", "", "version")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many revisions (default: all)")
	return cmd
}
