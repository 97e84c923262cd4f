package main

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trafficmanager/trafficmanager/routes"
)

// splitAnswer is GET split's body and the "split" of a split mutation's.
type splitAnswer struct {
	Weights  map[string]int `json:"weights"`
	Revision int64          `json:"revision"`
}

// splitMutationAnswer is a split write's answer (200/201), or its 202.
type splitMutationAnswer struct {
	Split      splitAnswer `json:"split"`
	Action     string      `json:"action"`
	Changed    bool        `json:"changed"`
	EventID    string      `json:"event_id"`
	WorkflowID string      `json:"workflow_id"`
	Status     string      `json:"status,omitempty"`
	NotBefore  string      `json:"not_before,omitempty"`
}

// parseWeights reads "v1=90,v2=10".
func parseWeights(s string) (map[string]int, error) {
	w := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		v, n, ok := strings.Cut(strings.TrimSpace(part), "=")
		weight, err := strconv.Atoi(n)
		if !ok || v == "" || err != nil {
			return nil, usageErr("--weights must be version=percent pairs, as in v1=90,v2=10")
		}
		if _, dup := w[v]; dup {
			return nil, usageErr("--weights names %s twice", v)
		}
		w[v] = weight
	}
	return w, nil
}

func formatWeights(w map[string]int) string {
	parts := make([]string, 0, len(w))
	for _, v := range routes.Weights(w).Versions() {
		parts = append(parts, v+"="+strconv.Itoa(w[v]))
	}
	return strings.Join(parts, ",")
}

// newSplitsCmd is `splits get|set|delete`: an env's weighted split.
func newSplitsCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{Use: "splits", Short: "Read and change an env's weighted traffic split through the api"}
	cf.register(cmd)
	var k routes.SplitKey
	var weights, changedBy, idemKey, ifMatch, notBefore string
	keyFlags := func(c *cobra.Command) {
		c.Flags().StringVar(&k.Tenant, "tenant", "", "tenant")
		c.Flags().StringVar(&k.Service, "service", "", "service")
		c.Flags().StringVar(&k.Env, "env", "", "environment")
	}
	writeFlags := func(c *cobra.Command) {
		keyFlags(c)
		c.Flags().StringVar(&changedBy, "changed-by", "", "who makes the change (default: the token's name)")
		c.Flags().StringVar(&idemKey, "idempotency-key", "", "makes a retried command the same mutation")
		c.Flags().StringVar(&ifMatch, "if-match", "", "apply only if the split is at this revision (its ETag)")
		c.Flags().StringVar(&notBefore, "not-before", "", "apply at this `TIME` (RFC 3339), at most 90 days ahead")
	}
	path := func() string {
		return "/api/v1/splits/" + url.PathEscape(k.Tenant) + "/" + url.PathEscape(k.Service) + "/" + url.PathEscape(k.Env)
	}
	write := func(c *cobra.Command, method string, body map[string]any) error {
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
		var out splitMutationAnswer
		status, err := cf.callWithHeaders(c.Context(), method, path(), body, &out, "Idempotency-Key", idemKey, "If-Match", ifMatch)
		if err != nil {
			return err
		}
		if status == 202 {
			return cf.print(c.OutOrStdout(), out, []string{"STATUS", "NOT BEFORE", "WORKFLOW"}, [][]string{{out.Status, dash(out.NotBefore), out.WorkflowID}})
		}
		return cf.print(c.OutOrStdout(), out, []string{"ACTION", "CHANGED", "WEIGHTS", "REVISION", "WORKFLOW"},
			[][]string{{out.Action, strconv.FormatBool(out.Changed), formatWeights(out.Split.Weights), strconv.FormatInt(out.Split.Revision, 10), out.WorkflowID}})
	}

	get := &cobra.Command{Use: "get", Short: "Show an env's split", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
		if err := cf.validate(); err != nil {
			return err
		}
		var out splitAnswer
		if _, err := cf.call(c.Context(), "GET", path(), nil, nil, &out); err != nil {
			return err
		}
		return cf.print(c.OutOrStdout(), out, []string{"WEIGHTS", "REVISION"}, [][]string{{formatWeights(out.Weights), strconv.FormatInt(out.Revision, 10)}})
	}}
	keyFlags(get)

	set := &cobra.Command{Use: "set", Short: "Set an env's split (--weights v1=90,v2=10)", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
		w, err := parseWeights(weights)
		if err != nil {
			return err
		}
		return write(c, "PUT", map[string]any{"weights": w})
	}}
	writeFlags(set)
	set.Flags().StringVar(&weights, "weights", "", "version=percent pairs summing to 100, as in v1=90,v2=10")

	del := &cobra.Command{Use: "delete", Short: "Delete an env's split", Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
		return write(c, "DELETE", map[string]any{})
	}}
	writeFlags(del)

	cmd.AddCommand(get, set, del)
	return cmd
}
