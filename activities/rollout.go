package activities

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/trafficmanager/trafficmanager/routes"
)

// RouteLister lists routes (*routes.Store): a rollout asks it for the
// env's active versions.
type RouteLister interface {
	List(ctx context.Context, f routes.Filter) (routes.Page, error)
}

var _ RouteLister = (*routes.Store)(nil)

// ActiveVersions returns the active versions of k's env in name order: a
// rollout that starts without a split takes the env's only active version
// other than its target as the version it moves traffic from.
func (a *Activities) ActiveVersions(ctx context.Context, k routes.SplitKey) ([]string, error) {
	l, ok := a.Routes.(RouteLister)
	if !ok {
		return nil, temporal.NewNonRetryableApplicationError("the worker's route store cannot list routes", "SplitsUnsupported", nil)
	}
	active := true
	var out []string
	f := routes.Filter{Tenant: k.Tenant, Service: k.Service, Env: k.Env, Active: &active, Limit: 100}
	for {
		page, err := l.List(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("list active versions of %s: %w", k, err)
		}
		for _, r := range page.Routes {
			out = append(out, r.Version)
		}
		if page.NextCursor == "" {
			return out, nil
		}
		f.Cursor = page.NextCursor
	}
}

// RolloutCheckInput is one stretch of a rollout's check gate: call URL
// every Interval until Window has passed or a call fails.
type RolloutCheckInput struct {
	URL      string        `json:"url"`
	Interval time.Duration `json:"interval"`
	Window   time.Duration `json:"window"`
}

// RolloutCheckResult says how a check stretch ended: Failed after the
// first failed call (Detail says why), else the window passed.
type RolloutCheckResult struct {
	Failed bool   `json:"failed"`
	Checks int    `json:"checks"`
	Detail string `json:"detail,omitempty"`
}

// ValidCheckURL accepts absolute http and https URLs only.
func ValidCheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("check url must be an absolute http(s) URL")
	}
	return nil
}

// RolloutCheck is a rollout's check gate for one stretch of a pause: it
// waits Interval, calls URL (GET), and repeats until the window has passed
// (Failed false) or a call fails (Failed true: a transport error, a
// timeout, or a non-2xx answer). It returns at the first failure so the
// workflow counts every failure in its history and a failure is never
// lost to a worker restart; a stretch that passes costs one activity. It
// heartbeats after every call: a lost worker is noticed within Interval
// plus the heartbeat slack and the stretch restarts. Cancelled when the
// pause ends early (pause, promote, abort).
func (a *Activities) RolloutCheck(ctx context.Context, in RolloutCheckInput) (RolloutCheckResult, error) {
	if err := ValidCheckURL(in.URL); err != nil {
		return RolloutCheckResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalid, nil)
	}
	if in.Interval <= 0 {
		return RolloutCheckResult{}, temporal.NewNonRetryableApplicationError("check interval must be positive", ErrTypeInvalid, nil)
	}
	timeout := min(in.Interval, 10*time.Second)
	client := &http.Client{Timeout: timeout}
	deadline := time.Now().Add(in.Window)
	for n := 0; ; n++ {
		if time.Until(deadline) < in.Interval {
			return RolloutCheckResult{Checks: n}, nil
		}
		t := time.NewTimer(in.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return RolloutCheckResult{Checks: n}, ctx.Err()
		case <-t.C:
		}
		ok, detail := probe(ctx, client, in.URL)
		activity.RecordHeartbeat(ctx, n+1)
		if !ok {
			if ctx.Err() != nil {
				return RolloutCheckResult{Checks: n}, ctx.Err()
			}
			return RolloutCheckResult{Failed: true, Checks: n + 1, Detail: detail}, nil
		}
	}
}

// probe calls u once: ok for a 2xx answer.
func probe(ctx context.Context, c *http.Client, u string) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "trafficmanager-rollout-check")
	resp, err := c.Do(req)
	if err != nil {
		return false, err.Error()
	}
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return false, "HTTP " + resp.Status
	}
	return true, ""
}
