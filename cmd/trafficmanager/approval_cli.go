package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// actorField is a principal in an answer: the API may name it with a string
// or with an object {"id", "name"}; the CLI shows the name (else the id).
type actorField string

func (a *actorField) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		*a = actorField(s)
		return nil
	}
	var o struct{ ID, Name string }
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	*a = actorField(o.Name)
	if o.Name == "" {
		*a = actorField(o.ID)
	}
	return nil
}

// routeField is a mutation's route (a key or a whole route) shown as
// tenant/service/env/version.
type routeField struct {
	Tenant, Service, Env, Version string
}

func (r routeField) String() string {
	if r.Tenant == "" {
		return "-"
	}
	return r.Tenant + "/" + r.Service + "/" + r.Env + "/" + r.Version
}

// mutationStatusAnswer is the part of a mutation status the table shows;
// --output json prints the answer as the API sent it.
type mutationStatusAnswer struct {
	WorkflowID  string            `json:"workflow_id"`
	Status      string            `json:"status"`
	Action      string            `json:"action"`
	EventID     string            `json:"event_id"`
	Steps       map[string]string `json:"steps"`
	NotBefore   string            `json:"not_before"`
	RequestedBy actorField        `json:"requested_by"`
	ApprovedBy  actorField        `json:"approved_by"`
	RejectedBy  actorField        `json:"rejected_by"`
	Comment     string            `json:"comment"`
	ExpiresAt   string            `json:"expires_at"`
	RevertAt    string            `json:"revert_at"`
	Revert      *struct {
		State    string `json:"state"`
		Revision int64  `json:"revision"`
		Reason   string `json:"reason"`
	} `json:"revert"`
	Error *struct{ Code, Message string } `json:"error"`
	// A batch (batch/...) reports counts instead of one route.
	Routes    *int `json:"routes"`
	Created   int  `json:"created"`
	Unchanged int  `json:"unchanged"`
}

// printMutationStatus prints a mutation status answer: the steps always,
// then a column for each of the waiting fields the answer carries
// (not_before, requested_by, approved_by or rejected_by, comment,
// expires_at, revert_at, revert, error), so a plain mutation's table stays
// as it was.
func printMutationStatus(w io.Writer, cf *clientFlags, raw json.RawMessage) error {
	var out mutationStatusAnswer
	if err := json.Unmarshal(raw, &out); err != nil {
		return fmt.Errorf("decoding the answer: %w", err)
	}
	event := out.EventID
	if out.Routes != nil {
		event = fmt.Sprintf("%d routes: %d created, %d unchanged", *out.Routes, out.Created, out.Unchanged)
	}
	header := []string{"WORKFLOW", "STATUS", "ACTION", "EVENT", "COMMITTED", "INVALIDATED", "PUBLISHED", "AUDITED"}
	row := []string{out.WorkflowID, out.Status, out.Action, event, out.Steps["committed"], out.Steps["invalidated"], out.Steps["published"], out.Steps["audited"]}
	optional := func(name, v string) {
		if v != "" {
			header, row = append(header, name), append(row, v)
		}
	}
	optional("NOT BEFORE", out.NotBefore)
	optional("REQUESTED BY", string(out.RequestedBy))
	optional("APPROVED BY", string(out.ApprovedBy))
	optional("REJECTED BY", string(out.RejectedBy))
	optional("COMMENT", out.Comment)
	optional("EXPIRES AT", out.ExpiresAt)
	optional("REVERT AT", out.RevertAt)
	if r := out.Revert; r != nil {
		v := r.State
		switch {
		case r.Revision != 0:
			v += " (revision " + strconv.FormatInt(r.Revision, 10) + ")"
		case r.Reason != "":
			v += " (" + r.Reason + ")"
		}
		optional("REVERT", v)
	}
	if out.Error != nil {
		optional("ERROR", out.Error.Code+": "+out.Error.Message)
	}
	return cf.print(w, raw, header, [][]string{row})
}

// mutationListAnswer is GET /api/v1/mutations.
type mutationListAnswer struct {
	Mutations []struct {
		WorkflowID  string     `json:"workflow_id"`
		Status      string     `json:"status"`
		Action      string     `json:"action"`
		Route       routeField `json:"route"`
		NotBefore   string     `json:"not_before"`
		RequestedBy actorField `json:"requested_by"`
	} `json:"mutations"`
	NextCursor string `json:"next_cursor"`
}

// newMutationsListCmd is `mutations list`: one page of mutations from
// Temporal visibility, scoped to the token's tenants.
func newMutationsListCmd(cf *clientFlags) *cobra.Command {
	var tenant, status, cursor string
	var limit int
	cmd := &cobra.Command{Use: "list", Short: "List mutations by status (e.g. awaiting_approval), one page at a time", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := cf.validate(); err != nil {
				return err
			}
			if limit < 0 || limit > 200 {
				return usageErr("--limit must be 1 to 200")
			}
			q := pageQuery(limit, "tenant", tenant, "status", status, "cursor", cursor)
			var raw json.RawMessage
			if _, err := cf.call(c.Context(), "GET", "/api/v1/mutations", q, nil, &raw); err != nil {
				return err
			}
			var out mutationListAnswer
			if err := json.Unmarshal(raw, &out); err != nil {
				return fmt.Errorf("decoding the answer: %w", err)
			}
			rows := make([][]string, 0, len(out.Mutations))
			for _, m := range out.Mutations {
				rows = append(rows, []string{m.WorkflowID, m.Status, m.Action, m.Route.String(), dash(m.NotBefore), dash(string(m.RequestedBy))})
			}
			if err := cf.print(c.OutOrStdout(), raw, []string{"WORKFLOW", "STATUS", "ACTION", "ROUTE", "NOT BEFORE", "REQUESTED BY"}, rows); err != nil {
				return err
			}
			if cf.output == "table" && out.NextCursor != "" {
				fmt.Fprintf(c.OutOrStdout(), "next page: --cursor %s\n", out.NextCursor)
			}
			return nil
		}}
	cmd.Flags().StringVar(&tenant, "tenant", "", "only this tenant's mutations")
	cmd.Flags().StringVar(&status, "status", "", "only mutations in this state: scheduled, awaiting_approval, revert_pending, running, failed, completed, rejected, expired or cancelled")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many mutations (1 to 200; default: the api's, 50)")
	cmd.Flags().StringVar(&cursor, "cursor", "", "the next page's cursor, as the previous page printed it")
	return cmd
}

// newDecisionCmd is `mutations approve` or `mutations reject`: the
// decision on a mutation awaiting approval, by an approver (or admin) of
// its tenant who did not request it.
func newDecisionCmd(cf *clientFlags, verb, short string) *cobra.Command {
	var comment string
	cmd := &cobra.Command{Use: verb + " <workflow_id>", Short: short, Args: cobra.ExactArgs(1), RunE: func(c *cobra.Command, args []string) error {
		if err := cf.validate(); err != nil {
			return err
		}
		var body any
		if comment != "" {
			body = map[string]string{"comment": comment}
		}
		var raw json.RawMessage
		if _, err := cf.call(c.Context(), "POST", "/api/v1/mutations/"+escapeWorkflowID(args[0])+"/"+verb, nil, body, &raw); err != nil {
			return err
		}
		return printMutationStatus(c.OutOrStdout(), cf, raw)
	}}
	cmd.Flags().StringVar(&comment, "comment", "", "why (kept with the decision)")
	return cmd
}

// dash shows an empty cell as "-".
func dash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
