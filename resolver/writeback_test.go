package resolver

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

// These tests hold a Postgres read (or the Redis write that follows it)
// while a newer revision is committed and its event delivered, and check
// that the old answer does not reach Redis, where every other resolver
// would serve it until its TTL. Only the resolver's own event handling is
// exercised: the write path's Redis invalidation (which raises the Redis
// revision floor) is left out, as when it failed or has not run yet.

// heldLookup reads the route from the wrapped Lookup, then waits for release
// before returning it: a read that finished just before a commit and whose
// answer arrives after it.
type heldLookup struct {
	Lookup
	held, release chan struct{}
	once          sync.Once
}

func newHeldLookup(l Lookup) *heldLookup {
	return &heldLookup{Lookup: l, held: make(chan struct{}), release: make(chan struct{})}
}

func (h *heldLookup) Get(ctx context.Context, k routes.Key) (routes.Route, error) {
	r, err := h.Lookup.Get(ctx, k)
	h.once.Do(func() {
		close(h.held)
		<-h.release
	})
	return r, err
}

// holdScript holds the first script call (EVAL/EVALSHA: the resolver's
// revision-checked fill) on one key until release is closed.
type holdScript struct {
	key           string
	held, release chan struct{}
	once          sync.Once
}

func (h *holdScript) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *holdScript) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *holdScript) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		if n := cmd.Name(); (n == "eval" || n == "evalsha") && len(args) > 3 && args[3] == h.key {
			h.once.Do(func() {
				close(h.held)
				<-h.release
			})
		}
		return next(ctx, cmd)
	}
}

func waitClosed(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not reached within 10s", what)
	}
}

// expectNoOldAnswerInRedis fails if Redis holds an answer of k older than
// revision, then checks that a resolver with an empty L1 answers wantURL.
func expectNoOldAnswerInRedis(t *testing.T, rc *cache.Redis, st Lookup, k routes.Key, revision int64, wantURL string) {
	t.Helper()
	e, ok, err := rc.Get(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	if ok && e.Revision < revision {
		t.Fatalf("redis holds %+v, an answer older than revision %d", e, revision)
	}
	other := newInstance(t, Options{Store: st, Redis: rc})
	if _, _, u := other.get(t, k); u != wantURL {
		t.Fatalf("another resolver answers %q, want %q", u, wantURL)
	}
}

func TestAReadOvertakenByAnEventIsNotWrittenToRedis(t *testing.T) {
	for _, l1Entries := range []int{0, -1} {
		t.Run(fmt.Sprintf("L1 entries %d", l1Entries), func(t *testing.T) {
			st := routes.NewStore(testenv.Postgres(t))
			rc := cache.NewRedis(testenv.Redis(t), time.Minute)
			k := testKey(t, "v1")
			seed(t, st, routes.ActionCreated, k, "https://r1.example", true)
			held := newHeldLookup(st)
			in := newInstance(t, Options{Store: held, Redis: rc, L1Entries: l1Entries, DBTimeout: 10 * time.Second})

			old := make(chan Answer, 1)
			go func() { a, _ := in.Resolve(context.Background(), k); old <- a }()
			waitClosed(t, held.held, "the read of revision 1")
			if res := seed(t, st, routes.ActionUpdated, k, "https://r2.example", true); res.Route.Revision != 2 {
				t.Fatalf("update made revision %d, want 2", res.Route.Revision)
			}
			in.Invalidate(context.Background(), k, 2)
			close(held.release)
			if a := <-old; a.URL() != "https://r1.example" {
				t.Fatalf("the read that began before the change answered %q", a.URL())
			}
			expectNoOldAnswerInRedis(t, rc, st, k, 2, "https://r2.example")
		})
	}
}

func TestAnEventBetweenTheL1AndRedisFillsUndoesTheRedisFill(t *testing.T) {
	st := routes.NewStore(testenv.Postgres(t))
	k := testKey(t, "v1")
	seed(t, st, routes.ActionCreated, k, "https://r1.example", true)
	opt, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	hold := &holdScript{key: cache.Key(k), held: make(chan struct{}), release: make(chan struct{})}
	rdb.AddHook(hold)
	rc := cache.NewRedis(rdb, time.Minute)
	in := newInstance(t, Options{Store: st, Redis: rc, RedisTimeout: 10 * time.Second})

	old := make(chan Answer, 1)
	go func() { a, _ := in.Resolve(context.Background(), k); old <- a }()
	waitClosed(t, hold.held, "the Redis fill of revision 1")
	seed(t, st, routes.ActionUpdated, k, "https://r2.example", true)
	in.Invalidate(context.Background(), k, 2)
	close(hold.release)
	if a := <-old; a.URL() != "https://r1.example" {
		t.Fatalf("the read that began before the change answered %q", a.URL())
	}
	expectNoOldAnswerInRedis(t, cache.NewRedis(testenv.Redis(t), time.Minute), st, k, 2, "https://r2.example")
}
