package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// base is "now" for the seeded data: documents lie between 40 days before
// it and base itself.
var base = time.Date(2025, 6, 15, 12, 0, 0, 0, time.UTC)

var (
	tenants = []string{"team-a", "team-b", "team-c"}
	actions = []routes.Action{routes.ActionCreated, routes.ActionUpdated, routes.ActionActivated, routes.ActionDeactivated}
)

// seed inserts n documents spanning tenants, two routes per tenant, every
// action and 40 days; every third document shares its occurred_at with the
// one before, so the event_id tiebreak is exercised.
func seed(t *testing.T, n int) (*Store, []Document) {
	t.Helper()
	store := NewStore(testenv.Mongo(t))
	store.now = func() time.Time { return base }
	ctx := context.Background()
	require.NoError(t, store.EnsureIndexes(ctx, 0))
	docs := make([]Document, 0, n)
	at := base
	for i := range n {
		if i%3 != 2 {
			at = base.Add(-time.Duration(i) * 40 * 24 * time.Hour / time.Duration(n))
		}
		d := Document{
			EventID:   fmt.Sprintf("evt-%04d-%02d", (i*7919)%10000, i%100), // not in time order
			EventType: "route_changed",
			Action:    string(actions[i%len(actions)]),
			Route:     RouteRef{Tenant: tenants[i%len(tenants)], Service: "payments", Env: "prod", Version: []string{"v1", "v2"}[i/len(tenants)%2]},
			URL:       fmt.Sprintf("https://pay-%d.example", i),
			ChangedBy: "alice@example.com",
			// Stored with millisecond precision, so seed it that way.
			OccurredAt:  at.Truncate(time.Millisecond),
			ProcessedAt: base.Add(time.Duration(i) * time.Millisecond),
			Metadata:    Metadata{Revision: int64(i + 1), IsActive: i%2 == 0, Source: "workflow"},
		}
		inserted, err := store.Insert(ctx, d)
		require.NoError(t, err)
		require.True(t, inserted)
		docs = append(docs, d)
	}
	return store, docs
}

// newestFirst returns the documents matching keep in the API's order.
func newestFirst(docs []Document, keep func(Document) bool) []Document {
	var out []Document
	for _, d := range docs {
		if keep(d) {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].OccurredAt.Equal(out[j].OccurredAt) {
			return out[i].OccurredAt.After(out[j].OccurredAt)
		}
		return out[i].EventID > out[j].EventID
	})
	return out
}

func ids(docs []Document) []string {
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = d.EventID
	}
	return out
}

// walk pages through a query with page size limit and returns every event.
func walk(t *testing.T, limit int, q func(Page) (Result, error)) []Document {
	t.Helper()
	var all []Document
	p := Page{Limit: limit}
	for range 1000 {
		res, err := q(p)
		require.NoError(t, err)
		require.LessOrEqual(t, len(res.Events), limit)
		all = append(all, res.Events...)
		if res.NextCursor == "" {
			return all
		}
		require.Len(t, res.Events, limit, "a page with a next cursor is full")
		p.Cursor = res.NextCursor
	}
	t.Fatal("pagination did not end")
	return nil
}

func TestAuditEveryQueryReturnsItsDocumentsNewestFirstAcrossPages(t *testing.T) {
	store, docs := seed(t, 90)
	ctx := context.Background()
	route := RouteRef{Tenant: "team-b", Service: "payments", Env: "prod", Version: "v2"}
	start, end := base.Add(-20*24*time.Hour), base.Add(-5*24*time.Hour)
	cases := []struct {
		name  string
		query func(Page) (Result, error)
		keep  func(Document) bool
	}{
		{"by route returns one route's history", func(p Page) (Result, error) { return store.ByRoute(ctx, route, p) },
			func(d Document) bool { return d.Route == route }},
		{"recent returns the last ten days", func(p Page) (Result, error) { return store.Recent(ctx, 10, p) },
			func(d Document) bool { return !d.OccurredAt.Before(base.Add(-10 * 24 * time.Hour)) }},
		{"by action returns one action", func(p Page) (Result, error) { return store.ByAction(ctx, routes.ActionActivated, p) },
			func(d Document) bool { return d.Action == "activated" }},
		{"time range includes start and excludes end", func(p Page) (Result, error) { return store.TimeRange(ctx, start, end, p) },
			func(d Document) bool { return !d.OccurredAt.Before(start) && d.OccurredAt.Before(end) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := newestFirst(docs, tc.keep)
			require.NotEmpty(t, want)
			require.Less(t, len(want), len(docs))

			res, err := tc.query(Page{})
			require.NoError(t, err)
			require.Equal(t, ids(want), ids(res.Events), "one page with the default limit")
			require.Empty(t, res.NextCursor)

			for _, size := range []int{1, 4, 7, len(want), len(want) - 1} {
				got := walk(t, size, tc.query)
				require.Equal(t, ids(want), ids(got), "pages of %d: every document once, in order", size)
			}
		})
	}
}

