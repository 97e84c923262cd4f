package resolver

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

// startConsumer runs in's event consumer until the test ends and waits until
// it is subscribed.
func startConsumer(t *testing.T, in instance, brokers []string, topic string) {
	t.Helper()
	if rec := serve(t, in.h, http.MethodGet, "/readyz"); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz before the consumer subscribed = %d, want 503", rec.Code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	subscribed := make(chan struct{})
	go func() {
		done <- in.ConsumeEvents(ctx, brokers, topic, func() { in.MarkReady(); close(subscribed) })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("consumer: %v", err)
		}
	})
	select {
	case <-subscribed:
	case err := <-done:
		t.Fatalf("consumer stopped before subscribing: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("consumer not subscribed within 15s")
	}
	if rec := serve(t, in.h, http.MethodGet, "/readyz"); rec.Code != http.StatusOK {
		t.Fatalf("/readyz once subscribed = %d, want 200", rec.Code)
	}
}

// within polls every instance until it answers want, and fails if one still
// serves something else 1 s after since (the publish acknowledgement).
func within(t *testing.T, instances []instance, k routes.Key, since time.Time, status int, urlOrCode string) {
	t.Helper()
	for i, in := range instances {
		for {
			s, _, u := in.get(t, k)
			if s == status && u == urlOrCode {
				t.Logf("instance %d answers %d %s %v after the publish", i, s, u, time.Since(since).Round(time.Millisecond))
				break
			}
			if time.Since(since) > time.Second {
				t.Fatalf("instance %d still answers %d %q for %s 1s after the event, want %d %q", i, s, u, k, status, urlOrCode)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}

func TestEventsInvalidateEveryInstanceWithinASecond(t *testing.T) {
	pool, rdb := testenv.Postgres(t), testenv.Redis(t)
	st := routes.NewStore(pool)
	topic := testenv.Name(t, "route-events")
	brokers := testenv.Kafka(t, topic, 3)
	rc := cache.NewRedis(rdb, time.Minute)

	instances := []instance{newInstance(t, Options{Store: st, Redis: rc}), newInstance(t, Options{Store: st, Redis: rc})}
	for _, in := range instances {
		startConsumer(t, in, brokers, topic)
	}
	pub := events.NewPublisher(brokers, topic)
	t.Cleanup(func() { pub.Close() })
	ctx := context.Background()
	publish := func(a routes.Action, res routes.Result) (events.Event, time.Time) {
		t.Helper()
		ev := events.FromResult(uuid.NewString(), a, res, "test")
		if err := pub.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
		return ev, time.Now()
	}

	k := testKey(t, "v1")
	_, acked := publish(routes.ActionCreated, seed(t, st, routes.ActionCreated, k, "https://v1.example", true))
	within(t, instances, k, acked, 200, "https://v1.example")
	for _, in := range instances {
		in.expect(t, k, 200, "hit", "https://v1.example")
	}

	t.Run("an updated url is served by every instance", func(t *testing.T) {
		_, acked := publish(routes.ActionUpdated, seed(t, st, routes.ActionUpdated, k, "https://v2.example", false))
		within(t, instances, k, acked, 200, "https://v2.example")
	})

	t.Run("a negative-cached route that is created is served", func(t *testing.T) {
		later := testKey(t, "later")
		instances[0].expect(t, later, 404, "miss", "route_not_found")
		instances[1].expect(t, later, 404, "negative-hit", "route_not_found") // from Redis
		for _, in := range instances {
			in.expect(t, later, 404, "negative-hit", "route_not_found") // from L1
		}
		_, acked := publish(routes.ActionCreated, seed(t, st, routes.ActionCreated, later, "https://later.example", true))
		within(t, instances, later, acked, 200, "https://later.example")
	})

	t.Run("a deactivated route is not found, and an older event does not bring it back", func(t *testing.T) {
		updated, _ := st.Get(ctx, k) // revision 2
		_, acked := publish(routes.ActionDeactivated, seed(t, st, routes.ActionDeactivated, k, "", false))
		within(t, instances, k, acked, 404, "route_not_found")

		applied := make([]float64, len(instances))
		for i, in := range instances {
			applied[i] = counter(in.m.Invalidations)
		}
		publish(routes.ActionUpdated, routes.Result{Route: updated}) // a late duplicate of revision 2
		for i, in := range instances {
			waitFor(t, func() bool { return counter(in.m.Invalidations) > applied[i] })
			in.expect(t, k, 404, "negative-hit", "route_not_found")
		}
	})
}
