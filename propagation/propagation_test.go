package propagation

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// fixture is a Redis key space of the test's own, fast timings, and
// reporters started on it.
type fixture struct {
	t      *testing.T
	rdb    *redis.Client
	prefix string
	reg    *Registry
}

const (
	testHeartbeat = 50 * time.Millisecond
	testFlush     = 10 * time.Millisecond
	testLiveness  = 300 * time.Millisecond
	testTTL       = time.Second
)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, rdb: testenv.Redis(t), prefix: "tmtest:" + testenv.Name(t, "prop") + ":"}
	var err error
	f.reg, err = NewRegistry(RegistryOptions{Redis: f.rdb, Prefix: f.prefix, Liveness: testLiveness, Poll: 5 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() {
		keys, _ := f.rdb.Keys(context.Background(), f.prefix+"*").Result()
		if len(keys) > 0 {
			f.rdb.Del(context.Background(), keys...)
		}
	})
	return f
}

// reporter starts a reporter with id; the test's end closes it.
func (f *fixture) reporter(id string) *Reporter {
	f.t.Helper()
	r, err := NewReporter(ReporterOptions{Redis: f.rdb, ID: id, Address: "127.0.0.1:" + id, Prefix: f.prefix,
		Heartbeat: testHeartbeat, Flush: testFlush, TTL: testTTL, Log: zaptest.NewLogger(f.t)})
	require.NoError(f.t, err)
	r.Start()
	f.t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

// await polls Of until cond holds (flushes are asynchronous) and returns
// the last answer.
func (f *fixture) await(c Change, cond func(Propagation) bool) Propagation {
	f.t.Helper()
	var p Propagation
	require.Eventually(f.t, func() bool {
		var err error
		p, err = f.reg.Of(context.Background(), c)
		require.NoError(f.t, err)
		return cond(p)
	}, 5*time.Second, 5*time.Millisecond)
	return p
}

func TestAChangeIsCompleteOnceEveryLiveResolverHasAppliedIt(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d resolvers", n), func(t *testing.T) {
			f := newFixture(t)
			var rs []*Reporter
			var ids []string
			for i := range n {
				id := fmt.Sprintf("res-%d", i+1)
				rs, ids = append(rs, f.reporter(id)), append(ids, id)
			}
			c := Change{Key: "team-a:payments:prod:v1", Revision: 7}

			p, err := f.reg.Of(context.Background(), c)
			require.NoError(t, err)
			require.Equal(t, Propagation{Resolvers: n, Applied: 0, Complete: false, Pending: ids}, p)

			for i, r := range rs {
				r.Applied(c.Key, c.Revision, time.Now())
				p = f.await(c, func(p Propagation) bool { return p.Applied == i+1 })
				require.Equal(t, n, p.Resolvers)
				require.Equal(t, ids[i+1:], p.Pending)
				require.Equal(t, i+1 == n, p.Complete)
			}

			p, err = f.reg.Wait(context.Background(), c)
			require.NoError(t, err)
			require.Equal(t, Propagation{Resolvers: n, Applied: n, Complete: true, Pending: []string{}}, p)
		})
	}
}

func TestANewerRevisionCountsAndAnOlderOneNeverReplacesIt(t *testing.T) {
	f := newFixture(t)
	r := f.reporter("res-1")
	key := "team-a:payments:prod:v1"
	r.Applied(key, 5, time.Now())
	f.await(Change{Key: key, Revision: 5}, func(p Propagation) bool { return p.Complete })

	r.Applied(key, 3, time.Now()) // a redelivered older event
	time.Sleep(5 * testFlush)
	for rev, complete := range map[int64]bool{3: true, 4: true, 5: true, 6: false} {
		p, err := f.reg.Of(context.Background(), Change{Key: key, Revision: rev})
		require.NoError(t, err)
		require.Equal(t, complete, p.Complete, "revision %d", rev)
	}
	got, err := f.rdb.HGet(context.Background(), f.prefix+"resolver:res-1:applied", key).Int64()
	require.NoError(t, err)
	require.EqualValues(t, 5, got)
}

func TestAResolverThatHasNotAppliedTheRevisionIsPending(t *testing.T) {
	f := newFixture(t)
	a, _ := f.reporter("res-a"), f.reporter("res-b")
	c := Change{Key: "team-a:payments:prod:v1", Revision: 2}
	a.Applied(c.Key, 2, time.Now())
	p := f.await(c, func(p Propagation) bool { return p.Applied == 1 })
	require.Equal(t, Propagation{Resolvers: 2, Applied: 1, Complete: false, Pending: []string{"res-b"}}, p)

	// Wait answers with the propagation so far once its context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	p, err := f.reg.Wait(ctx, c)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, []string{"res-b"}, p.Pending)
}

