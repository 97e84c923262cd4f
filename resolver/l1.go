package resolver

import (
	"encoding/json"
	"strings"
	"time"
	"unsafe"

	"github.com/maypok86/otter/v2"

	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/routes"
)

// kind says what an L1 entry holds.
type kind uint8

const (
	kindPositive  kind = iota + 1 // an active route: body holds {"url": ...}
	kindNegative                  // no such route, or an inactive one
	kindTombstone                 // no answer, only a revision floor left by an event
)

// entry is one L1 value. It is immutable once stored: a change replaces the
// pointer, so readers never lock.
//
// revision is the route revision the answer was read at (0 when no row
// existed) or, for a tombstone, the revision of the event that dropped the
// answer. Every fill compares against it, so an older read never replaces a
// newer one, whichever tier it comes from.
type entry struct {
	body       []byte // pre-encoded 200 body, positive entries only
	url        string
	revision   int64
	freshUntil int64 // unix nanos; past it the answer is stale
	staleUntil int64 // unix nanos; past it the answer is not served even when Postgres is down
	kind       kind
}

func (e *entry) answer(src Source) Answer { return Answer{e: e, src: src} }

func (e *entry) cacheEntry() cache.Entry {
	return cache.Entry{Found: e.kind == kindPositive, URL: e.url, Revision: e.revision}
}

// urlBody is the JSON body of a 200 answer.
type urlBody struct {
	URL string `json:"url"`
}

// newEntry builds the L1 entry of an answer read now, fresh for ttl.
func (r *Resolver) newEntry(found bool, url string, revision int64, ttl time.Duration) *entry {
	e := &entry{revision: revision, kind: kindNegative, url: url}
	if found {
		e.kind = kindPositive
		e.body, _ = json.Marshal(urlBody{URL: url}) // a string always encodes
	} else {
		e.url = ""
	}
	e.freshUntil = r.clock.NowNano() + int64(ttl)
	e.staleUntil = e.freshUntil + int64(r.staleFor)
	return e
}

// fromCacheEntry turns a Redis entry into an L1 entry.
func (r *Resolver) fromCacheEntry(c cache.Entry) *entry {
	if c.Found {
		return r.newEntry(true, c.URL, c.Revision, r.positiveTTL)
	}
	return r.newEntry(false, "", c.Revision, r.negativeTTL)
}

// newL1 returns the in-process cache, bounded by entry count only. Entries
// carry their own freshness deadline instead of an otter expiry: that keeps
// a read about 20 ns cheaper, lets an answer be served stale while Postgres
// is down, and keeps tombstones (revision floors) for as long as the size
// bound allows. Entries past their stale grace are treated as absent.
func newL1(entries int, clock otter.Clock) (*otter.Cache[string, *entry], error) {
	return otter.New(&otter.Options[string, *entry]{MaximumSize: entries, Clock: clock})
}

// l1Fill stores e under key unless the entry already there (an answer or a
// tombstone) carries a newer revision. It reports whether e is current, that
// is not older than what L1 knows of key: when L1 keeps no answers (only
// tombstones), e is not stored but is still checked against the tombstone.
func (r *Resolver) l1Fill(key string, e *entry) (current bool) {
	if !r.l1Answers && e.kind != kindTombstone {
		return r.l1Revision(key) <= e.revision
	}
	current = true
	r.l1.Compute(key, func(old *entry, found bool) (*entry, otter.ComputeOp) {
		if found && old.revision > e.revision {
			current = false
			return old, otter.CancelOp
		}
		return e, otter.WriteOp
	})
	return current
}

// l1Revision is the newest revision L1 knows of key, from an answer or an
// event's tombstone (0: none).
func (r *Resolver) l1Revision(key string) int64 {
	if e, ok := r.l1.GetIfPresent(key); ok {
		return e.revision
	}
	return 0
}

// l1Drop replaces the answer cached under key with a tombstone carrying
// revision, unless the cached answer is already at that revision or newer
// (a duplicate or late event). The tombstone stays until the size bound
// evicts it or a newer answer replaces it, so a read that started before the
// event cannot put its older answer back.
func (r *Resolver) l1Drop(key string, revision int64) {
	tomb := &entry{revision: revision, kind: kindTombstone}
	r.l1.Compute(key, func(old *entry, found bool) (*entry, otter.ComputeOp) {
		if found && old.revision >= revision {
			return old, otter.CancelOp
		}
		return tomb, otter.WriteOp
	})
}

// maxKeyLen is the longest valid "t/s/e/v": three 63-byte names, a 64-byte
// version and three separators.
const maxKeyLen = 3*63 + 64 + 3

// l1Key renders k as "tenant/service/env/version", the same string as the
// path suffix of a resolve request, so the HTTP handler can look the L1 up
// with a substring of the request path. The result is a heap string.
func l1Key(k routes.Key) string {
	return k.Tenant + "/" + k.Service + "/" + k.Env + "/" + k.Version
}

// keyBuf builds l1Key(k) in buf without allocating (a key too long to be
// valid spills to the heap). The string aliases buf: it is only valid while
// buf is and must not be stored (clone it first).
func keyBuf(buf *[maxKeyLen]byte, k routes.Key) string {
	b := append(buf[:0], k.Tenant...)
	b = append(b, '/')
	b = append(b, k.Service...)
	b = append(b, '/')
	b = append(b, k.Env...)
	b = append(b, '/')
	b = append(b, k.Version...)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// splitKey parses "tenant/service/env/version" (a resolve path suffix)
// without allocating: the parts are substrings of s. Missing parts are empty;
// anything after the third '/' belongs to the version, which validation then
// rejects.
func splitKey(s string) routes.Key {
	var parts [3]string
	for i := range parts {
		j := strings.IndexByte(s, '/')
		if j < 0 {
			parts[i], s = s, ""
			continue
		}
		parts[i], s = s[:j], s[j+1:]
	}
	return routes.Key{Tenant: parts[0], Service: parts[1], Env: parts[2], Version: s}
}
