package worker_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/activities"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/worker"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// heldStop is a real worker whose Stop waits for release, standing for
// activities that take a while to finish during a drain.
type heldStop struct {
	sdkworker.Worker
	release chan struct{}
}

func (h heldStop) Stop() {
	<-h.release
	h.Worker.Stop()
}

func TestReadyzIs503FromTheMomentTheWorkerStartsDraining(t *testing.T) {
	log := zaptest.NewLogger(t)
	tc, err := client.DialContext(context.Background(), client.Options{
		HostPort: testenv.Temporal(t).Address, Logger: observability.NewTemporalLogger(log),
	})
	require.NoError(t, err)
	t.Cleanup(tc.Close)
	w := worker.New(tc, testenv.Name(t, "tq"), &activities.Activities{Log: log}, worker.Options{StopTimeout: time.Second})
	require.NoError(t, w.Start())
	held := heldStop{Worker: w, release: make(chan struct{})}
	proc := worker.Started(held)
	h := proc.HealthHandler(nil)

	readyz := func() int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code
	}
	require.Equal(t, http.StatusOK, readyz(), "a started worker is ready")

	drained := make(chan struct{})
	go func() { proc.Drain(); close(drained) }()
	require.Eventually(t, func() bool { return readyz() == http.StatusServiceUnavailable }, 2*time.Second, 10*time.Millisecond,
		"readyz turns 503 while running tasks still finish")
	select {
	case <-drained:
		t.Fatal("Drain returned before the worker stopped")
	default:
	}
	close(held.release)
	<-drained
	require.Equal(t, http.StatusServiceUnavailable, readyz(), "a stopped worker stays unready")

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	require.Equal(t, http.StatusOK, rec.Code, "the process is still alive")
	proc.Drain() // a second drain (the deferred Stop in runWorker) returns at once
}
