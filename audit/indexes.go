package audit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Names of the two variants of the occurred_at index: plain, or with a TTL
// when a retention is configured. Only one of them exists at a time.
const (
	occurredIndex    = "occurred_at"
	occurredTTLIndex = "occurred_at_ttl"
)

// ErrRetentionUnsupported means the server cannot expire documents (FerretDB
// v1 has no TTL indexes): the plain occurred_at index was kept instead and
// documents stay until deleted by hand.
var ErrRetentionUnsupported = errors.New("the audit store does not support TTL indexes; retention is not enforced")

// ErrDuplicateEvents means the unique event_id index cannot be built: older
// documents (with an ObjectId _id, written while the index was missing)
// share an event id. The other indexes are made, and new documents stay one
// per event (their _id is the event id); the index is built once the
// duplicates are deleted by hand.
var ErrDuplicateEvents = errors.New("audit documents share an event id; the unique event_id index is not built")

// EnsureIndexes creates the seed's four indexes; with retention > 0 the
// occurred_at index expires documents after it. Switching retention on, off
// or to another value on an existing collection replaces the other variant
// of the occurred_at index, since MongoDB refuses two indexes on the same
// key with different options.
//
// The unique event_id index is no longer what keeps one document per event
// (the _id is, see Insert); it keeps documents written before that unique
// too. ErrRetentionUnsupported and ErrDuplicateEvents (possibly joined)
// report what no retry will fix; every other index was made then.
//
// Indexes are created one per command: FerretDB v1.24 drops the connection
// when one createIndexes names several indexes that already exist.
func (s *Store) EnsureIndexes(ctx context.Context, retention time.Duration) error {
	err := s.ensureIndexes(ctx, retention)
	s.noteEnsured(retention, err)
	return err
}

func (s *Store) ensureIndexes(ctx context.Context, retention time.Duration) error {
	var dup error
	_, err := s.coll.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "event_id", Value: 1}}, Options: options.Index().SetName("event_id_unique").SetUnique(true),
	})
	if err != nil {
		if !s.duplicateEvents(ctx, err) {
			return fmt.Errorf("create audit indexes: %w", err)
		}
		dup = fmt.Errorf("create audit index event_id_unique: %w (%v)", ErrDuplicateEvents, err)
	}
	models := []mongo.IndexModel{
		{Keys: bson.D{{Key: "route.tenant", Value: 1}, {Key: "route.service", Value: 1}, {Key: "route.env", Value: 1}, {Key: "route.version", Value: 1}, {Key: "occurred_at", Value: -1}}, Options: options.Index().SetName("route_occurred_at")},
		{Keys: bson.D{{Key: "action", Value: 1}, {Key: "occurred_at", Value: -1}}, Options: options.Index().SetName("action_occurred_at")},
	}
	for _, m := range models {
		if _, err := s.coll.Indexes().CreateOne(ctx, m); err != nil {
			return fmt.Errorf("create audit indexes: %w", err)
		}
	}
	return errors.Join(dup, s.ensureOccurredIndex(ctx, retention))
}

// duplicateEvents reports whether the unique event_id index failed (with
// err) because documents share an event id. MongoDB says so with a
// duplicate key error; FerretDB v1 answers an InternalError with SQLite's
// message, so any answer of the server is checked against the data.
func (s *Store) duplicateEvents(ctx context.Context, err error) bool {
	var ce mongo.CommandError
	if !mongo.IsDuplicateKeyError(err) && !errors.As(err, &ce) {
		return false
	}
	cur, err := s.coll.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$event_id"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
		{{Key: "$match", Value: bson.D{{Key: "n", Value: bson.D{{Key: "$gt", Value: 1}}}}}},
		{{Key: "$limit", Value: 1}},
	})
	if err != nil {
		return false
	}
	defer cur.Close(ctx)
	return cur.Next(ctx)
}

