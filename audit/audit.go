// Package audit is the MongoDB audit trail: one document per route change,
// keyed by the change's event id, answering "who changed this route, when,
// and what was it before?".
package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/trafficmanager/trafficmanager/events"
)

// CollectionName is the collection holding audit documents.
const CollectionName = "route_audit"

// RouteRef names the changed route inside a document.
type RouteRef struct {
	Tenant  string `bson:"tenant" json:"tenant"`
	Service string `bson:"service" json:"service"`
	Env     string `bson:"env" json:"env"`
	Version string `bson:"version" json:"version"`
}

// Metadata carries what ties a document to the rest of the system.
type Metadata struct {
	Revision   int64  `bson:"revision" json:"revision"`
	IsActive   bool   `bson:"is_active" json:"is_active"`
	WorkflowID string `bson:"workflow_id,omitempty" json:"workflow_id,omitempty"`
	RunID      string `bson:"run_id,omitempty" json:"run_id,omitempty"`
	Source     string `bson:"source,omitempty" json:"source,omitempty"` // "workflow" or "backfill"
	Principal  string `bson:"principal,omitempty" json:"principal,omitempty"`
	// RollbackTo is the revision a rollback or revert restored.
	RollbackTo int64 `bson:"rollback_to,omitempty" json:"rollback_to,omitempty"`
	// RequestedBy and ApprovedBy name who asked for the change and who
	// approved it.
	RequestedBy string `bson:"requested_by,omitempty" json:"requested_by,omitempty"`
	ApprovedBy  string `bson:"approved_by,omitempty" json:"approved_by,omitempty"`
	// Weights and PreviousWeights are a split change's (split_changed
	// documents only, see FromSplitEvent).
	Weights         map[string]int `bson:"weights,omitempty" json:"weights,omitempty"`
	PreviousWeights map[string]int `bson:"previous_weights,omitempty" json:"previous_weights,omitempty"`
}

// Document is one audit record, in the seed's structure.
type Document struct {
	EventID       string    `bson:"event_id" json:"event_id"`
	EventType     string    `bson:"event_type" json:"event_type"`
	Action        string    `bson:"action" json:"action"`
	Route         RouteRef  `bson:"route" json:"route"`
	URL           string    `bson:"url" json:"url"`
	PreviousURL   string    `bson:"previous_url" json:"previous_url"`
	PreviousState string    `bson:"previous_state" json:"previous_state"`
	ChangedBy     string    `bson:"changed_by" json:"changed_by"`
	OccurredAt    time.Time `bson:"occurred_at" json:"occurred_at"`
	ProcessedAt   time.Time `bson:"processed_at" json:"processed_at"`
	Metadata      Metadata  `bson:"metadata" json:"metadata"`
}

// FromEvent builds the document of an event; ProcessedAt is set on insert.
func FromEvent(e events.Event, source string) Document {
	return Document{
		EventID:       e.EventID,
		EventType:     events.TypeRouteChanged,
		Action:        string(e.Action),
		Route:         RouteRef{Tenant: e.Tenant, Service: e.Service, Env: e.Env, Version: e.Version},
		URL:           e.URL,
		PreviousURL:   e.PreviousURL,
		PreviousState: e.PreviousState,
		ChangedBy:     e.ChangedBy,
		OccurredAt:    e.OccurredAt.UTC(),
		Metadata: Metadata{
			Revision:    e.Revision,
			IsActive:    e.IsActive,
			WorkflowID:  e.WorkflowID,
			RunID:       e.RunID,
			Source:      source,
			Principal:   e.Principal,
			RollbackTo:  e.RollbackTo,
			RequestedBy: e.RequestedBy,
			ApprovedBy:  e.ApprovedBy,
		},
	}
}

// Store is the audit collection.
type Store struct {
	coll *mongo.Collection
	now  func() time.Time
	idx  indexState
}

// NewStore returns the store over db's audit collection. Without
// WithLazyIndexes, indexes are made only by calling EnsureIndexes.
func NewStore(db *mongo.Database, opts ...Option) *Store {
	s := &Store{coll: db.Collection(CollectionName), now: time.Now}
	s.idx.every, s.idx.timeout = lazyIndexesEvery, lazyIndexesTimeout
	for _, o := range opts {
		o(s)
	}
	return s
}

// Collection returns the underlying collection.
func (s *Store) Collection() *mongo.Collection { return s.coll }

// stored is a document as written: its _id is its event id, so MongoDB's
// own _id uniqueness keeps one document per event whether or not the
// indexes exist yet. Documents written before this have an ObjectId _id
// (the event_id_unique index keeps those unique); reads decode into
// Document, which has no _id, so both shapes read alike.
type stored struct {
	ID       string `bson:"_id"`
	Document `bson:",inline"`
}

// Insert stores doc once. A document with the same event id already present
// is success (inserted=false): retries and replays never make a second one.
func (s *Store) Insert(ctx context.Context, doc Document) (inserted bool, err error) {
	s.TryEnsureIndexes()
	if doc.ProcessedAt.IsZero() {
		doc.ProcessedAt = s.now().UTC()
	}
	_, err = s.coll.InsertOne(ctx, stored{ID: doc.EventID, Document: doc})
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("insert audit %s: %w", doc.EventID, err)
	}
	return true, nil
}

// InsertMany stores each document once, in one unordered bulk insert.
// Documents whose event id is already present (or repeated in docs) are
// skipped, so a retry of a partly applied batch completes it without
// duplicates. It returns how many documents were new.
func (s *Store) InsertMany(ctx context.Context, docs []Document) (inserted int, err error) {
	if len(docs) == 0 {
		return 0, nil
	}
	s.TryEnsureIndexes()
	now := s.now().UTC()
	batch := make([]any, len(docs))
	for i, d := range docs {
		if d.ProcessedAt.IsZero() {
			d.ProcessedAt = now
		}
		batch[i] = stored{ID: d.EventID, Document: d}
	}
	res, err := s.coll.InsertMany(ctx, batch, options.InsertMany().SetOrdered(false))
	if res != nil {
		inserted = len(res.InsertedIDs)
	}
	var bulk mongo.BulkWriteException
	if errors.As(err, &bulk) && bulk.WriteConcernError == nil && onlyDuplicates(bulk.WriteErrors) {
		return len(docs) - len(bulk.WriteErrors), nil
	}
	if err != nil {
		return inserted, fmt.Errorf("insert %d audit documents: %w", len(docs), err)
	}
	return inserted, nil
}

func onlyDuplicates(errs []mongo.BulkWriteError) bool {
	for _, e := range errs {
		if e.Code != 11000 {
			return false
		}
	}
	return len(errs) > 0
}
