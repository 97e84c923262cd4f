package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// rolloutAnswer is a rollout's status (GET and the actions' 200), or the
// start's 201 (id, workflow_id, status).
type rolloutAnswer struct {
	ID         string `json:"id"`
	WorkflowID string `json:"workflow_id"`
	To         string `json:"to,omitempty"`
	Status     string `json:"status"`
	Step       int    `json:"step"`
	Weight     int    `json:"weight"`
	Steps      []struct {
		Weight     int            `json:"weight"`
		Pause      string         `json:"pause"`
		State      string         `json:"state"`
		Weights    map[string]int `json:"weights,omitempty"`
		StartedAt  string         `json:"started_at,omitempty"`
		FinishedAt string         `json:"finished_at,omitempty"`
	} `json:"steps,omitempty"`
	Reason        string `json:"reason,omitempty"`
	Error         string `json:"error,omitempty"`
	CheckFailures int    `json:"check_failures,omitempty"`
}

// parseRolloutStep reads --step WEIGHT[:PAUSE], as in 10:5m or 100.
func parseRolloutStep(s string) (map[string]any, error) {
	w, pause, hasPause := strings.Cut(s, ":")
	n, err := strconv.Atoi(w)
	if err != nil {
		return nil, usageErr("--step %q: want WEIGHT[:PAUSE], as in 10:5m or 100", s)
	}
	step := map[string]any{"weight": n}
	if hasPause {
		if _, err := time.ParseDuration(pause); err != nil {
			return nil, usageErr("--step %q: the pause must be a duration such as 5m", s)
		}
		step["pause"] = pause
	}
	return step, nil
}

// rolloutPath is the api path of rollout id ({tenant}/{service}/{env}/{key},
// as `rollouts start` prints it; a workflow id rollout/... works too).
func rolloutPath(id string) (string, error) {
	id = strings.TrimPrefix(strings.Trim(id, "/"), "rollout/")
	if strings.Count(id, "/") != 3 {
		return "", usageErr("a rollout id is tenant/service/env/key, as `rollouts start` prints it")
	}
	return "/api/v1/rollouts/" + id, nil
}

// rolloutListAnswer is GET /api/v1/rollouts's answer.
type rolloutListAnswer struct {
	Rollouts []struct {
		ID        string `json:"id"`
		Status    string `json:"status"`
		To        string `json:"to"`
		StartedAt string `json:"started_at"`
	} `json:"rollouts"`
	NextCursor string `json:"next_cursor"`
}

// newRolloutsListCmd is `rollouts list`: one page of rollouts from
// Temporal visibility, scoped to the token's tenants.
func newRolloutsListCmd(cf *clientFlags) *cobra.Command {
	var tenant, service, env, status, cursor string
	var limit int
	cmd := &cobra.Command{Use: "list", Short: "List rollouts (newest first), one page at a time", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := cf.validate(); err != nil {
				return err
			}
			if limit < 0 || limit > 200 {
				return usageErr("--limit must be 1 to 200")
			}
			q := pageQuery(limit, "tenant", tenant, "service", service, "env", env, "status", status, "cursor", cursor)
			var raw json.RawMessage
			if _, err := cf.call(c.Context(), "GET", "/api/v1/rollouts", q, nil, &raw); err != nil {
				return err
			}
			var out rolloutListAnswer
			if err := json.Unmarshal(raw, &out); err != nil {
				return fmt.Errorf("decoding the answer: %w", err)
			}
			rows := make([][]string, 0, len(out.Rollouts))
			for _, r := range out.Rollouts {
				rows = append(rows, []string{r.ID, r.Status, dash(r.To), dash(r.StartedAt)})
			}
			if err := cf.print(c.OutOrStdout(), raw, []string{"ID", "STATUS", "TO", "STARTED"}, rows); err != nil {
				return err
			}
			printNextCursor(c.OutOrStdout(), cf, out.NextCursor)
			return nil
		}}
	cmd.Flags().StringVar(&tenant, "tenant", "", "only this tenant's rollouts")
	cmd.Flags().StringVar(&service, "service", "", "only this service's rollouts")
	cmd.Flags().StringVar(&env, "env", "", "only this environment's rollouts")
	cmd.Flags().StringVar(&status, "status", "", "only rollouts in this state: running, paused, awaiting_approval, completed, aborted, rejected, expired, cancelled or failed")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many rollouts (1 to 200; default: the api's, 50)")
	cmd.Flags().StringVar(&cursor, "cursor", "", "the next page's cursor, as the previous page printed it")
	return cmd
}