func (s *Store) ensureOccurredIndex(ctx context.Context, retention time.Duration) error {
	specs, err := s.coll.Indexes().ListSpecifications(ctx)
	if err != nil {
		return fmt.Errorf("list audit indexes: %w", err)
	}
	existing := make([]indexInfo, 0, len(specs))
	for _, sp := range specs {
		existing = append(existing, indexInfo{name: sp.Name, occurredOnly: isOccurredKey(sp.KeysDocument), ttl: sp.ExpireAfterSeconds})
	}
	want := occurredWanted(retention)
	err = s.applyOccurredPlan(ctx, existing, want)
	if err != nil && want.ttl != nil && isNotImplemented(err) {
		// Nothing was dropped: the server refused the TTL option itself.
		if perr := s.applyOccurredPlan(ctx, existing, occurredWanted(0)); perr != nil {
			return perr
		}
		return fmt.Errorf("create audit index %s: %w (%v)", want.name, ErrRetentionUnsupported, err)
	}
	return err
}

// applyOccurredPlan creates want and drops what it replaces. It tries the
// creation first, so that a server refusing want (no TTL support) keeps the
// index it has; only when the new index conflicts with one to be replaced
// are the old ones dropped before creating it.
func (s *Store) applyOccurredPlan(ctx context.Context, existing []indexInfo, want indexInfo) error {
	drop, create := planOccurredIndex(existing, want)
	model := mongo.IndexModel{Keys: bson.D{{Key: "occurred_at", Value: -1}}, Options: options.Index().SetName(want.name)}
	if want.ttl != nil {
		model.Options.SetExpireAfterSeconds(*want.ttl)
	}
	if create {
		_, err := s.coll.Indexes().CreateOne(ctx, model)
		switch {
		case err == nil:
			create = false
		case len(drop) == 0 || isNotImplemented(err):
			return fmt.Errorf("create audit index %s: %w", want.name, err)
		}
	}
	for _, name := range drop {
		if err := s.coll.Indexes().DropOne(ctx, name); err != nil {
			return fmt.Errorf("drop audit index %s: %w", name, err)
		}
	}
	if create {
		if _, err := s.coll.Indexes().CreateOne(ctx, model); err != nil {
			return fmt.Errorf("create audit index %s: %w", want.name, err)
		}
	}
	return nil
}

// indexInfo is what planOccurredIndex needs to know of an existing index.
type indexInfo struct {
	name         string
	occurredOnly bool   // its key is exactly {occurred_at: -1}
	ttl          *int32 // expireAfterSeconds, if any
}

// occurredWanted is the occurred_at index for a retention.
func occurredWanted(retention time.Duration) indexInfo {
	if retention <= 0 {
		return indexInfo{name: occurredIndex, occurredOnly: true}
	}
	secs := int32(math.MaxInt32)
	if r := retention / time.Second; r < math.MaxInt32 {
		secs = int32(max(r, 1)) // 0 would expire documents at once
	}
	return indexInfo{name: occurredTTLIndex, occurredOnly: true, ttl: &secs}
}

// planOccurredIndex decides which existing indexes on occurred_at alone (or
// with one of our names) to drop and whether want must be created.
func planOccurredIndex(existing []indexInfo, want indexInfo) (drop []string, create bool) {
	create = true
	for _, ix := range existing {
		if !ix.occurredOnly && ix.name != occurredIndex && ix.name != occurredTTLIndex {
			continue
		}
		if ix.name == want.name && ix.occurredOnly && sameTTL(ix.ttl, want.ttl) {
			create = false
			continue
		}
		drop = append(drop, ix.name)
	}
	return drop, create
}

func sameTTL(a, b *int32) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// isOccurredKey reports whether an index key document is {occurred_at: -1}.
func isOccurredKey(keys bson.Raw) bool {
	elems, err := keys.Elements()
	if err != nil || len(elems) != 1 || elems[0].Key() != "occurred_at" {
		return false
	}
	v := elems[0].Value()
	if n, ok := v.AsInt64OK(); ok {
		return n == -1
	}
	if f, ok := v.DoubleOK(); ok {
		return f == -1
	}
	return false
}

// isNotImplemented reports a server's "not implemented" answer (FerretDB
// answers TTL index options with it).
func isNotImplemented(err error) bool {
	var ce mongo.CommandError
	return errors.As(err, &ce) && (ce.Code == 238 || ce.Name == "NotImplemented")
}
