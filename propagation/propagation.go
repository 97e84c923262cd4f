// Package propagation answers "did my change reach the resolvers?" (issue
// 16). Every resolver instance runs a Reporter: it heartbeats into Redis and
// records, per route, the newest revision it has applied from the route-event
// stream. The api reads that through a Registry: which resolvers are live,
// and how many of them have applied a given revision of a route.
//
// Redis layout (prefix "tm:" by default):
//
//	tm:resolvers               ZSET  member resolver id, score last heartbeat (unix ms)
//	tm:resolver:{id}           HASH  address, started_at, last_heartbeat, lag_ms, applied_events
//	tm:resolver:{id}:applied   HASH  route key -> newest applied revision
//
// The two hashes carry a TTL that each heartbeat renews, so a resolver that
// dies without removing itself leaves the live set after the liveness window
// (its heartbeat score gets old) and its data expires after the TTL; live
// reporters prune such members from the ZSET.
//
// The package depends on go-redis and zap only: the resolver links it, and
// the resolver must not link the write path.
package propagation

import (
	"strings"
	"time"
)

// DefaultPrefix is the key prefix of the Redis layout.
const DefaultPrefix = "tm:"

// Defaults for zero option fields.
const (
	DefaultHeartbeat = time.Second
	DefaultFlush     = 100 * time.Millisecond
	DefaultTTL       = 30 * time.Second
	DefaultLiveness  = 5 * time.Second
	DefaultPoll      = 20 * time.Millisecond
)

// keys are the Redis key names under one prefix.
type keys struct{ prefix string }

func newKeys(prefix string) keys {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return keys{prefix: prefix}
}

func (k keys) set() string               { return k.prefix + "resolvers" }
func (k keys) resolverBase() string      { return k.prefix + "resolver:" }
func (k keys) resolver(id string) string { return k.resolverBase() + id }
func (k keys) applied(id string) string  { return k.resolverBase() + id + appliedSuffix }

const appliedSuffix = ":applied"

// Resolver is one live resolver instance as reported by its last heartbeat.
type Resolver struct {
	ID            string    `json:"id"`
	Address       string    `json:"address,omitempty"`
	StartedAt     time.Time `json:"started_at"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
	// LagMS is how long the last change it applied took to reach it: the
	// time it applied the event minus the event's occurred_at (commit time).
	LagMS int64 `json:"lag_ms"`
	// AppliedEvents counts the route events it applied since it started.
	AppliedEvents int64 `json:"applied_events"`
}

// Change names one route revision whose propagation is asked for.
type Change struct {
	// Key is the route key as the resolver reports it (routes.Key.String():
	// tenant:service:env:version).
	Key      string
	Revision int64
	// CommittedAt is the commit time of Revision (the route's updated_at,
	// the event's occurred_at); zero when unknown. A resolver that
	// subscribed to the event stream after it has an empty cache for the
	// route or applies the event, so it counts as applied without a record.
	CommittedAt time.Time
}

// Propagation says how far one change has reached: how many live resolvers
// there are, how many of them have applied the change, and which have not.
type Propagation struct {
	Resolvers int  `json:"resolvers"`
	Applied   int  `json:"applied"`
	Complete  bool `json:"complete"`
	// Pending lists the ids of the live resolvers that have not applied the
	// change yet, sorted; empty when Complete.
	Pending []string `json:"pending"`
}

// validID reports whether id can name a resolver: not empty, printable,
// without whitespace, at most 200 bytes.
func validID(id string) bool {
	return id != "" && len(id) <= 200 && !strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r == 0x7f })
}

func unixMS(t time.Time) int64 { return t.UnixMilli() }

func fromMS(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