func TestAuditTimeRangeBoundsAreStartInclusiveEndExclusive(t *testing.T) {
	store, docs := seed(t, 30)
	ctx := context.Background()
	d := docs[10]
	res, err := store.TimeRange(ctx, d.OccurredAt, d.OccurredAt.Add(time.Millisecond), Page{})
	require.NoError(t, err)
	require.Contains(t, ids(res.Events), d.EventID, "start is inclusive")
	res, err = store.TimeRange(ctx, d.OccurredAt.Add(-time.Hour), d.OccurredAt, Page{})
	require.NoError(t, err)
	require.NotContains(t, ids(res.Events), d.EventID, "end is exclusive")
	// A sub-millisecond end just after the document still includes it.
	res, err = store.TimeRange(ctx, d.OccurredAt.Add(-time.Hour), d.OccurredAt.Add(time.Microsecond), Page{})
	require.NoError(t, err)
	require.Contains(t, ids(res.Events), d.EventID)
}

func TestAuditDocumentsComeBackAsStoredWithUTCTimes(t *testing.T) {
	store, docs := seed(t, 5)
	res, err := store.ByRoute(context.Background(), docs[0].Route, Page{})
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	got := res.Events[0]
	require.Equal(t, time.UTC, got.OccurredAt.Location())
	require.Equal(t, time.UTC, got.ProcessedAt.Location())
	require.Equal(t, docs[0], got)
}

func TestAuditLimitDefaultsToOneHundredAndRejectsOutOfRange(t *testing.T) {
	store, _ := seed(t, 130)
	ctx := context.Background()
	res, err := store.Recent(ctx, 365, Page{})
	require.NoError(t, err)
	require.Len(t, res.Events, DefaultLimit)
	require.NotEmpty(t, res.NextCursor)

	res, err = store.Recent(ctx, 365, Page{Limit: MaxLimit})
	require.NoError(t, err)
	require.Len(t, res.Events, 130)
	require.Empty(t, res.NextCursor)

	for _, limit := range []int{-1, MaxLimit + 1} {
		_, err := store.Recent(ctx, 365, Page{Limit: limit})
		requireInvalid(t, err, "limit")
	}
}

func TestAuditTenantScopeRestrictsEveryQuery(t *testing.T) {
	store, docs := seed(t, 60)
	ctx := context.Background()
	scope := []string{"team-a", "team-c"}
	inScope := func(d Document) bool { return slices.Contains(scope, d.Route.Tenant) }

	got := walk(t, 9, func(p Page) (Result, error) { p.Tenants = scope; return store.Recent(ctx, 365, p) })
	require.Equal(t, ids(newestFirst(docs, inScope)), ids(got))

	got = walk(t, 5, func(p Page) (Result, error) { p.Tenants = scope; return store.ByAction(ctx, routes.ActionCreated, p) })
	require.Equal(t, ids(newestFirst(docs, func(d Document) bool { return inScope(d) && d.Action == "created" })), ids(got))

	got = walk(t, 5, func(p Page) (Result, error) {
		p.Tenants = scope
		return store.TimeRange(ctx, base.Add(-30*24*time.Hour), base, p)
	})
	require.Equal(t, ids(newestFirst(docs, func(d Document) bool {
		return inScope(d) && !d.OccurredAt.Before(base.Add(-30*24*time.Hour)) && d.OccurredAt.Before(base)
	})), ids(got))

	res, err := store.ByRoute(ctx, RouteRef{Tenant: "team-b", Service: "payments", Env: "prod", Version: "v1"}, Page{Tenants: scope})
	require.NoError(t, err)
	require.Empty(t, res.Events, "another tenant's route shows nothing")
	require.NotNil(t, res.Events)

	res, err = store.Recent(ctx, 365, Page{Tenants: []string{""}})
	require.NoError(t, err)
	require.Empty(t, res.Events, "a scope without tenants matches nothing")
}

func TestAuditBadArgumentsAreInvalidNotFailures(t *testing.T) {
	store := NewStore(testenv.Mongo(t))
	ctx := context.Background()
	okRoute := RouteRef{Tenant: "team-a", Service: "payments", Env: "prod", Version: "v1"}
	cases := []struct {
		name  string
		field string
		run   func() error
	}{
		{"a route without a tenant", "tenant", func() error {
			_, err := store.ByRoute(ctx, RouteRef{Service: "payments", Env: "prod", Version: "v1"}, Page{})
			return err
		}},
		{"a route with an uppercase service", "service", func() error {
			_, err := store.ByRoute(ctx, RouteRef{Tenant: "team-a", Service: "Payments", Env: "prod", Version: "v1"}, Page{})
			return err
		}},
		{"zero days", "days", func() error { _, err := store.Recent(ctx, 0, Page{}); return err }},
		{"366 days", "days", func() error { _, err := store.Recent(ctx, 366, Page{}); return err }},
		{"an unknown action", "action", func() error { _, err := store.ByAction(ctx, "deleted", Page{}); return err }},
		{"start equal to end", "start", func() error { _, err := store.TimeRange(ctx, base, base, Page{}); return err }},
		{"start after end", "start", func() error { _, err := store.TimeRange(ctx, base, base.Add(-time.Second), Page{}); return err }},
		{"a cursor that is not base64", "cursor", func() error { _, err := store.ByRoute(ctx, okRoute, Page{Cursor: "!!"}); return err }},
		{"a cursor that is not ours", "cursor", func() error { _, err := store.ByRoute(ctx, okRoute, Page{Cursor: "e30"}); return err }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { requireInvalid(t, tc.run(), tc.field) })
	}
}

