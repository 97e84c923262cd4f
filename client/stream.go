package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// tenantStream follows one tenant's watch stream.
type tenantStream struct {
	tenant string
	tried  chan struct{} // closed once the first attempt opened the stream or failed
	once   sync.Once
	live   atomic.Bool // the stream has opened once: answers may be cached
	last   string      // the last event id (stream goroutine only)
}

// event is the part of a route_changed event the client applies.
type event struct {
	Tenant   string `json:"tenant"`
	Service  string `json:"service"`
	Env      string `json:"env"`
	Version  string `json:"version"`
	URL      string `json:"url"`
	IsActive bool   `json:"is_active"`
	Revision int64  `json:"revision"`
}

// errStale is a resume cursor the resolver refused.
var errStale = errors.New("the resolver refused the resume cursor")

// watch returns the tenant's stream, starting it on first use.
func (c *Client) watch(tenant string) *tenantStream {
	c.mu.RLock()
	ts := c.tenants[tenant]
	c.mu.RUnlock()
	if ts != nil {
		return ts
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ts = c.tenants[tenant]; ts != nil {
		return ts
	}
	ts = &tenantStream{tenant: tenant, tried: make(chan struct{})}
	c.tenants[tenant] = ts
	if c.ctx.Err() == nil {
		c.wg.Add(1)
		go c.follow(ts)
	}
	return ts
}

// follow keeps the tenant's stream open until Close: it reconnects with
// exponential backoff (jittered) and resumes after the last event id.
func (c *Client) follow(ts *tenantStream) {
	defer c.wg.Done()
	log := c.log.With(zap.String("tenant", ts.tenant))
	delay := c.backoffMin
	for c.ctx.Err() == nil {
		start := time.Now()
		err := c.streamOnce(ts)
		ts.once.Do(func() { close(ts.tried) })
		if c.ctx.Err() != nil {
			return
		}
		if errors.Is(err, errStale) {
			// The resolver's ledger does not know our cursor: start at the
			// head with nothing cached, the only state we can trust.
			c.forget(ts.tenant)
			ts.last = ""
		}
		if time.Since(start) > 10*time.Second {
			delay = c.backoffMin // it ran a while: a fresh failure
		}
		c.stats.Reconnects.Add(1)
		log.Info("watch stream ended; reconnecting", zap.Error(err), zap.Duration("after", delay))
		t := time.NewTimer(delay/2 + rand.N(delay/2+1))
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, c.backoffMax)
	}
}

// forget drops the tenant's cached answers.
func (c *Client) forget(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.routes {
		if k.tenant == tenant {
			delete(c.routes, k)
		}
	}
}

// streamOnce opens the stream once and applies its events until it ends.
func (c *Client) streamOnce(ts *tenantStream) error {
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/v1/watch/"+url.PathEscape(ts.tenant), nil)
	if err != nil {
		return err
	}
	c.authorize(req)
	req.Header.Set("Accept", "text/event-stream")
	if ts.last != "" {
		req.Header.Set("Last-Event-ID", ts.last)
	}
	resp, err := c.stream.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var buf [512]byte
		n, _ := resp.Body.Read(buf[:])
		if resp.StatusCode == http.StatusBadRequest && ts.last != "" {
			return fmt.Errorf("%w: %s", errStale, apiCode(buf[:n]))
		}
		return &Error{Status: resp.StatusCode, Code: apiCode(buf[:n])}
	}
	ts.live.Store(true)
	ts.once.Do(func() { close(ts.tried) })

	// A stream silent for longer than idleTimeout (no heartbeat) is dead:
	// the timer cancels the request, which ends the read below.
	idle := time.AfterFunc(c.idleTimeout, cancel)
	defer idle.Stop()
	rd := bufio.NewReaderSize(resp.Body, 16<<10)
	var id, name string
	var data []byte
	for {
		line, err := rd.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return errors.New("an event line longer than 16 KiB")
			}
			return err
		}
		idle.Reset(c.idleTimeout)
		line = line[:len(line)-1]
		switch {
		case len(line) == 0: // end of a message
			if name == "route_changed" {
				c.apply(ts, data)
			}
			if id != "" { // an id-only message moves the resume point too
				ts.last = id
			}
			if name == "close" {
				return fmt.Errorf("closed by the resolver: %s", data)
			}
			id, name, data = "", "", data[:0]
		case line[0] == ':': // heartbeat
		default:
			field, value, _ := strings.Cut(string(line), ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				id = value
			case "event":
				name = value
			case "data":
				data = append(data, value...)
			}
		}
	}
}

// apply records a change: the route's answer is now what the event says.
func (c *Client) apply(ts *tenantStream, data []byte) {
	var e event
	if err := json.Unmarshal(data, &e); err != nil || e.Tenant != ts.tenant {
		c.log.Warn("skipping an undecodable watch event", zap.String("tenant", ts.tenant), zap.Error(err))
		return
	}
	c.stats.Events.Add(1)
	a := answer{found: e.IsActive, revision: e.Revision}
	if e.IsActive {
		a.url = e.URL
	}
	k := routeKey{e.Tenant, e.Service, e.Env, e.Version}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Never back: a resumed stream may repeat a change from before the
	// stream began (see the watch docs); HTTP answers have revision 0.
	if old, ok := c.routes[k]; !ok || old.revision < a.revision {
		c.routes[k] = a
	}
}
