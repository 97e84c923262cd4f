package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/trafficmanager/trafficmanager/routes"
)

type createRequest struct {
	Tenant    string `json:"tenant"`
	Service   string `json:"service"`
	Env       string `json:"env"`
	Version   string `json:"version"`
	URL       string `json:"url"`
	ChangedBy string `json:"changed_by"`
	Active    *bool  `json:"active"`
}

// timingFields are the body fields of every write that say when it
// applies and whether it is put back later.
type timingFields struct {
	NotBefore   string `json:"not_before"`
	RevertAfter string `json:"revert_after"`
}

func (f timingFields) parse() (timing, error) {
	return parseTiming(f.NotBefore, f.RevertAfter, time.Now())
}

// createRouteRequest is POST /routes's body: a create and, unlike a
// batch's routes, its own timing (revert_after is refused: a create has
// no previous state).
type createRouteRequest struct {
	createRequest
	timingFields
}

type updateRequest struct {
	URL       string `json:"url"`
	ChangedBy string `json:"changed_by"`
	timingFields
}

type stateRequest struct {
	ChangedBy string `json:"changed_by"`
	timingFields
}

type rollbackRequest struct {
	Revision  int64  `json:"revision"`
	ChangedBy string `json:"changed_by"`
	timingFields
}

// decodeJSON reads a JSON body of at most maxBody bytes into v, rejecting
// unknown fields, trailing data and non-JSON content types. An empty body
// is allowed only when optional is true.
func decodeJSON(c *gin.Context, v any, optional bool) error {
	return decodeJSONUpTo(c, v, optional, maxBody)
}

// decodeJSONUpTo is decodeJSON with another size limit (a power of two
// KiB or MiB, named in the 413 message).
func decodeJSONUpTo(c *gin.Context, v any, optional bool, limit int64) error {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &Error{Status: http.StatusRequestEntityTooLarge, Code: "invalid_argument", Message: "request body is larger than " + sizeName(limit)}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) { // the server's read timeout (TM_HTTP_READ_TIMEOUT)
			return RequestTimeout()
		}
		return InvalidArgument("could not read the request body")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return InvalidArgument("a JSON request body is required")
	}
	if ct := c.GetHeader("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return &Error{Status: http.StatusUnsupportedMediaType, Code: "invalid_argument", Message: "Content-Type must be application/json"}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return InvalidArgument("malformed JSON body: " + jsonProblem(err))
	}
	if dec.More() {
		return InvalidArgument("malformed JSON body: unexpected data after the JSON object")
	}
	return nil
}

// jsonProblem describes a decoding error without echoing Go internals.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return "syntax error at byte " + strconv.FormatInt(syn.Offset, 10)
	case errors.As(err, &typ):
		return "field " + strconv.Quote(jsonField(typ.Field)) + " has the wrong type"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of input"
	}
	const unknown = "json: unknown field "
	if msg := err.Error(); len(msg) > len(unknown) && msg[:len(unknown)] == unknown {
		return "unknown field " + msg[len(unknown):]
	}
	return "not a JSON object of the expected shape"
}

// jsonField is a decoding error's field path without the Go names of
// embedded structs (timingFields.revert_after is revert_after): JSON names
// here are snake_case, Go type names are not.
func jsonField(path string) string {
	parts := strings.Split(path, ".")
	out := parts[:0]
	for _, p := range parts {
		if strings.ToLower(p) == p {
			out = append(out, p)
		}
	}
	return strings.Join(out, ".")
}

func pathKey(c *gin.Context) (routes.Key, error) {
	k := routes.Key{Tenant: c.Param("tenant"), Service: c.Param("service"), Env: c.Param("env"), Version: c.Param("version")}
	return k, k.Validate()
}

// changedBy picks the author of a change: the body, then X-Changed-By, then
// the authenticated principal, else "anonymous".
func changedBy(c *gin.Context, fromBody string) string {
	if fromBody != "" {
		return fromBody
	}
	if h := c.GetHeader("X-Changed-By"); h != "" {
		return h
	}
	if p := PrincipalName(c); p != "" {
		return p
	}
	return "anonymous"
}

// PrincipalName returns the authenticated principal's name set by the auth
// middleware under the "principal" key, or "".
func PrincipalName(c *gin.Context) string {
	if v, ok := c.Get("principal"); ok {
		if s, ok := v.(string); ok {
			return s
		}
	}
	return ""
}

func (s *Server) createRoute(c *gin.Context) {
	var req createRouteRequest
	err := decodeJSON(c, &req, false)
	var t timing
	if err == nil {
		t, err = req.timingFields.parse()
	}
	if err == nil && req.RevertAfter != "" {
		err = errRevertCreate
	}
	if err != nil {
		s.fail(c, string(routes.ActionCreated), err)
		return
	}
	s.mutate(c, req.mutation(c, ""), t)
}

// mutation is the create req asks for: active unless it says otherwise,
// authored by its changed_by, else by orElse (a batch's), else as
// changedBy decides.
func (req createRequest) mutation(c *gin.Context, orElse string) routes.Mutation {
	active := true
	if req.Active != nil {
		active = *req.Active
	}
	return routes.Mutation{
		Action:    routes.ActionCreated,
		Key:       routes.Key{Tenant: req.Tenant, Service: req.Service, Env: req.Env, Version: req.Version},
		URL:       req.URL,
		Active:    active,
		ChangedBy: changedBy(c, cmp.Or(req.ChangedBy, orElse)),
	}
}

