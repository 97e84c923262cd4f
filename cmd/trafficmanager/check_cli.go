package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/config"
	"github.com/trafficmanager/trafficmanager/consistency"
)

// exitInconsistent is check's answer when an invariant does not hold; a
// store it cannot reach or read is exitUnreachable, so a script can tell
// "broken" from "could not look".
const exitInconsistent = 1

// checkConnectTimeout bounds each store's connection attempt: check is run
// by hand and by scripts, which want a quick 3 rather than a hang.
const checkConnectTimeout = 3 * time.Second

// newCheckCmd is `trafficmanager check`: the exactly-once invariants,
// verified across Postgres and the audit store directly (not via the api).
func newCheckCmd() *cobra.Command {
	var tenant, output string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Verify the exactly-once invariants across Postgres and the audit store",
		Long: "Compares every route's revision with its ledger rows (route_ledger) and its audit documents:\n" +
			"one ledger row and one audit document per revision, the audit document carrying the ledger's\n" +
			"event id, the newest ledger row holding the route's state, nothing for routes or revisions that\n" +
			"do not exist. Prints one line per discrepancy. Reads TM_DATABASE_URL, TM_MONGO_URI and\n" +
			"TM_MONGO_DATABASE; only reads. Exit 0: consistent, 1: discrepancies, 2: bad flags or\n" +
			"configuration, 3: a store cannot be reached or read.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return usageErr("--output must be table or json")
			}
			cfg, err := loadConfig()
			if err == nil {
				err = cfg.Require("TM_DATABASE_URL", "TM_MONGO_URI")
			}
			if err != nil {
				return &cliError{exitUsage, err.Error()}
			}
			rep, err := runCheck(c.Context(), cfg, tenant)
			if err != nil {
				return err
			}
			if err := printCheck(c.OutOrStdout(), output, rep); err != nil {
				return err
			}
			if !rep.Consistent() {
				return &cliError{exitInconsistent, fmt.Sprintf("%d discrepancies found", len(rep.Discrepancies))}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "check only this tenant (default: every tenant in either store)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

// runCheck connects to both stores and runs the check; every failure to
// reach or read a store is exitUnreachable.
func runCheck(ctx context.Context, cfg config.Config, tenant string) (consistency.Report, error) {
	unreachable := func(format string, args ...any) error {
		return &cliError{exitUnreachable, fmt.Sprintf(format, args...)}
	}
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return consistency.Report{}, usageErr("TM_DATABASE_URL: %v", err)
	}
	pcfg.ConnConfig.ConnectTimeout = checkConnectTimeout
	pcfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on" // it only reads; make sure of it
	pcfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return consistency.Report{}, unreachable("cannot reach Postgres (TM_DATABASE_URL): %v", err)
	}
	defer pool.Close()
	pctx, cancel := context.WithTimeout(ctx, 2*checkConnectTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		return consistency.Report{}, unreachable("cannot reach Postgres (TM_DATABASE_URL): %v", err)
	}

	// No client-wide timeout: it would bound the whole scan of the
	// collection, which may take minutes on a large audit store.
	mc, err := mongo.Connect(options.Client().ApplyURI(cfg.MongoURI).
		SetServerSelectionTimeout(checkConnectTimeout).SetConnectTimeout(checkConnectTimeout))
	if err != nil {
		return consistency.Report{}, unreachable("cannot reach the audit store (TM_MONGO_URI): %v", err)
	}
	defer mc.Disconnect(context.Background()) //nolint:errcheck
	if err := mc.Ping(pctx, nil); err != nil {
		return consistency.Report{}, unreachable("cannot reach the audit store (TM_MONGO_URI): %v", err)
	}

	rep, err := consistency.Check(ctx, pool, mc.Database(cfg.MongoDatabase).Collection(audit.CollectionName), tenant)
	if err != nil {
		return rep, unreachable("check stopped: %v", err)
	}
	return rep, nil
}

// printCheck writes the report: as one JSON object, or one line per
// discrepancy and a summary line.
func printCheck(w io.Writer, output string, rep consistency.Report) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Consistent bool `json:"consistent"`
			consistency.Report
		}{rep.Consistent(), rep})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, d := range rep.Discrepancies {
		rev := "-"
		if d.Revision != 0 {
			rev = strconv.FormatInt(d.Revision, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Route, rev, d.Kind, d.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict := "consistent:"
	if !rep.Consistent() {
		verdict = fmt.Sprintf("inconsistent: %d discrepancies;", len(rep.Discrepancies))
	}
	_, err := fmt.Fprintf(w, "%s checked %d routes of %d tenants (%d revisions, %d ledger rows, %d audit documents)\n",
		verdict, rep.Routes, rep.Tenants, rep.Revisions, rep.LedgerRows, rep.AuditDocs)
	return err
}
