// Package openapitest checks HTTP traffic against the OpenAPI documents of
// the api and the resolver (api/openapi.yaml, resolver/openapi.yaml), so a
// field, header or status the documents do not describe fails a test.
//
// It uses kin-openapi's openapi3filter, which validates OpenAPI 3.1
// documents with its JSON Schema 2020-12 validator (type arrays, const,
// unevaluatedProperties). Routing is its own: Gin serves workflow ids with
// their slashes (/api/v1/mutations/route/t/s/e/v/created/k), which no
// OpenAPI path template matches, so a path parameter marked `x-slashes:
// true` matches one or more segments here.
package openapitest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// Doc is one loaded OpenAPI document and its routes.
type Doc struct {
	Name   string
	Spec   *openapi3.T
	routes []route

	mu  sync.Mutex
	hit map[string]bool // "METHOD path" of the operations Check has seen
}

type route struct {
	method   string
	template string
	re       *regexp.Regexp
	params   []string
	literal  int // literal characters: the more, the more specific
	item     *openapi3.PathItem
	op       *openapi3.Operation
}

// Load parses and validates a JSON (or YAML) OpenAPI document.
func Load(name string, data []byte) (*Doc, error) {
	l := openapi3.NewLoader()
	spec, err := l.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("%s: load: %w", name, err)
	}
	if err := spec.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("%s: invalid document: %w", name, err)
	}
	d := &Doc{Name: name, Spec: spec, hit: map[string]bool{}}
	for _, path := range spec.Paths.InMatchingOrder() {
		item := spec.Paths.Value(path)
		for method, op := range item.Operations() {
			r, err := compile(method, path, item, op)
			if err != nil {
				return nil, fmt.Errorf("%s: %s %s: %w", name, method, path, err)
			}
			d.routes = append(d.routes, r)
		}
	}
	sort.SliceStable(d.routes, func(i, j int) bool { return d.routes[i].literal > d.routes[j].literal })
	return d, nil
}

var paramRE = regexp.MustCompile(`\{([^}]+)\}`)

func compile(method, path string, item *openapi3.PathItem, op *openapi3.Operation) (route, error) {
	slashes := map[string]bool{}
	for _, ps := range [][]*openapi3.ParameterRef{item.Parameters, op.Parameters} {
		for _, p := range ps {
			if p.Value != nil && p.Value.In == "path" && p.Value.Extensions["x-slashes"] == true {
				slashes[p.Value.Name] = true
			}
		}
	}
	r := route{method: method, template: path, item: item, op: op}
	var b strings.Builder
	b.WriteString("^")
	last := 0
	for _, m := range paramRE.FindAllStringSubmatchIndex(path, -1) {
		lit := path[last:m[0]]
		r.literal += len(lit)
		b.WriteString(regexp.QuoteMeta(lit))
		name := path[m[2]:m[3]]
		r.params = append(r.params, name)
		if slashes[name] {
			b.WriteString("(.+?)")
		} else {
			b.WriteString("([^/]+)")
		}
		last = m[1]
	}
	r.literal += len(path[last:])
	b.WriteString(regexp.QuoteMeta(path[last:]))
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	r.re = re
	return r, err
}

// errNoPath and errNoMethod say why Find found no operation.
var (
	errNoPath   = errors.New("no path of the document matches")
	errNoMethod = errors.New("the path has no such method in the document")
)

// Find returns the operation for method and the request's escaped path.
func (d *Doc) Find(method string, u *url.URL) (*routers.Route, map[string]string, error) {
	p := u.EscapedPath()
	pathMatched := false
	for _, r := range d.routes {
		m := r.re.FindStringSubmatch(p)
		if m == nil {
			continue
		}
		pathMatched = true
		if r.method != method {
			continue
		}
		params := make(map[string]string, len(r.params))
		for i, name := range r.params {
			v, err := url.PathUnescape(m[i+1])
			if err != nil {
				v = m[i+1]
			}
			params[name] = v
		}
		return &routers.Route{Spec: d.Spec, Server: nil, Path: r.template, PathItem: r.item, Method: method, Operation: r.op}, params, nil
	}
	if pathMatched {
		return nil, nil, errNoMethod
	}
	return nil, nil, errNoPath
}

