package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// Exit codes of the CLI client, for scripts.
const (
	exitAPIError    = 1 // the API answered with an error (4xx/5xx)
	exitUsage       = 2 // bad flags or arguments
	exitUnreachable = 3 // the API could not be reached
)

// cliError carries an exit code with its message.
type cliError struct {
	code int
	msg  string
}

func (e *cliError) Error() string { return e.msg }
func (e *cliError) ExitCode() int { return e.code }

func usageErr(format string, args ...any) error {
	return &cliError{exitUsage, fmt.Sprintf(format, args...)}
}

// clientFlags are shared by every command that talks to the api.
type clientFlags struct {
	apiURL string
	token  string
	output string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	def := os.Getenv("TM_API_URL")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	cmd.PersistentFlags().StringVar(&f.apiURL, "api-url", def, "api base URL (TM_API_URL)")
	cmd.PersistentFlags().StringVar(&f.token, "token", os.Getenv("TM_TOKEN"), "bearer token (TM_TOKEN)")
	cmd.PersistentFlags().StringVarP(&f.output, "output", "o", "table", "output format: table or json")
}

func (f *clientFlags) validate() error {
	if f.output != "table" && f.output != "json" {
		return usageErr("--output must be table or json")
	}
	return nil
}

// call sends a request to the api and decodes a 2xx JSON answer into out.
// An error answer becomes a cliError with the API's message.
func (f *clientFlags) call(ctx context.Context, method, path string, query url.Values, body any, out any) (int, error) {
	return f.request(ctx, method, path, query, body, out, nil)
}

// callWithHeaders is call with extra headers as name, value pairs; empty
// values are left out.
func (f *clientFlags) callWithHeaders(ctx context.Context, method, path string, body any, out any, headers ...string) (int, error) {
	return f.request(ctx, method, path, nil, body, out, headers)
}

func (f *clientFlags) request(ctx context.Context, method, path string, query url.Values, body any, out any, headers []string) (int, error) {
	u := strings.TrimRight(f.apiURL, "/") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return 0, usageErr("bad --api-url: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if f.token != "" {
		req.Header.Set("Authorization", "Bearer "+f.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] != "" {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, &cliError{exitUnreachable, fmt.Sprintf("cannot reach the api at %s: %v", f.apiURL, err)}
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return res.StatusCode, &cliError{exitUnreachable, fmt.Sprintf("reading the answer: %v", err)}
	}
	if res.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Code != "" {
			return res.StatusCode, &cliError{exitAPIError, fmt.Sprintf("%s (%d %s)", e.Error.Message, res.StatusCode, e.Error.Code)}
		}
		return res.StatusCode, &cliError{exitAPIError, fmt.Sprintf("api answered %s", res.Status)}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return res.StatusCode, fmt.Errorf("decoding the answer: %w", err)
		}
	}
	return res.StatusCode, nil
}

// print writes v as indented JSON, or as a table through table().
func (f *clientFlags) print(w io.Writer, v any, header []string, rows [][]string) error {
	if f.output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// pageQuery is the query of one list page: the non-empty name/value pairs
// of kv, and limit when set.
func pageQuery(limit int, kv ...string) url.Values {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return q
}
