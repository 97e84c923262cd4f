package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/trafficmanager/trafficmanager/internal/devstack"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
)

func eventDoc(tenant, id string) Document {
	return Document{
		EventID: id, EventType: "route_changed", Action: "updated",
		Route: RouteRef{Tenant: tenant, Service: "payments", Env: "prod", Version: "v1"},
		URL:   "https://" + id + ".example", ChangedBy: "alice@example.com",
		OccurredAt: base.Truncate(time.Millisecond), ProcessedAt: base,
		Metadata: Metadata{Revision: 1, IsActive: true, Source: "workflow"},
	}
}

// docsPerEvent counts the stored documents of each event id and checks that
// the ones written by the store have the event id as _id.
func docsPerEvent(t *testing.T, s *Store) map[string]int {
	t.Helper()
	cur, err := s.coll.Find(context.Background(), bson.D{})
	require.NoError(t, err)
	var raw []bson.M
	require.NoError(t, cur.All(context.Background(), &raw))
	out := map[string]int{}
	for _, d := range raw {
		id, _ := d["event_id"].(string)
		out[id]++
		if _, legacy := d["_id"].(bson.ObjectID); !legacy {
			require.Equal(t, id, d["_id"], "a document's _id is its event id")
		}
	}
	return out
}

func TestAuditInsertsKeepOneDocumentPerEventWithoutAnyIndex(t *testing.T) {
	store := NewStore(testenv.Mongo(t))
	ctx := context.Background()
	tenant := testenv.Name(t, "team")
	doc := func(i int) Document { return eventDoc(tenant, fmt.Sprintf("%s-evt-%d", tenant, i)) }

	inserted, err := store.Insert(ctx, doc(1))
	require.NoError(t, err)
	require.True(t, inserted)
	inserted, err = store.Insert(ctx, doc(1))
	require.NoError(t, err)
	require.False(t, inserted, "a replay is success without a second document")

	// A retried batch overlapping what is stored and repeating itself.
	n, err := store.InsertMany(ctx, []Document{doc(1), doc(2), doc(3), doc(2)})
	require.NoError(t, err)
	require.Equal(t, 2, n)
	n, err = store.InsertMany(ctx, []Document{doc(3), doc(2), doc(1)})
	require.NoError(t, err)
	require.Zero(t, n)

	// Concurrent single and batch inserts of the same new events.
	var wg sync.WaitGroup
	wins, errs := make([]int, 8), make([]error, 8)
	for w := range 8 {
		wg.Go(func() {
			if w%2 == 0 {
				wins[w], errs[w] = store.InsertMany(ctx, []Document{doc(4), doc(5), doc(6)})
				return
			}
			ok, err := store.Insert(ctx, doc(4+w%3))
			if ok {
				wins[w] = 1
			}
			errs[w] = err
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	total := 0
	for _, n := range wins {
		total += n
	}
	require.Equal(t, 3, total, "each new event is inserted by exactly one writer")

	want := map[string]int{}
	for i := 1; i <= 6; i++ {
		want[doc(i).EventID] = 1
	}
	require.Equal(t, want, docsPerEvent(t, store))
	require.Equal(t, []string{"_id_"}, slices.Sorted(maps.Keys(indexNames(t, store))), "no index was ever created")
}

func TestAuditDocumentsWithAnObjectIDReadAndDeduplicateAsBefore(t *testing.T) {
	store := NewStore(testenv.Mongo(t))
	ctx := context.Background()
	require.NoError(t, store.EnsureIndexes(ctx, 0))
	tenant := testenv.Name(t, "team")
	legacy, current := eventDoc(tenant, tenant+"-old"), eventDoc(tenant, tenant+"-new")
	legacy.OccurredAt = legacy.OccurredAt.Add(-time.Hour)

	// Written as before: the driver gives the document an ObjectId _id.
	_, err := store.coll.InsertOne(ctx, legacy)
	require.NoError(t, err)
	inserted, err := store.Insert(ctx, legacy)
	require.NoError(t, err)
	require.False(t, inserted, "the event_id_unique index still refuses a second document of an old event")
	inserted, err = store.Insert(ctx, current)
	require.NoError(t, err)
	require.True(t, inserted)
	require.Equal(t, map[string]int{legacy.EventID: 1, current.EventID: 1}, docsPerEvent(t, store))

	res, err := store.ByRoute(ctx, current.Route, Page{})
	require.NoError(t, err)
	require.Equal(t, []Document{current, legacy}, res.Events)

	// The API's JSON shape is the Document's, without _id.
	body, err := json.Marshal(res)
	require.NoError(t, err)
	var shape struct {
		Events []map[string]json.RawMessage `json:"events"`
	}
	require.NoError(t, json.Unmarshal(body, &shape))
	require.Len(t, shape.Events, 2)
	for _, e := range shape.Events {
		require.Equal(t, []string{"action", "changed_by", "event_id", "event_type", "metadata", "occurred_at",
			"previous_state", "previous_url", "processed_at", "route", "url"}, slices.Sorted(maps.Keys(e)))
	}
}

func TestAuditEnsureIndexesBuildsTheRestWhenOldDocumentsShareAnEventID(t *testing.T) {
	store := NewStore(testenv.Mongo(t), WithLazyIndexes(0, zaptest.NewLogger(t)))
	ctx := context.Background()
	tenant := testenv.Name(t, "team")
	dup := eventDoc(tenant, tenant+"-dup")
	// What a process that started without the index could leave behind.
	_, err := store.coll.InsertMany(ctx, []any{dup, dup})
	require.NoError(t, err)

	err = store.EnsureIndexes(ctx, 0)
	require.ErrorIs(t, err, ErrDuplicateEvents)
	names := indexNames(t, store)
	require.NotContains(t, names, "event_id_unique")
	for _, n := range []string{"route_occurred_at", "action_occurred_at", occurredIndex} {
		require.Contains(t, names, n)
	}
	require.True(t, store.IndexesEnsured(), "no retry can fix it: it is not retried")
	inserted, err := store.Insert(ctx, dup)
	require.NoError(t, err)
	require.True(t, inserted, "an _id-keyed document of the event is new")
	inserted, err = store.Insert(ctx, dup)
	require.NoError(t, err)
	require.False(t, inserted)
}

// A store built while MongoDB is down (a worker started before it) keeps
// one document per event through the retries of its writes and makes its
// indexes once MongoDB is there, without a restart.
func TestAuditStoreStartedWhileMongoDBIsDownCatchesUpOnceItIsUp(t *testing.T) {
	port, err := devstack.FreePort()
	require.NoError(t, err)
	client, err := mongo.Connect(options.Client().ApplyURI(fmt.Sprintf("mongodb://127.0.0.1:%d/", port)).
		SetServerSelectionTimeout(300 * time.Millisecond).SetTimeout(5 * time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	store := NewStore(client.Database("audit"), WithLazyIndexes(0, zaptest.NewLogger(t)))
	store.idx.every = 100 * time.Millisecond
	ctx := context.Background()
	tenant := testenv.Name(t, "team")
	docs := make([]Document, 5)
	for i := range docs {
		docs[i] = eventDoc(tenant, fmt.Sprintf("%s-evt-%d", tenant, i))
	}

	began := time.Now()
	store.TryEnsureIndexes() // as the worker does at start
	require.Less(t, time.Since(began), 50*time.Millisecond, "ensuring indexes never blocks the caller")
	_, err = store.Insert(ctx, docs[0])
	require.Error(t, err)
	_, err = store.InsertMany(ctx, docs)
	require.Error(t, err)
	require.False(t, store.IndexesEnsured())

	// MongoDB comes up where the store points; this test's own FerretDB,
	// since the shared one of testenv cannot be started late.
	m, err := devstack.StartMongo(ctx, t.TempDir(), port)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Stop() })

	// The writes are retried as the activities' retry policy does; the
	// whole batch is retried and replayed, overlapping the single insert.
	retry := func(write func() error) {
		t.Helper()
		require.Eventually(t, func() bool { return write() == nil }, 20*time.Second, 100*time.Millisecond)
	}
	retry(func() error { _, err := store.Insert(ctx, docs[0]); return err })
	retry(func() error {
		n, err := store.InsertMany(ctx, docs)
		if err == nil && n != len(docs)-1 {
			return fmt.Errorf("inserted %d, want %d", n, len(docs)-1)
		}
		return err
	})
	n, err := store.InsertMany(ctx, docs)
	require.NoError(t, err)
	require.Zero(t, n)

	want := map[string]int{}
	for _, d := range docs {
		want[d.EventID] = 1
	}
	require.Equal(t, want, docsPerEvent(t, store))
	require.Eventually(t, store.IndexesEnsured, 20*time.Second, 50*time.Millisecond)
	names := indexNames(t, store)
	for _, n := range []string{"event_id_unique", "route_occurred_at", "action_occurred_at", occurredIndex} {
		require.Contains(t, names, n)
	}
}

func TestAuditLazyIndexAttemptsAreRateLimited(t *testing.T) {
	client, err := mongo.Connect(options.Client().ApplyURI("mongodb://127.0.0.1:1/").SetServerSelectionTimeout(200 * time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	core, logs := observer.New(zapcore.WarnLevel)
	store := NewStore(client.Database("nowhere"), WithLazyIndexes(0, zap.New(core)))
	store.idx.every = time.Hour
	attempts := func() int { return logs.FilterMessageSnippet("not ensured yet").Len() }

	for range 100 {
		store.TryEnsureIndexes()
	}
	require.Eventually(t, func() bool { return attempts() == 1 }, 10*time.Second, 10*time.Millisecond)
	for range 3 { // each waits out the server selection timeout
		_, err := store.Insert(context.Background(), eventDoc("team", "evt"))
		require.Error(t, err)
	}
	for range 100 {
		store.TryEnsureIndexes()
	}
	time.Sleep(500 * time.Millisecond) // time for a wrongly started attempt to fail
	require.Equal(t, 1, attempts(), "one attempt per interval, however many writes")
	require.False(t, store.IndexesEnsured())
}
