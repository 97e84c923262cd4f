package resilience_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/resilience"
)

var errDown = errors.New("connection refused")
var errNotFound = errors.New("not found")

func newRegistry() *resilience.Registry {
	return resilience.New(prometheus.NewRegistry(), resilience.Options{
		IsFailure:       func(err error) bool { return err != nil && !errors.Is(err, errNotFound) },
		BreakerFailures: 3, BreakerDelay: 200 * time.Millisecond,
	})
}

func TestABreakerOpensAfterFailuresFailsFastAndRecovers(t *testing.T) {
	r := newRegistry()
	calls := 0
	down := func(context.Context) (int, error) { calls++; return 0, errDown }
	for range 3 {
		_, err := resilience.Do(context.Background(), r, resilience.Call{Dependency: "postgres"}, down)
		require.ErrorIs(t, err, errDown)
	}
	start := time.Now()
	_, err := resilience.Do(context.Background(), r, resilience.Call{Dependency: "postgres"}, down)
	require.ErrorIs(t, err, resilience.ErrUnavailable)
	require.Equal(t, 3, calls, "an open breaker does not call the dependency")
	require.Less(t, time.Since(start), 10*time.Millisecond)
	require.Equal(t, "open", r.Status().CircuitBreakers["postgres"].State)

	time.Sleep(250 * time.Millisecond)
	v, err := resilience.Do(context.Background(), r, resilience.Call{Dependency: "postgres"}, func(context.Context) (int, error) { return 7, nil })
	require.NoError(t, err)
	require.Equal(t, 7, v)
	require.Equal(t, "closed", r.Status().CircuitBreakers["postgres"].State)
}

func TestDomainAnswersDoNotTripTheBreaker(t *testing.T) {
	r := newRegistry()
	for range 10 {
		_, err := resilience.Do(context.Background(), r, resilience.Call{Dependency: "mongodb"}, func(context.Context) (int, error) { return 0, errNotFound })
		require.ErrorIs(t, err, errNotFound)
	}
	require.Equal(t, "closed", r.Status().CircuitBreakers["mongodb"].State)
}

func TestAFullBulkheadRefusesInsteadOfQueueing(t *testing.T) {
	r := newRegistry()
	bh := r.Bulkhead("audit", 2, 20*time.Millisecond)
	block := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = resilience.Do(context.Background(), r, resilience.Call{Dependency: "mongodb", Bulkhead: bh}, func(context.Context) (int, error) { <-block; return 0, nil })
		}()
	}
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	_, err := resilience.Do(context.Background(), r, resilience.Call{Dependency: "mongodb", Bulkhead: bh}, func(context.Context) (int, error) { return 0, nil })
	require.ErrorIs(t, err, resilience.ErrUnavailable)
	require.Less(t, time.Since(start), 200*time.Millisecond)
	// Another bulkhead is unaffected.
	_, err = resilience.Do(context.Background(), r, resilience.Call{Dependency: "postgres", Bulkhead: r.Bulkhead("read", 2, 0)}, func(context.Context) (int, error) { return 0, nil })
	require.NoError(t, err)
	close(block)
	wg.Wait()
}

func TestTimeoutsAndRetriesWithinTheBudget(t *testing.T) {
	r := newRegistry()
	_, err := resilience.Do(context.Background(), r, resilience.Call{Dependency: "redis", Timeout: 20 * time.Millisecond}, func(ctx context.Context) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
	require.ErrorIs(t, err, resilience.ErrUnavailable)

	attempts := 0
	v, err := resilience.Do(context.Background(), r, resilience.Call{Dependency: "postgres", Retries: 2}, func(context.Context) (int, error) {
		attempts++
		if attempts < 2 {
			return 0, errDown
		}
		return 1, nil
	})
	require.NoError(t, err)
	require.Equal(t, 1, v)
	require.Equal(t, 2, attempts)
	require.InDelta(t, 0.2, r.Status().RetryBudget.MaxRate, 1e-9)
}
