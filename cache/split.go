package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/trafficmanager/trafficmanager/routes"
)

// SplitKey is the Redis key of a split's cached definition: split:{t}:{s}:{e}.
func SplitKey(k routes.SplitKey) string { return "split:" + k.String() }

func splitFloorKey(k routes.SplitKey) string { return "split-floor:" + k.String() }

// SplitEntry is a cached split: found with its weights, or not found.
// Revision is the split's revision (after a delete, the delete's; 0 when
// the env never had one). The versions' URLs are not part of it: they are
// resolved through the routes' own cache entries, so a URL change needs no
// invalidation of the split.
type SplitEntry struct {
	Found    bool           `json:"found"`
	Weights  routes.Weights `json:"weights,omitempty"`
	Revision int64          `json:"revision"`
	// Slots is the split's slot table (routes.RebalanceSlots).
	Slots []byte `json:"slots,omitempty"`
}

// InvalidateSplit drops the split's cached definition after a change to
// revision and raises its floor, as Invalidate does for a route.
func (r *Redis) InvalidateSplit(ctx context.Context, k routes.SplitKey, revision int64) error {
	err := invalidateScript.Run(ctx, r.c, []string{SplitKey(k), splitFloorKey(k)}, revision, r.floorTTL.Milliseconds()).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("invalidate %s: %w", SplitKey(k), err)
	}
	return nil
}

// GetSplit returns the cached split of k; ok is false on a miss.
func (r *Redis) GetSplit(ctx context.Context, k routes.SplitKey) (e SplitEntry, ok bool, err error) {
	b, err := r.c.Get(ctx, SplitKey(k)).Bytes()
	if errors.Is(err, redis.Nil) {
		return SplitEntry{}, false, nil
	}
	if err != nil {
		return SplitEntry{}, false, fmt.Errorf("get %s: %w", SplitKey(k), err)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return SplitEntry{}, false, nil
	}
	return e, true, nil
}

// FillSplit caches e for ttl unless a newer revision is known.
func (r *Redis) FillSplit(ctx context.Context, k routes.SplitKey, e SplitEntry, ttl time.Duration) (bool, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return false, err
	}
	n, err := fillScript.Run(ctx, r.c, []string{SplitKey(k), splitFloorKey(k)}, e.Revision, string(b), ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("fill %s: %w", SplitKey(k), err)
	}
	return n == 1, nil
}
