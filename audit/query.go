package audit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/trafficmanager/trafficmanager/routes"
)

// Query limits, as API.md states them.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
	MaxDays      = 365
)

// ErrUnavailable marks a query that failed because MongoDB could not be
// reached in time; the API answers 503 for it rather than 500.
var ErrUnavailable = errors.New("audit store unavailable")

// Page selects one page of a query's answer.
type Page struct {
	// Limit is the page size: 0 means DefaultLimit, at most MaxLimit.
	Limit int
	// Cursor is a previous Result's NextCursor; the page continues strictly
	// after the last document of that page.
	Cursor string
	// Tenants restricts the answer to these tenants (a token's scope);
	// empty means every tenant.
	Tenants []string
}

// Result is one page of documents, newest first.
type Result struct {
	Events []Document `json:"events"`
	// NextCursor is set when more documents follow this page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// ByRoute returns the history of one route.
func (s *Store) ByRoute(ctx context.Context, r RouteRef, p Page) (Result, error) {
	if err := (routes.Key{Tenant: r.Tenant, Service: r.Service, Env: r.Env, Version: r.Version}).Validate(); err != nil {
		return Result{}, err
	}
	return s.find(ctx, "audit by route", p,
		bson.D{{Key: "route.tenant", Value: r.Tenant}},
		bson.D{{Key: "route.service", Value: r.Service}},
		bson.D{{Key: "route.env", Value: r.Env}},
		bson.D{{Key: "route.version", Value: r.Version}},
	)
}

// Recent returns the changes of the last days days (1 to MaxDays).
func (s *Store) Recent(ctx context.Context, days int, p Page) (Result, error) {
	if days < 1 || days > MaxDays {
		return Result{}, routes.Invalid("days", fmt.Sprintf("must be an integer from 1 to %d", MaxDays))
	}
	since := s.now().UTC().Add(-time.Duration(days) * 24 * time.Hour)
	return s.find(ctx, "recent audit", p, bson.D{{Key: "occurred_at", Value: bson.D{{Key: "$gte", Value: ceilMilli(since)}}}})
}

// ByAction returns the changes of one action.
func (s *Store) ByAction(ctx context.Context, action routes.Action, p Page) (Result, error) {
	if _, err := routes.ParseAction(string(action)); err != nil {
		return Result{}, err
	}
	return s.find(ctx, "audit by action", p, bson.D{{Key: "action", Value: string(action)}})
}

// TimeRange returns the changes with start <= occurred_at < end.
func (s *Store) TimeRange(ctx context.Context, start, end time.Time, p Page) (Result, error) {
	if start.IsZero() {
		return Result{}, routes.Invalid("start", "is required")
	}
	if end.IsZero() {
		return Result{}, routes.Invalid("end", "is required")
	}
	if !start.Before(end) {
		return Result{}, routes.Invalid("start", "must be before end")
	}
	// MongoDB keeps milliseconds: for a millisecond value d, d >= t and
	// d < t hold exactly when they hold for t rounded up to a millisecond.
	return s.find(ctx, "audit by time range", p, bson.D{{Key: "occurred_at", Value: bson.D{
		{Key: "$gte", Value: ceilMilli(start)},
		{Key: "$lt", Value: ceilMilli(end)},
	}}})
}

// find runs one page of a query: conds ANDed with the tenant scope and the
// cursor, sorted newest first with the event id as tiebreak so that equal
// timestamps still page without duplicates or gaps.
func (s *Store) find(ctx context.Context, op string, p Page, conds ...bson.D) (Result, error) {
	limit, err := p.limit()
	if err != nil {
		return Result{}, err
	}
	s.TryEnsureIndexes()
	and := bson.A{}
	for _, c := range conds {
		and = append(and, c)
	}
	if len(p.Tenants) > 0 {
		and = append(and, bson.D{{Key: "route.tenant", Value: bson.D{{Key: "$in", Value: p.Tenants}}}})
	}
	if p.Cursor != "" {
		at, id, err := DecodeCursor(p.Cursor)
		if err != nil {
			return Result{}, err
		}
		and = append(and, bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "occurred_at", Value: bson.D{{Key: "$lt", Value: at}}}},
			bson.D{{Key: "occurred_at", Value: at}, {Key: "event_id", Value: bson.D{{Key: "$lt", Value: id}}}},
		}}})
	}
	filter := bson.D{}
	if len(and) > 0 {
		filter = bson.D{{Key: "$and", Value: and}}
	}
	opts := options.Find().
		SetSort(bson.D{{Key: "occurred_at", Value: -1}, {Key: "event_id", Value: -1}}).
		SetProjection(bson.D{{Key: "_id", Value: 0}}). // an event id or, in older documents, an ObjectId: never part of the answer
		SetLimit(int64(limit + 1))
	cur, err := s.coll.Find(ctx, filter, opts)
	if err != nil {
		return Result{}, classify(op, err)
	}
	docs := make([]Document, 0, min(limit+1, 64))
	if err := cur.All(ctx, &docs); err != nil {
		return Result{}, classify(op, err)
	}
	for i := range docs {
		docs[i].OccurredAt = docs[i].OccurredAt.UTC()
		docs[i].ProcessedAt = docs[i].ProcessedAt.UTC()
	}
	res := Result{Events: docs}
	if len(docs) > limit {
		res.Events = docs[:limit]
		last := res.Events[limit-1]
		res.NextCursor = EncodeCursor(last.OccurredAt, last.EventID)
	}
	return res, nil
}

func (p Page) limit() (int, error) {
	switch {
	case p.Limit == 0:
		return DefaultLimit, nil
	case p.Limit < 0 || p.Limit > MaxLimit:
		return 0, routes.Invalid("limit", fmt.Sprintf("must be an integer from 1 to %d", MaxLimit))
	}
	return p.Limit, nil
}

// EncodeCursor makes the opaque cursor that continues after the document
// (occurredAt, eventID).
func EncodeCursor(occurredAt time.Time, eventID string) string {
	b, _ := json.Marshal(cursor{At: occurredAt.UnixMilli(), ID: eventID})
	return base64.RawURLEncoding.EncodeToString(b)
}

type cursor struct {
	At int64  `json:"t"`
	ID string `json:"id"`
}

// DecodeCursor parses a cursor made by EncodeCursor; anything else is an
// invalid argument.
func DecodeCursor(c string) (time.Time, string, error) {
	bad := routes.Invalid("cursor", "is not a cursor returned by this API")
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", bad
	}
	var cur cursor
	if err := json.Unmarshal(b, &cur); err != nil || cur.ID == "" {
		return time.Time{}, "", bad
	}
	// Keep the instant inside what a BSON datetime and RFC 3339 both hold.
	const maxMilli = 253402300799999 // 9999-12-31T23:59:59.999Z
	if cur.At < -62135596800000 || cur.At > maxMilli {
		return time.Time{}, "", bad
	}
	return time.UnixMilli(cur.At).UTC(), cur.ID, nil
}

// ceilMilli rounds t up to a whole millisecond.
func ceilMilli(t time.Time) time.Time {
	f := t.Truncate(time.Millisecond)
	if f.Before(t) {
		f = f.Add(time.Millisecond)
	}
	return f.UTC()
}

// classify wraps a driver error, marking the ones that mean "MongoDB is
// unreachable or too slow right now" with ErrUnavailable.
func classify(op string, err error) error {
	var sel topology.ServerSelectionError
	if mongo.IsTimeout(err) || mongo.IsNetworkError(err) || errors.As(err, &sel) ||
		errors.Is(err, context.Canceled) || errors.Is(err, mongo.ErrClientDisconnected) {
		return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