func requireInvalid(t *testing.T, err error, field string) {
	t.Helper()
	var inv *routes.InvalidError
	require.ErrorAs(t, err, &inv)
	require.Equal(t, field, inv.Field)
}

func TestAuditCursorRoundTrips(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	gotAt, gotID, err := DecodeCursor(EncodeCursor(at, "evt-1"))
	require.NoError(t, err)
	require.Equal(t, at, gotAt)
	require.Equal(t, "evt-1", gotID)
}

func TestAuditTenConcurrentInsertsOfOneEventMakeOneDocument(t *testing.T) {
	store := NewStore(testenv.Mongo(t))
	ctx := context.Background()
	require.NoError(t, store.EnsureIndexes(ctx, 0))
	doc := Document{EventID: "evt-dup", EventType: "route_changed", Action: "created",
		Route: RouteRef{Tenant: "team-a", Service: "payments", Env: "prod", Version: "v1"}, OccurredAt: base}

	var wg sync.WaitGroup
	inserted := make([]bool, 10)
	errs := make([]error, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inserted[i], errs[i] = store.Insert(ctx, doc)
		}()
	}
	wg.Wait()
	wins := 0
	for i := range 10 {
		require.NoError(t, errs[i])
		if inserted[i] {
			wins++
		}
	}
	require.Equal(t, 1, wins)
	n, err := store.Collection().CountDocuments(ctx, bson.D{{Key: "event_id", Value: "evt-dup"}})
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
}

func TestAuditQueriesAgainstAnUnreachableServerAreUnavailable(t *testing.T) {
	client, err := mongo.Connect(options.Client().ApplyURI("mongodb://127.0.0.1:1/").SetServerSelectionTimeout(300 * time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	store := NewStore(client.Database("nowhere"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = store.ByAction(ctx, routes.ActionCreated, Page{})
	require.True(t, errors.Is(err, ErrUnavailable), "got %v", err)
}

func TestAuditInsertManySkipsDocumentsAlreadyPresent(t *testing.T) {
	store := NewStore(testenv.Mongo(t))
	ctx := context.Background()
	require.NoError(t, store.EnsureIndexes(ctx, 0))
	tenant := testenv.Name(t, "team")
	docs := make([]Document, 200)
	for i := range docs {
		docs[i] = Document{
			EventID: fmt.Sprintf("%s-%d", tenant, i), EventType: "route_changed", Action: "created",
			Route: RouteRef{Tenant: tenant, Service: "payments", Env: "prod", Version: fmt.Sprintf("v%d", i)},
			URL:   "https://x.example", OccurredAt: time.Now().UTC(),
		}
	}
	// A first attempt that stored only some documents, then the retry of all.
	n, err := store.InsertMany(ctx, docs[:70])
	require.NoError(t, err)
	require.Equal(t, 70, n)
	n, err = store.InsertMany(ctx, docs)
	require.NoError(t, err)
	require.Equal(t, 130, n)
	n, err = store.InsertMany(ctx, docs)
	require.NoError(t, err)
	require.Zero(t, n)
	count, err := store.Collection().CountDocuments(ctx, bson.D{{Key: "route.tenant", Value: tenant}})
	require.NoError(t, err)
	require.EqualValues(t, 200, count)
}

// BenchmarkInsertOne is the audit share of a single mutation's
// acknowledgement: one document into the embedded store (FerretDB).
func BenchmarkInsertOne(b *testing.B) {
	store := NewStore(testenv.Mongo(b))
	ctx := context.Background()
	require.NoError(b, store.EnsureIndexes(ctx, 0))
	tenant := testenv.Name(b, "team")
	b.ResetTimer()
	for i := range b.N {
		doc := Document{EventID: fmt.Sprintf("%s-%d", tenant, i), EventType: "route_changed", Action: "created",
			Route: RouteRef{Tenant: tenant, Service: "payments", Env: "prod", Version: "v1"}, URL: "https://x.example", OccurredAt: time.Now().UTC()}
		if _, err := store.Insert(ctx, doc); err != nil {
			b.Fatal(err)
		}
	}
}