// Exchange is one request and its response, bodies read.
type Exchange struct {
	Request   *http.Request
	ReqBody   []byte // nil: no body, or one that could not be copied (not checked)
	ReqBodyOK bool   // ReqBody holds the whole request body
	Status    int
	Header    http.Header
	Body      []byte
	Streamed  bool // the response body was not read (text/event-stream)
}

// Check validates one exchange against the document and returns what does
// not match, or nil. A request the document calls invalid must be answered
// with a 4xx; every response must be documented for its operation, with
// its headers and body.
func (d *Doc) Check(x Exchange) error {
	method, u := x.Request.Method, x.Request.URL
	rt, params, err := d.Find(method, u)
	if err != nil {
		// Paths and methods the document does not have: the server's
		// JSON 404/405 is the documented answer (docs/api.md, Errors).
		if (x.Status == http.StatusNotFound || x.Status == http.StatusMethodNotAllowed) && d.isError(x.Body) {
			return nil
		}
		return fmt.Errorf("%w (answered %d)", err, x.Status)
	}
	d.mu.Lock()
	d.hit[method+" "+rt.Path] = true
	d.mu.Unlock()
	ctx := context.Background()
	req := x.Request.Clone(ctx)
	req.Body = http.NoBody
	if x.ReqBodyOK && len(x.ReqBody) > 0 {
		req.Body = io.NopCloser(bytes.NewReader(x.ReqBody))
		if req.Header.Get("Content-Type") == "" {
			req.Header.Set("Content-Type", "application/json") // the api accepts a missing one as JSON
		}
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: rt,
		Options: &openapi3filter.Options{
			AuthenticationFunc:  openapi3filter.NoopAuthenticationFunc,
			MultiError:          true,
			ExcludeRequestBody:  !x.ReqBodyOK,
			SkipSettingDefaults: true,
		},
	}
	var problems []string
	if reqErr := openapi3filter.ValidateRequest(ctx, in); reqErr != nil {
		// The document says the request is invalid: the server must refuse it.
		if x.Status < 400 || x.Status >= 500 {
			problems = append(problems, fmt.Sprintf("request invalid per document but answered %d: %s", x.Status, oneLine(reqErr)))
		}
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: x.Status, Header: x.Header,
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
			ExcludeResponseBody:   x.Streamed,
			AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		},
	}
	out.SetBodyBytes(x.Body)
	if resErr := openapi3filter.ValidateResponse(ctx, out); resErr != nil {
		problems = append(problems, "response: "+oneLine(resErr)+" (body: "+clip(x.Body, 600)+")")
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s %s", rt.Path, strings.Join(problems, "; "))
}

// isError says whether body is the error body of the document.
func (d *Doc) isError(body []byte) bool {
	s := d.Spec.Components.Schemas["Error"]
	if s == nil || s.Value == nil {
		return false
	}
	var v any
	if err := jsonUnmarshal(body, &v); err != nil {
		return false
	}
	return s.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()) == nil
}

// schemaDump is the schema and value kin-openapi appends to a reason.
var schemaDump = regexp.MustCompile(`(?s)\nSchema:\n.*?\n\nValue:\n.*?(\n\n|$)`)

func oneLine(err error) string {
	s := schemaDump.ReplaceAllString(err.Error(), " ")
	s = strings.ReplaceAll(s, "\n", " | ")
	if len(s) > 1500 {
		s = s[:1500] + "…"
	}
	return s
}

func clip(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// Unexercised lists the operations Check has not seen, sorted.
func (d *Doc) Unexercised() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, r := range d.routes {
		if k := r.method + " " + r.template; !d.hit[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
