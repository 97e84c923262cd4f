package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/routes"
)

// newWatchCmd is `routes watch`: follow a tenant's route changes from the
// resolver's watch stream, one line per change, reconnecting (and resuming
// after the last change printed) until interrupted or --count changes.
func newWatchCmd(cf *clientFlags) *cobra.Command {
	var w watchFlags
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Follow a tenant's route changes as they commit (the resolver's watch stream)",
		Long: `Follow a tenant's route changes from GET /api/v1/watch/{tenant} on a resolver.
Without --since it starts at the changes committed from now on; --since takes
the id of a change printed before (the ID column, or "id" with -o json) and
prints every change after it. A dropped stream is resumed where it stopped.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := cf.validate(); err != nil {
				return err
			}
			for _, f := range []struct{ name, v string }{{"tenant", w.tenant}, {"service", w.service}, {"env", w.env}} {
				if f.v == "" && f.name != "tenant" {
					continue
				}
				if err := routes.ValidateName(f.name, f.v); err != nil {
					return usageErr("--%s: %v", f.name, err)
				}
			}
			return w.run(c.Context(), cf, c.OutOrStdout())
		},
	}
	def := os.Getenv("TM_RESOLVER_URL")
	if def == "" {
		def = "http://127.0.0.1:8081"
	}
	cmd.Flags().StringVar(&w.resolverURL, "resolver-url", def, "resolver base URL (TM_RESOLVER_URL)")
	cmd.Flags().StringVar(&w.tenant, "tenant", "", "tenant to watch (required)")
	cmd.Flags().StringVar(&w.service, "service", "", "only this service")
	cmd.Flags().StringVar(&w.env, "env", "", "only this environment")
	cmd.Flags().StringVar(&w.since, "since", "", "print the changes after this change id")
	cmd.Flags().IntVar(&w.count, "count", 0, "stop after this many changes (default: until interrupted)")
	return cmd
}

type watchFlags struct {
	resolverURL, tenant, service, env, since string
	count                                    int
	header                                   bool // the table header is out
}

// watchLine is one change with -o json.
type watchLine struct {
	ID    string       `json:"id"`
	Event events.Event `json:"event"`
}

// run follows the stream. An answer other than 200 on the first connection
// is an error (bad flags, token, limits); later ones are retried.
func (w *watchFlags) run(ctx context.Context, cf *clientFlags, out io.Writer) error {
	q := url.Values{}
	if w.service != "" {
		q.Set("service", w.service)
	}
	if w.env != "" {
		q.Set("env", w.env)
	}
	u := strings.TrimRight(w.resolverURL, "/") + "/api/v1/watch/" + url.PathEscape(w.tenant)
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	last, printed := w.since, 0
	delay := 100 * time.Millisecond
	for connected := false; ; {
		n, err := w.stream(ctx, cf, u, &last, out, &printed)
		if ctx.Err() != nil || (w.count > 0 && printed >= w.count) {
			return nil
		}
		var ce *cliError
		if !connected && n < 0 && errors.As(err, &ce) {
			return err
		}
		connected = connected || n >= 0
		if n > 0 {
			delay = 100 * time.Millisecond
		}
		fmt.Fprintf(os.Stderr, "watch: %v; resuming in %v\n", err, delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// stream reads one connection: it returns -1 when the stream did not open,
// else the number of changes it printed, and why it ended.
func (w *watchFlags) stream(ctx context.Context, cf *clientFlags, u string, last *string, out io.Writer, printed *int) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return -1, usageErr("bad --resolver-url: %v", err)
	}
	if cf.token != "" {
		req.Header.Set("Authorization", "Bearer "+cf.token)
	}
	if *last != "" {
		req.Header.Set("Last-Event-ID", *last)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1, &cliError{exitUnreachable, fmt.Sprintf("cannot reach the resolver at %s: %v", w.resolverURL, err)}
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Code != "" {
			return -1, &cliError{exitAPIError, fmt.Sprintf("%s (%d %s)", e.Error.Message, res.StatusCode, e.Error.Code)}
		}
		return -1, &cliError{exitAPIError, "resolver answered " + res.Status}
	}
	if cf.output == "table" && !w.header {
		w.header = true
		fmt.Fprintf(out, "%-20s  %-11s  %-40s  %4s  %-6s  %-40s  %-12s  %s\n", "WHEN", "ACTION", "ROUTE", "REV", "ACTIVE", "URL", "WHO", "ID")
	}
	rd := bufio.NewReader(res.Body)
	var id, name, data string
	n := 0
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			return n, fmt.Errorf("stream ended: %w", err)
		}
		line = strings.TrimSuffix(line, "\n")
		if line != "" {
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				id = value
			case "event":
				name = value
			case "data":
				data = value
			}
			continue
		}
		if id != "" {
			*last = id
		}
		switch name {
		case "route_changed":
			var e events.Event
			if err := json.Unmarshal([]byte(data), &e); err != nil {
				return n, fmt.Errorf("undecodable change: %w", err)
			}
			if err := printChange(out, cf.output, *last, e); err != nil {
				return n, err
			}
			n++
			if *printed++; w.count > 0 && *printed >= w.count {
				return n, nil
			}
		case "close":
			return n, fmt.Errorf("closed by the resolver: %s", data)
		}
		id, name, data = "", "", ""
	}
}

func printChange(out io.Writer, output, id string, e events.Event) error {
	if output == "json" {
		b, err := json.Marshal(watchLine{ID: id, Event: e})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		return err
	}
	action := string(e.Action)
	if e.RollbackTo != 0 {
		action = fmt.Sprintf("%s(%d)", action, e.RollbackTo)
	}
	_, err := fmt.Fprintf(out, "%-20s  %-11s  %-40s  %4d  %-6t  %-40s  %-12s  %s\n", e.OccurredAt.UTC().Format(time.RFC3339),
		action, e.Key().String(), e.Revision, e.IsActive, e.URL, e.ChangedBy, id)
	return err
}