// newRolloutsCmd is `rollouts start|status|list|pause|resume|promote|abort`.
func newRolloutsCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{Use: "rollouts", Short: "Progressive rollouts of a version through weighted splits (docs/rollouts.md)"}
	cf.register(cmd)
	show := func(c *cobra.Command, out rolloutAnswer) error {
		rows := [][]string{{out.ID, out.Status, strconv.Itoa(out.Step), strconv.Itoa(out.Weight), dash(out.Reason)}}
		if err := cf.print(c.OutOrStdout(), out, []string{"ID", "STATUS", "STEP", "WEIGHT", "REASON"}, rows); err != nil {
			return err
		}
		if cf.output != "table" || len(out.Steps) == 0 {
			return nil
		}
		var steps [][]string
		for i, s := range out.Steps {
			steps = append(steps, []string{strconv.Itoa(i + 1), strconv.Itoa(s.Weight), dash(s.Pause), s.State, formatWeights(s.Weights), dash(s.StartedAt), dash(s.FinishedAt)})
		}
		c.Println()
		return cf.print(c.OutOrStdout(), nil, []string{"#", "WEIGHT", "PAUSE", "STATE", "SPLIT", "STARTED", "FINISHED"}, steps)
	}

	var tenant, service, env, to, checkURL, checkInterval, idemKey, changedBy string
	var stepFlags []string
	var checkMax int
	start := &cobra.Command{Use: "start", Short: "Start a rollout: --to v2 --step 10:5m --step 50:10m --step 100", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := cf.validate(); err != nil {
				return err
			}
			if len(stepFlags) == 0 {
				return usageErr("give at least one --step, the last one 100")
			}
			steps := make([]map[string]any, 0, len(stepFlags))
			for _, s := range stepFlags {
				st, err := parseRolloutStep(s)
				if err != nil {
					return err
				}
				steps = append(steps, st)
			}
			body := map[string]any{"tenant": tenant, "service": service, "env": env, "to": to, "steps": steps}
			if changedBy != "" {
				body["changed_by"] = changedBy
			}
			if checkURL != "" {
				body["check"] = map[string]any{"url": checkURL, "interval": checkInterval, "max_failures": checkMax}
			}
			var out rolloutAnswer
			if _, err := cf.callWithHeaders(c.Context(), "POST", "/api/v1/rollouts", body, &out, "Idempotency-Key", idemKey); err != nil {
				return err
			}
			return cf.print(c.OutOrStdout(), out, []string{"ID", "STATUS", "WORKFLOW"}, [][]string{{out.ID, out.Status, out.WorkflowID}})
		}}
	start.Flags().StringVar(&tenant, "tenant", "", "tenant")
	start.Flags().StringVar(&service, "service", "", "service")
	start.Flags().StringVar(&env, "env", "", "environment")
	start.Flags().StringVar(&to, "to", "", "the version to roll out (an active route of the env)")
	start.Flags().StringArrayVar(&stepFlags, "step", nil, "WEIGHT[:PAUSE] (repeat; weights increasing, the last 100), as in 10:5m")
	start.Flags().StringVar(&checkURL, "check-url", "", "http(s) URL called every --check-interval during each pause")
	start.Flags().StringVar(&checkInterval, "check-interval", "30s", "how often the check URL is called (at least 1s)")
	start.Flags().IntVar(&checkMax, "check-max-failures", 3, "failed checks (non-2xx or errors, over the whole rollout) that abort it")
	start.Flags().StringVar(&idemKey, "idempotency-key", "", "the rollout's key (default a fresh id): a retried command is the same rollout")
	start.Flags().StringVar(&changedBy, "changed-by", "", "who the split changes are recorded for (default: the token's name)")

	status := &cobra.Command{Use: "status <id>", Short: "Show a rollout's status and steps", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := cf.validate(); err != nil {
				return err
			}
			path, err := rolloutPath(args[0])
			if err != nil {
				return err
			}
			var out rolloutAnswer
			if _, err := cf.call(c.Context(), "GET", path, nil, nil, &out); err != nil {
				return err
			}
			return show(c, out)
		}}
	cmd.AddCommand(start, status, newRolloutsListCmd(&cf))
	for _, a := range []struct{ name, short string }{
		{"pause", "Pause a rollout: its pause's remaining time is held"},
		{"resume", "Resume a paused rollout"},
		{"promote", "Give the new version 100 % now and complete the rollout"},
		{"abort", "Abort a rollout and restore the split it started from"},
	} {
		cmd.AddCommand(&cobra.Command{Use: a.name + " <id>", Short: a.short, Args: cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				if err := cf.validate(); err != nil {
					return err
				}
				path, err := rolloutPath(args[0])
				if err != nil {
					return err
				}
				var out rolloutAnswer
				if _, err := cf.call(c.Context(), "POST", path+"/"+a.name, nil, nil, &out); err != nil {
					return err
				}
				return show(c, out)
			}})
	}
	return cmd
}
