package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/audit"
)

// newAuditCmd is `trafficmanager audit`: the backfill, which talks to Kafka
// and MongoDB directly, and the query commands, which call the api.
func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Query the audit trail, or rebuild it from the event topic"}
	cmd.AddCommand(newAuditBackfillCmd())
	cmd.AddCommand(newAuditQueryCmds()...)
	return cmd
}

func newAuditBackfillCmd() *cobra.Command {
	var fromBeginning bool
	var sinceFlag string
	cmd := &cobra.Command{
		Use:   "backfill",
		Short: "Rebuild missing audit documents from the route-events topic (idempotent)",
		Long: "Reads every partition of TM_KAFKA_TOPIC from its first offset up to the end seen at start,\n" +
			"without a consumer group (nothing is committed), and inserts the audit document of every\n" +
			"event that is missing. Running it again writes nothing new.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if fromBeginning == (sinceFlag != "") {
				return usageErr("choose one of --from-beginning or --since RFC3339")
			}
			var since time.Time
			if sinceFlag != "" {
				t, err := time.Parse(time.RFC3339Nano, sinceFlag)
				if err != nil {
					return usageErr("--since must be an RFC 3339 time, e.g. 2025-01-02T15:04:05Z")
				}
				since = t.UTC()
			}
			cfg, err := loadConfig()
			if err == nil {
				err = cfg.Require("TM_KAFKA_BROKERS", "TM_MONGO_URI")
			}
			if err != nil {
				return err
			}
			log, err := newLogger(cfg)
			if err != nil {
				return err
			}
			defer log.Sync() //nolint:errcheck
			ctx := c.Context()
			mc, err := openMongo(ctx, cfg)
			if err != nil {
				return err
			}
			defer mc.Disconnect(context.Background()) //nolint:errcheck
			store := audit.NewStore(mc.Database(cfg.MongoDatabase))
			// The unique event_id index is what makes the backfill idempotent.
			if err := store.EnsureIndexes(ctx, cfg.AuditRetention); errors.Is(err, audit.ErrRetentionUnsupported) {
				log.Warn("audit retention not enforced", zap.Error(err))
			} else if err != nil {
				return fmt.Errorf("audit store (TM_MONGO_URI): %w", err)
			}
			st, err := audit.Backfill(ctx, store, cfg.KafkaBrokers, cfg.KafkaTopic, since, log.Named("backfill"))
			fmt.Fprintf(c.OutOrStdout(), "read %d, written %d, already present %d\n", st.Read, st.Written, st.AlreadyPresent)
			if st.Skipped > 0 {
				fmt.Fprintf(c.OutOrStdout(), "skipped %d (undecodable, or before --since)\n", st.Skipped)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&fromBeginning, "from-beginning", false, "replay every event still on the topic")
	cmd.Flags().StringVar(&sinceFlag, "since", "", "replay only events that occurred at or after this RFC 3339 time")
	return cmd
}

type auditPage struct {
	Events     []audit.Document `json:"events"`
	NextCursor string           `json:"next_cursor,omitempty"`
}

var auditHeader = []string{"OCCURRED", "ACTION", "TENANT", "SERVICE", "ENV", "VERSION", "URL", "PREVIOUS URL", "PREVIOUS STATE", "CHANGED BY", "EVENT ID"}

func auditRow(d audit.Document) []string {
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	return []string{d.OccurredAt.UTC().Format(time.RFC3339), d.Action, d.Route.Tenant, d.Route.Service, d.Route.Env, d.Route.Version,
		dash(d.URL), dash(d.PreviousURL), dash(d.PreviousState), dash(d.ChangedBy), d.EventID}
}

// newAuditQueryCmds are `audit route|recent|action|time-range`.
func newAuditQueryCmds() []*cobra.Command {
	var cf clientFlags
	var limit int
	var cursor string
	// query fetches pages from path until limit events or the end, and
	// prints them; in JSON the next_cursor to continue with is kept.
	query := func(c *cobra.Command, path string, q url.Values) error {
		if err := cf.validate(); err != nil {
			return err
		}
		if limit < 1 {
			return usageErr("--limit must be at least 1")
		}
		var all auditPage
		all.Events = []audit.Document{}
		next := cursor
		for {
			q.Set("limit", strconv.Itoa(min(limit-len(all.Events), 1000)))
			if next != "" {
				q.Set("cursor", next)
			}
			var p auditPage
			if _, err := cf.call(c.Context(), "GET", path, q, nil, &p); err != nil {
				return err
			}
			all.Events = append(all.Events, p.Events...)
			next = p.NextCursor
			if next == "" || len(all.Events) >= limit {
				break
			}
		}
		all.NextCursor = next
		rows := make([][]string, 0, len(all.Events))
		for _, d := range all.Events {
			rows = append(rows, auditRow(d))
		}
		if err := cf.print(c.OutOrStdout(), all, auditHeader, rows); err != nil {
			return err
		}
		printNextCursor(c.OutOrStdout(), &cf, all.NextCursor)
		return nil
	}
	common := func(c *cobra.Command) *cobra.Command {
		cf.register(c)
		c.Flags().IntVar(&limit, "limit", 100, "at most this many events, newest first")
		c.Flags().StringVar(&cursor, "cursor", "", "continue after a previous answer's next_cursor")
		return c
	}

	var tenant, service, env, version string
	route := common(&cobra.Command{Use: "route", Short: "History of one route", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
		return query(c, "/api/v1/audit/route", url.Values{"tenant": {tenant}, "service": {service}, "env": {env}, "version": {version}})
	}})
	route.Flags().StringVar(&tenant, "tenant", "", "tenant")
	route.Flags().StringVar(&service, "service", "", "service")
	route.Flags().StringVar(&env, "env", "", "environment")
	route.Flags().StringVar(&version, "version", "", "version")

	// withTenant adds the optional tenant filter of the other queries.
	withTenant := func(q url.Values) url.Values {
		if tenant != "" {
			q.Set("tenant", tenant)
		}
		return q
	}
	var days int
	recent := common(&cobra.Command{Use: "recent", Short: "Changes of the last N days", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
		return query(c, "/api/v1/audit/recent", withTenant(url.Values{"days": {strconv.Itoa(days)}}))
	}})
	recent.Flags().IntVar(&days, "days", 7, "how many days back, 1 to 365")

	var action string
	byAction := common(&cobra.Command{Use: "action", Short: "Changes of one action (created, updated, activated, deactivated, rolled_back)", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
		return query(c, "/api/v1/audit/action", withTenant(url.Values{"action": {action}}))
	}})
	byAction.Flags().StringVar(&action, "action", "", "created, updated, activated, deactivated or rolled_back")

	var start, end string
	timeRange := common(&cobra.Command{Use: "time-range", Short: "Changes with start <= occurred_at < end", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
		return query(c, "/api/v1/audit/time-range", withTenant(url.Values{"start": {start}, "end": {end}}))
	}})
	timeRange.Flags().StringVar(&start, "start", "", "RFC 3339 start (inclusive)")
	timeRange.Flags().StringVar(&end, "end", "", "RFC 3339 end (exclusive)")

	for _, c := range []*cobra.Command{recent, byAction, timeRange} {
		c.Flags().StringVar(&tenant, "tenant", "", "only this tenant")
	}
	return []*cobra.Command{route, recent, byAction, timeRange}
}
