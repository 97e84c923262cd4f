package resolver

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/propagation"
	"github.com/trafficmanager/trafficmanager/routes"
)

var _ AppliedReporter = (*propagation.Reporter)(nil)

// reporting starts a propagation reporter named id on rdb under prefix,
// stopped gracefully when the test ends.
func reporting(t *testing.T, rdb *redis.Client, prefix, id string) *propagation.Reporter {
	t.Helper()
	rep, err := propagation.NewReporter(propagation.ReporterOptions{Redis: rdb, ID: id, Prefix: prefix,
		Heartbeat: 100 * time.Millisecond, TTL: 2 * time.Second, Log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rep.Close(context.Background()) })
	return rep
}

// consumeReporting runs in's consumer with rep until the test ends and
// starts rep once subscribed, as runResolver does.
func consumeReporting(t *testing.T, in instance, brokers []string, topic string, rep *propagation.Reporter) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	subscribed := make(chan struct{})
	go func() {
		done <- in.ConsumeEventsReporting(ctx, brokers, topic, func() { close(subscribed) }, rep)
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-subscribed:
	case err := <-done:
		t.Fatalf("consumer stopped before subscribing: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("consumer not subscribed within 15s")
	}
	in.MarkReady()
	rep.Start()
}

// Real resolvers consuming real events report what they applied: a change
// is complete once each of them has applied it, and a resolver cut off from
// Kafka shows as pending. The time from the publish's acknowledgement to
// complete is logged (it includes the 100 ms flush interval).
func TestResolversReportTheEventsTheyApplied(t *testing.T) {
	pool, rdb := testenv.Postgres(t), testenv.Redis(t)
	st := routes.NewStore(pool)
	rc := cache.NewRedis(rdb, time.Minute)
	ctx := context.Background()

	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d resolvers", n), func(t *testing.T) {
			prefix := "tmtest:" + testenv.Name(t, "res") + ":"
			topic := testenv.Name(t, "route-events")
			brokers := testenv.Kafka(t, topic, 3)
			reg, err := propagation.NewRegistry(propagation.RegistryOptions{Redis: rdb, Prefix: prefix})
			require.NoError(t, err)
			var ids []string
			for i := range n {
				id := fmt.Sprintf("resolver-%d", i+1)
				consumeReporting(t, newInstance(t, Options{Store: st, Redis: rc}), brokers, topic, reporting(t, rdb, prefix, id))
				ids = append(ids, id)
			}
			live, err := reg.Live(ctx)
			require.NoError(t, err)
			require.Len(t, live, n)

			pub := events.NewPublisher(brokers, topic)
			t.Cleanup(func() { pub.Close() })
			k := testKey(t, "v1")
			var took, quiet []time.Duration
			for i := range 10 {
				a := routes.ActionCreated
				if i > 0 {
					a = routes.ActionUpdated
				}
				res := seed(t, st, a, k, fmt.Sprintf("https://v%d.example", i), true)
				change := propagation.Change{Key: k.String(), Revision: res.Route.Revision}
				p, err := reg.Of(ctx, change)
				require.NoError(t, err)
				require.Equal(t, ids, p.Pending, "nobody has applied revision %d before its event", change.Revision)
				if i%2 == 1 {
					// Every other change comes after a quiet spell longer than the
					// flush interval: written at once, not batched.
					time.Sleep(propagation.DefaultFlush + 20*time.Millisecond)
				}

				require.NoError(t, pub.Publish(ctx, events.FromResult(uuid.NewString(), a, res, "test")))
				acked := time.Now()
				wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				p, err = reg.Wait(wctx, change)
				cancel()
				require.NoError(t, err, "%+v", p)
				if i%2 == 1 {
					quiet = append(quiet, time.Since(acked))
				} else {
					took = append(took, time.Since(acked))
				}
				require.Equal(t, propagation.Propagation{Resolvers: n, Applied: n, Complete: true, Pending: []string{}}, p)
			}
			ms := func(d []time.Duration) string {
				slices.Sort(d)
				return fmt.Sprintf("p50 %s max %s", d[len(d)/2].Round(100*time.Microsecond), d[len(d)-1].Round(100*time.Microsecond))
			}
			t.Logf("publish ack → complete at %d resolvers (Wait polls after 2.5 ms, doubling to 20 ms): back to back %s; after a quiet spell %s",
				n, ms(took), ms(quiet))
		})
	}

	t.Run("a resolver cut off from Kafka is pending", func(t *testing.T) {
		prefix := "tmtest:" + testenv.Name(t, "res") + ":"
		topic := testenv.Name(t, "route-events")
		brokers := testenv.Kafka(t, topic, 1)
		reg, err := propagation.NewRegistry(propagation.RegistryOptions{Redis: rdb, Prefix: prefix})
		require.NoError(t, err)
		consumeReporting(t, newInstance(t, Options{Store: st, Redis: rc}), brokers, topic, reporting(t, rdb, prefix, "connected"))
		reporting(t, rdb, prefix, "cut-off").Start() // alive, but consumes nothing

		k := testKey(t, "v1")
		res := seed(t, st, routes.ActionCreated, k, "https://v1.example", true)
		pub := events.NewPublisher(brokers, topic)
		t.Cleanup(func() { pub.Close() })
		require.NoError(t, pub.Publish(ctx, events.FromResult(uuid.NewString(), routes.ActionCreated, res, "test")))
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		p, err := reg.Wait(wctx, propagation.Change{Key: k.String(), Revision: res.Route.Revision})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Equal(t, propagation.Propagation{Resolvers: 2, Applied: 1, Complete: false, Pending: []string{"cut-off"}}, p)
	})
}

// BenchmarkApplyEvent is the consumer's per-event work without and with
// the propagation reporter (against the real Redis, flushing meanwhile):
// the difference is what reporting adds to applying a change.
func BenchmarkApplyEvent(b *testing.B) {
	r := newBenchResolver(b)
	evs := make([]events.Event, 1000)
	for i := range evs {
		evs[i] = events.Event{Tenant: "team-a", Service: "svc-" + strconv.Itoa(i), Env: "prod", Version: "v1", Revision: 1, OccurredAt: time.Now()}
	}
	ctx := context.Background()
	run := func(b *testing.B, rep AppliedReporter) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			ev := &evs[i%len(evs)]
			ev.Revision++
			r.applyEvent(ctx, *ev, rep)
		}
	}
	b.Run("without reporter", func(b *testing.B) { run(b, nil) })
	b.Run("with reporter", func(b *testing.B) {
		rdb := testenv.Redis(b)
		rep, err := propagation.NewReporter(propagation.ReporterOptions{Redis: rdb, ID: "bench",
			Prefix: "tmtest:" + testenv.Name(b, "bench") + ":", Log: zap.NewNop()})
		require.NoError(b, err)
		rep.Start()
		defer func() { _ = rep.Close(context.Background()) }()
		run(b, rep)
	})
}

func newBenchResolver(b *testing.B) *Resolver {
	b.Helper()
	r, err := New(Options{Store: newMemStore(), Logger: zap.NewNop()})
	require.NoError(b, err)
	b.Cleanup(r.Close)
	return r
}