func (s *Server) updateRoute(c *gin.Context) {
	k, err := pathKey(c)
	var req updateRequest
	var ifRev int64
	if err == nil {
		ifRev, err = ifMatch(c)
	}
	if err == nil {
		err = decodeJSON(c, &req, false)
	}
	var t timing
	if err == nil {
		t, err = req.timingFields.parse()
	}
	if err != nil {
		s.fail(c, string(routes.ActionUpdated), err)
		return
	}
	s.mutate(c, routes.Mutation{Action: routes.ActionUpdated, Key: k, URL: req.URL, ChangedBy: changedBy(c, req.ChangedBy), IfRevision: ifRev}, t)
}

func (s *Server) activateRoute(c *gin.Context)   { s.setState(c, routes.ActionActivated) }
func (s *Server) deactivateRoute(c *gin.Context) { s.setState(c, routes.ActionDeactivated) }

func (s *Server) setState(c *gin.Context, action routes.Action) {
	k, err := pathKey(c)
	var req stateRequest
	var ifRev int64
	if err == nil {
		ifRev, err = ifMatch(c)
	}
	if err == nil {
		err = decodeJSON(c, &req, true)
	}
	var t timing
	if err == nil {
		t, err = req.timingFields.parse()
	}
	if err != nil {
		s.fail(c, string(action), err)
		return
	}
	s.mutate(c, routes.Mutation{Action: action, Key: k, ChangedBy: changedBy(c, req.ChangedBy), IfRevision: ifRev}, t)
}

// rollbackRoute restores the url and active state of an earlier revision
// as a new revision, through the same mutation workflow as other writes.
func (s *Server) rollbackRoute(c *gin.Context) {
	const action = string(routes.ActionRolledBack)
	k, err := pathKey(c)
	var req rollbackRequest
	var ifRev int64
	if err == nil {
		ifRev, err = ifMatch(c)
	}
	if err == nil {
		err = decodeJSON(c, &req, false)
	}
	if err == nil && req.Revision < 1 {
		err = InvalidArgument("revision must be a revision of the route (1 or more)")
	}
	var t timing
	if err == nil {
		t, err = req.timingFields.parse()
	}
	if err != nil {
		s.fail(c, action, err)
		return
	}
	s.mutate(c, routes.Mutation{Action: routes.ActionRolledBack, Key: k, RollbackTo: req.Revision,
		ChangedBy: changedBy(c, req.ChangedBy), IfRevision: ifRev}, t)
}

// ifMatch reads the If-Match header: the revision the route must have for
// the write to apply (GET route's ETag), quotes optional; 0 when absent.
// The store checks it under the row lock, in the commit's transaction.
func ifMatch(c *gin.Context) (int64, error) {
	h := c.GetHeader("If-Match")
	if h == "" {
		return 0, nil
	}
	v := strings.TrimSpace(h)
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || strings.HasPrefix(v, "+") {
		return 0, InvalidArgument(`If-Match must be a route revision, as in "3" (GET route's ETag)`)
	}
	return n, nil
}

// etag is the ETag of a route: its revision, quoted.
func etag(r routes.Route) string { return `"` + strconv.FormatInt(r.Revision, 10) + `"` }

func (s *Server) getRoute(c *gin.Context) {
	k, err := pathKey(c)
	if err == nil {
		err = Authorize(c, k.Tenant, false)
	}
	if err != nil {
		WriteError(c, s.log, err)
		return
	}
	r, err := read(c.Request.Context(), s, func(ctx context.Context) (routes.Route, error) { return s.o.Routes.Get(ctx, k) })
	if err != nil {
		WriteError(c, s.log, err)
		return
	}
	c.Header("ETag", etag(r))
	c.JSON(http.StatusOK, r)
}

// routeHistory answers the route's revisions, newest first, from the
// ledger in Postgres: it answers while MongoDB is down. Its authorization
// is GET route's, so another tenant's route answers the same.
func (s *Server) routeHistory(c *gin.Context) {
	k, err := pathKey(c)
	if err == nil {
		err = Authorize(c, k.Tenant, false)
	}
	var limit int
	if err == nil {
		limit, err = ParseLimit(c)
	}
	if err != nil {
		WriteError(c, s.log, err)
		return
	}
	cursor := c.Query("cursor")
	page, err := read(c.Request.Context(), s, func(ctx context.Context) (routes.HistoryPage, error) {
		return s.o.Routes.History(ctx, k, limit, cursor)
	})
	if err != nil {
		WriteError(c, s.log, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

func (s *Server) listRoutes(c *gin.Context) {
	f := routes.Filter{Tenant: c.Query("tenant"), Service: c.Query("service"), Env: c.Query("env"), Cursor: c.Query("cursor")}
	var err error
	for _, p := range []struct{ field, v string }{{"tenant", f.Tenant}, {"service", f.Service}, {"env", f.Env}} {
		if p.v != "" && err == nil {
			err = routes.ValidateName(p.field, p.v)
		}
	}
	if v, ok := c.GetQuery("active"); ok && err == nil {
		b, perr := strconv.ParseBool(v)
		if perr != nil {
			err = InvalidArgument("active must be true or false")
		}
		f.Active = &b
	}
	if err == nil {
		f.Limit, err = ParseLimit(c)
	}
	if err == nil {
		f.Tenants, err = ScopeTenants(c, f.Tenant)
	}
	if err != nil {
		WriteError(c, s.log, err)
		return
	}
	page, err := read(c.Request.Context(), s, func(ctx context.Context) (routes.Page, error) { return s.o.Routes.List(ctx, f) })
	if err != nil {
		WriteError(c, s.log, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

// ParseLimit reads the limit query parameter: default 100, 1 to 1000.
func ParseLimit(c *gin.Context) (int, error) {
	v, ok := c.GetQuery("limit")
	if !ok {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, InvalidArgument("limit must be an integer from 1 to 1000")
	}
	return n, nil
}

func sizeName(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n>>10, 10) + " KiB"
}
