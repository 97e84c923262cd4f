package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// ErrNotFound is the answer for a route that does not exist or is inactive.
var ErrNotFound = errors.New("client: route not found")

// Defaults of the options.
const (
	DefaultConnectWait = 2 * time.Second
	DefaultIdleTimeout = 45 * time.Second // three missed 15 s heartbeats
	DefaultBackoffMin  = 100 * time.Millisecond
	DefaultBackoffMax  = 5 * time.Second
)

// Option configures a Client.
type Option func(*Client)

// WithToken sends token as a bearer token (resolvers with TM_RESOLVER_AUTH=on).
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient resolves misses with hc (default: a client with a 5 s timeout).
// Streams use a copy of its transport without a timeout.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithLogger logs stream reconnects (default: none).
func WithLogger(l *zap.Logger) Option { return func(c *Client) { c.log = l } }

// WithConnectWait bounds how long the first Resolve of a tenant waits for
// its stream's first attempt before answering over HTTP; while the stream
// is not open, answers are not cached and no Resolve waits again.
func WithConnectWait(d time.Duration) Option { return func(c *Client) { c.connectWait = d } }

// WithIdleTimeout is how long a stream may be silent (no event, no
// heartbeat) before it is taken for dead and reconnected.
func WithIdleTimeout(d time.Duration) Option { return func(c *Client) { c.idleTimeout = d } }

// WithBackoff sets the reconnect delays: min, doubling up to max.
func WithBackoff(min, max time.Duration) Option {
	return func(c *Client) { c.backoffMin, c.backoffMax = min, max }
}

// routeKey is a map key of four strings: looking it up hashes them in
// place, without building a string.
type routeKey struct{ tenant, service, env, version string }

type answer struct {
	url      string
	found    bool
	revision int64 // of the event that set it; 0 for an HTTP answer
}

// Client resolves routes from a local map kept fresh by watch streams.
type Client struct {
	base        string
	token       string
	hc          *http.Client
	stream      *http.Client
	log         *zap.Logger
	connectWait time.Duration
	idleTimeout time.Duration
	backoffMin  time.Duration
	backoffMax  time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.RWMutex
	routes  map[routeKey]answer
	tenants map[string]*tenantStream

	stats counters
}

// counters count what the client did; read them with Stats.
type counters struct {
	Hits, Misses, Events, Reconnects atomic.Int64
}

// New returns a client of the resolver at resolverURL (e.g.
// "http://127.0.0.1:8081").
func New(resolverURL string, opts ...Option) *Client {
	c := &Client{
		base:        strings.TrimSuffix(resolverURL, "/"),
		connectWait: DefaultConnectWait,
		idleTimeout: DefaultIdleTimeout,
		backoffMin:  DefaultBackoffMin,
		backoffMax:  DefaultBackoffMax,
		routes:      map[routeKey]answer{},
		tenants:     map[string]*tenantStream{},
	}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: 5 * time.Second}
	}
	c.stream = &http.Client{Transport: c.hc.Transport}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// Resolve returns the URL of the route, or ErrNotFound when it does not
// exist or is inactive. A cached answer does not allocate.
func (c *Client) Resolve(ctx context.Context, tenant, service, env, version string) (string, error) {
	k := routeKey{tenant, service, env, version}
	c.mu.RLock()
	a, ok := c.routes[k]
	c.mu.RUnlock()
	if ok {
		c.stats.Hits.Add(1)
		if !a.found {
			return "", ErrNotFound
		}
		return a.url, nil
	}
	return c.miss(ctx, k)
}

// miss opens the tenant's stream (once), then asks the resolver. The stream
// is open before the request, so a change committed after the answer is
// read is delivered by the stream; the answer only fills an absent entry,
// so it never replaces what an event reported in the meantime.
func (c *Client) miss(ctx context.Context, k routeKey) (string, error) {
	c.stats.Misses.Add(1)
	ts := c.watch(k.tenant)
	closed := c.ctx.Err() != nil
	if !ts.live.Load() && !closed {
		t := time.NewTimer(c.connectWait)
		select {
		case <-ts.tried: // at once when the first attempt has failed: no wait per miss
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	a, err := c.fetch(ctx, k)
	if err != nil {
		return "", err
	}
	if ts.live.Load() && !closed {
		c.mu.Lock()
		if _, ok := c.routes[k]; !ok {
			c.routes[k] = a
		}
		c.mu.Unlock()
	}
	if !a.found {
		return "", ErrNotFound
	}
	return a.url, nil
}

// fetch is GET /api/v1/resolve/{tenant}/{service}/{env}/{version}.
func (c *Client) fetch(ctx context.Context, k routeKey) (answer, error) {
	u := c.base + "/api/v1/resolve/" + url.PathEscape(k.tenant) + "/" + url.PathEscape(k.service) + "/" +
		url.PathEscape(k.env) + "/" + url.PathEscape(k.version)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return answer{}, fmt.Errorf("client: resolve: %w", err)
	}
	c.authorize(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("client: resolve: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return answer{}, fmt.Errorf("client: resolve: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		var b struct {
			URL string `json:"url"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			return answer{}, fmt.Errorf("client: resolve: %w", err)
		}
		return answer{url: b.URL, found: true}, nil
	case http.StatusNotFound:
		if apiCode(body) == "route_not_found" {
			return answer{}, nil
		}
	}
	return answer{}, &Error{Status: resp.StatusCode, Code: apiCode(body)}
}

// Error is a resolver answer other than found or not found.
type Error struct {
	Status int
	Code   string // the error JSON's code, when there was one
}

func (e *Error) Error() string {
	return fmt.Sprintf("client: resolver answered %d %s", e.Status, e.Code)
}

func apiCode(body []byte) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error.Code
}

func (c *Client) authorize(req *http.Request) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
}

// Stats returns the client's counters: answers from the map, answers
// over HTTP, change events applied, stream reconnects.
func (c *Client) Stats() (hits, misses, events, reconnects int64) {
	return c.stats.Hits.Load(), c.stats.Misses.Load(), c.stats.Events.Load(), c.stats.Reconnects.Load()
}

// Close stops every stream and waits for them. Resolve still works after
// Close, over HTTP only: nothing keeps a cached answer fresh any more.
func (c *Client) Close() {
	c.cancel()
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.routes)
}
