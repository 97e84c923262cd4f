package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
	"time"
)

// apiAnswer is the API's answer to one in-process request.
type apiAnswer struct {
	Status int
	Header http.Header
	Body   []byte
}

// Err is the API's error message ({"error": {"code", "message"}}), or "".
func (a apiAnswer) Err() (code, message string) {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(a.Body, &e) == nil {
		return e.Error.Code, e.Error.Message
	}
	return "", ""
}

func (a apiAnswer) OK() bool { return a.Status >= 200 && a.Status < 300 }

func (a apiAnswer) decode(v any) error {
	if err := json.Unmarshal(a.Body, v); err != nil {
		return fmt.Errorf("decode api answer (%d): %w", a.Status, err)
	}
	return nil
}

// recorder is the http.ResponseWriter of an in-process API request.
type recorder struct {
	status int
	header http.Header
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

// request is one call of the API on behalf of a session.
type request struct {
	method, path string
	body         any               // JSON-encoded when not nil
	header       map[string]string // If-Match, Idempotency-Key
}

// call serves req with the api's own handler and the session's token, so
// the API's authentication, authorization and validation decide it. A
// write waits for its commit as an API client would (TM_WRITE_ACK_TIMEOUT).
func (c *Console) call(ctx context.Context, v viewer, req request) (apiAnswer, error) {
	var body bytes.Buffer
	if req.body != nil {
		if err := json.NewEncoder(&body).Encode(req.body); err != nil {
			return apiAnswer{}, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, req.method, req.path, &body)
	if err != nil {
		return apiAnswer{}, fmt.Errorf("console request %s %s: %w", req.method, req.path, err)
	}
	r.RemoteAddr = "127.0.0.1:0"
	if req.body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if v.sess != nil && v.sess.secret != "" {
		r.Header.Set("Authorization", "Bearer "+v.sess.secret)
	}
	for k, val := range req.header {
		if val != "" {
			r.Header.Set(k, val)
		}
	}
	rec := &recorder{header: http.Header{}}
	c.o.API.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return apiAnswer{Status: rec.status, Header: rec.header, Body: rec.body.Bytes()}, nil
}

// read GETs path from the API as v and decodes a 2xx answer into out.
// Otherwise it answers the page itself — the API's error (what names the
// attempt), or 500/502 — and returns false.
func (c *Console) read(g *gin.Context, v viewer, path, what string, out any) bool {
	a, err := c.call(g.Request.Context(), v, request{method: http.MethodGet, path: path})
	if err != nil {
		c.fail(g, http.StatusInternalServerError, "internal error")
		return false
	}
	if !a.OK() {
		c.apiFail(g, a, what)
		return false
	}
	if err := a.decode(out); err != nil {
		c.fail(g, http.StatusBadGateway, "The API answered something unexpected.")
		return false
	}
	return true
}
