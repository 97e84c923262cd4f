package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// Reporter receives a mismatch; *testing.T satisfies it.
type Reporter interface {
	Errorf(format string, args ...any)
}

type reporterKey struct{}

// WithReporter makes mismatches of requests sent with ctx fail r (a test)
// at once; other mismatches are collected for Summary.
func WithReporter(ctx context.Context, r Reporter) context.Context {
	return context.WithValue(ctx, reporterKey{}, r)
}

// Mode says what a mismatch does: "fail" (the default) fails the test
// that sent the request, or the package at the end (Summary); "collect"
// only lists mismatches at the end; "off" checks nothing.
// TM_OPENAPI_VALIDATION sets it.
func Mode() string {
	switch m := os.Getenv("TM_OPENAPI_VALIDATION"); m {
	case "collect", "off":
		return m
	}
	return "fail"
}

// Transport validates every exchange it carries against the documents.
type Transport struct {
	Base http.RoundTripper
	Docs []*Doc
	// Skip: path prefixes that are not API (the console's HTML pages).
	Skip []string

	mu         sync.Mutex
	hosts      map[string]*Doc
	mismatches map[string]int // message → count
	checked    int
}

// NewTransport wraps base (http.DefaultTransport when nil).
func NewTransport(base http.RoundTripper, docs ...*Doc) *Transport {
	if base == nil {
		base = http.DefaultTransport
	}
	return &Transport{Base: base, Docs: docs, Skip: []string{"/ui/", "/debug/pprof/"}, hosts: map[string]*Doc{}, mismatches: map[string]int{}}
}

// Register says that host ("127.0.0.1:port") serves doc. Unregistered
// hosts are matched by path: a path only one document has decides, and a
// path both have (/healthz, /metrics, ...) passes if either accepts it.
func (t *Transport) Register(host string, doc *Doc) {
	t.mu.Lock()
	t.hosts[host] = doc
	t.mu.Unlock()
}

// RoundTrip sends req and validates the exchange once the response body
// has been read (in full, except for event streams).
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if Mode() == "off" || t.skip(req) {
		return t.Base.RoundTrip(req)
	}
	x := Exchange{Request: req}
	switch {
	case req.Body == nil || req.Body == http.NoBody:
		x.ReqBodyOK = true
	case req.GetBody != nil:
		if rc, err := req.GetBody(); err == nil {
			x.ReqBody, _ = io.ReadAll(rc)
			rc.Close()
			x.ReqBodyOK = true
		}
	}
	res, err := t.Base.RoundTrip(req)
	if err != nil {
		return res, err
	}
	x.Status, x.Header = res.StatusCode, res.Header
	if ct, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); ct == "text/event-stream" {
		x.Streamed = true
		t.check(req, x)
		return res, nil
	}
	body, rerr := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = &replayBody{r: bytes.NewReader(body), err: rerr}
	if rerr == nil { // a cut-off body is the test's subject, not the document's
		x.Body = body
		t.check(req, x)
	}
	return res, nil
}

func (t *Transport) skip(req *http.Request) bool {
	for _, p := range t.Skip {
		if strings.HasPrefix(req.URL.Path, p) {
			return true
		}
	}
	return false
}

func (t *Transport) check(req *http.Request, x Exchange) {
	err := t.validate(req, x)
	t.mu.Lock()
	t.checked++
	t.mu.Unlock()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("openapi: %s %s → %d: %v", req.Method, req.URL.RequestURI(), x.Status, err)
	if r, ok := req.Context().Value(reporterKey{}).(Reporter); ok && Mode() == "fail" {
		r.Errorf("%s", msg)
	}
	t.mu.Lock()
	t.mismatches[msg]++
	t.mu.Unlock()
}

func (t *Transport) validate(req *http.Request, x Exchange) error {
	t.mu.Lock()
	doc := t.hosts[req.URL.Host]
	t.mu.Unlock()
	if doc != nil {
		return doc.Check(x)
	}
	var candidates []*Doc
	for _, d := range t.Docs {
		if _, _, err := d.Find(req.Method, req.URL); err != errNoPath {
			candidates = append(candidates, d)
		}
	}
	if len(candidates) == 0 {
		if !strings.HasPrefix(req.URL.Path, "/api/") {
			return nil // not ours: a test's own server (a check URL, a fake)
		}
		return t.Docs[0].Check(x)
	}
	var first error
	for _, d := range candidates {
		err := d.Check(x)
		if err == nil {
			return nil
		}
		if first == nil {
			first = fmt.Errorf("%s: %w", d.Name, err)
		}
	}
	return first
}

// Summary lists the mismatches seen (each once, with a count) and how many
// exchanges were checked; failed says whether the package must fail.
func (t *Transport) Summary() (report string, failed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	msgs := make([]string, 0, len(t.mismatches))
	for m, n := range t.mismatches {
		if n > 1 {
			m = fmt.Sprintf("%s (×%d)", m, n)
		}
		msgs = append(msgs, m)
	}
	sort.Strings(msgs)
	var b strings.Builder
	fmt.Fprintf(&b, "openapi: %d exchanges checked against the OpenAPI documents, %d distinct mismatches (TM_OPENAPI_VALIDATION=%s)\n", t.checked, len(msgs), Mode())
	for _, m := range msgs {
		b.WriteString(m)
		b.WriteString("\n")
	}
	for _, d := range t.Docs {
		if u := d.Unexercised(); len(u) > 0 {
			fmt.Fprintf(&b, "openapi: %s operations no request exercised: %s\n", d.Name, strings.Join(u, ", "))
		}
	}
	return b.String(), len(msgs) > 0 && Mode() == "fail"
}

// replayBody is a response body already read: its bytes, then the error
// the read ended with, if any.
type replayBody struct {
	r   *bytes.Reader
	err error
}

func (b *replayBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF && b.err != nil {
		return n, b.err
	}
	return n, err
}

func (b *replayBody) Close() error { return nil }