func TestAResolverThatSubscribedAfterTheCommitCountsAsApplied(t *testing.T) {
	f := newFixture(t)
	committed := time.Now().Add(-time.Second)
	f.reporter("res-new") // started (subscribed) after the commit, never saw the event
	p, err := f.reg.Of(context.Background(), Change{Key: "t:s:e:v", Revision: 9, CommittedAt: committed})
	require.NoError(t, err)
	require.True(t, p.Complete, "%+v", p)

	p, err = f.reg.Of(context.Background(), Change{Key: "t:s:e:v", Revision: 9, CommittedAt: time.Now().Add(time.Second)})
	require.NoError(t, err)
	require.Equal(t, []string{"res-new"}, p.Pending, "started before the commit and has not applied it")
}

func TestAKilledResolverLeavesTheLiveSetWithinTheLivenessWindow(t *testing.T) {
	f := newFixture(t)
	f.reporter("res-1")
	dying := f.reporter("res-2")
	live, err := f.reg.Live(context.Background())
	require.NoError(t, err)
	require.Len(t, live, 2)

	dying.kill() // no graceful removal
	killed := time.Now()
	require.Eventually(t, func() bool {
		live, err := f.reg.Live(context.Background())
		require.NoError(t, err)
		return len(live) == 1 && live[0].ID == "res-1"
	}, 5*time.Second, 5*time.Millisecond)
	gone := time.Since(killed)
	t.Logf("a killed resolver left the live set after %s (liveness window %s)", gone, testLiveness)
	require.LessOrEqual(t, gone, testLiveness+testHeartbeat+200*time.Millisecond)

	// Its change is no longer waited for.
	p, err := f.reg.Of(context.Background(), Change{Key: "t:s:e:v", Revision: 1})
	require.NoError(t, err)
	require.Equal(t, []string{"res-1"}, p.Pending)

	// Its data expires, and a live reporter prunes it from the set.
	require.Eventually(t, func() bool {
		n, _ := f.rdb.Exists(context.Background(), f.prefix+"resolver:res-2").Result()
		s, _ := f.rdb.ZScore(context.Background(), f.prefix+"resolvers", "res-2").Result()
		return n == 0 && s == 0
	}, 5*testTTL, 20*time.Millisecond)
}

func TestAGracefullyStoppedResolverLeavesAtOnce(t *testing.T) {
	f := newFixture(t)
	f.reporter("res-1")
	r := f.reporter("res-2")
	r.Applied("t:s:e:v", 1, time.Now())
	f.await(Change{Key: "t:s:e:v", Revision: 1}, func(p Propagation) bool { return p.Applied == 1 })

	require.NoError(t, r.Close(context.Background()))
	live, err := f.reg.Live(context.Background())
	require.NoError(t, err)
	require.Len(t, live, 1)
	n, err := f.rdb.Exists(context.Background(), f.prefix+"resolver:res-2", f.prefix+"resolver:res-2:applied").Result()
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestLiveReportsAddressHeartbeatLagAndAppliedEvents(t *testing.T) {
	f := newFixture(t)
	r := f.reporter("res-1")
	r.Applied("t:s:e:v1", 1, time.Now().Add(-40*time.Millisecond))
	r.Applied("t:s:e:v2", 1, time.Now().Add(-40*time.Millisecond))
	var live []Resolver
	require.Eventually(t, func() bool {
		var err error
		live, err = f.reg.Live(context.Background())
		require.NoError(t, err)
		return len(live) == 1 && live[0].AppliedEvents == 2
	}, 5*time.Second, 10*time.Millisecond)
	got := live[0]
	require.Equal(t, "res-1", got.ID)
	require.Equal(t, "127.0.0.1:res-1", got.Address)
	require.WithinDuration(t, time.Now(), got.LastHeartbeat, testLiveness)
	require.WithinDuration(t, time.Now(), got.StartedAt, 5*time.Second)
	require.GreaterOrEqual(t, got.LagMS, int64(40))
	require.Less(t, got.LagMS, int64(5000))
}

func TestAppliedRevisionsSurviveARedisFailure(t *testing.T) {
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { _ = down.Close() })
	r, err := NewReporter(ReporterOptions{Redis: down, ID: "res-1", Heartbeat: testHeartbeat, Flush: testFlush, TTL: testTTL,
		Log: zaptest.NewLogger(t)})
	require.NoError(t, err)
	r.Start() // Redis is unreachable: logged, not fatal
	r.Applied("t:s:e:v", 4, time.Now())
	time.Sleep(5 * testFlush)
	r.kill()
	require.EqualValues(t, 4, r.pending["t:s:e:v"], "kept for the next flush")
}

func TestReporterOptionsAreValidated(t *testing.T) {
	rdb := testenv.Redis(t)
	for name, o := range map[string]ReporterOptions{
		"no redis":              {ID: "a"},
		"no id":                 {Redis: rdb},
		"an id with a space":    {Redis: rdb, ID: "a b"},
		"a TTL of 2 heartbeats": {Redis: rdb, ID: "a", Heartbeat: time.Second, TTL: 2 * time.Second},
	} {
		_, err := NewReporter(o)
		require.Error(t, err, name)
	}
	require.Equal(t, "x", DefaultID(":x")[len(DefaultID(":x"))-1:])
}
