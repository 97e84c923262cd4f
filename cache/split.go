package cache

import (
	"context"
	"time"

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
	return r.invalidate(ctx, SplitKey(k), splitFloorKey(k), revision)
}

// GetSplit returns the cached split of k; ok is false on a miss.
func (r *Redis) GetSplit(ctx context.Context, k routes.SplitKey) (e SplitEntry, ok bool, err error) {
	return getEntry[SplitEntry](ctx, r, SplitKey(k))
}

// FillSplit caches e for ttl unless a newer revision is known.
func (r *Redis) FillSplit(ctx context.Context, k routes.SplitKey, e SplitEntry, ttl time.Duration) (bool, error) {
	return r.fill(ctx, SplitKey(k), splitFloorKey(k), e.Revision, e, ttl)
}
