package e2e

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/internal/devstack"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

// A hung Redis (SIGSTOP: connections accepted, nothing answered) delays a
// write's answer by one time-boxed first attempt of the invalidation, not by
// the ack timeout: the commit is answered 201, the invalidation continues
// as a durable activity and completes once Redis answers again.
func TestAHungRedisDelaysTheAckByOneTimeBoxedAttemptOnly(t *testing.T) {
	t.Parallel()
	srv, rdb := ownRedis(t)
	p := startPlatformWith(t, platformOptions{ackTimeout: 5 * time.Second, rdb: rdb})
	tenant := testenv.Name(t, "team")
	create(t, p, routes.Key{Tenant: tenant, Service: "payments", Env: "prod", Version: "warm"}, "https://warm.example", true)

	require.NoError(t, srv.Pause())
	var wfIDs []string
	for i := range 3 {
		start := time.Now()
		res := p.do(t, "POST", "/api/v1/routes", map[string]any{
			"tenant": tenant, "service": "payments", "env": "prod", "version": "v" + strconv.Itoa(i), "url": "https://a.example",
		})
		ack := time.Since(start)
		t.Logf("write %d while Redis is hung: %d after %s", i, res.Status, ack.Round(time.Millisecond))
		require.Equal(t, http.StatusCreated, res.Status, res.Raw)
		require.Less(t, ack, 3*time.Second, "one time-boxed attempt (1 s), not the ack timeout (5 s)")
		wfIDs = append(wfIDs, res.Body["workflow_id"].(string))
	}
	st := p.do(t, "GET", "/api/v1/mutations/"+wfIDs[0], nil)
	require.Equal(t, "done", st.Body["steps"].(map[string]any)["committed"], st.Raw)

	require.NoError(t, srv.Resume())
	for _, id := range wfIDs {
		st := awaitCompleted(t, p, id, "")
		require.Equal(t, "done", st.Body["steps"].(map[string]any)["invalidated"], st.Raw)
	}
}

// ownRedis starts a redis-server of the test's own (it can be paused) and a
// client built as the processes build it (cmd/trafficmanager/deps.go:
// context deadlines honoured).
func ownRedis(t *testing.T) (*devstack.Redis, *redis.Client) {
	t.Helper()
	port, err := devstack.FreePort()
	require.NoError(t, err)
	srv, err := devstack.StartRedis(context.Background(), t.TempDir(), port, testWriter{t})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Resume(); _ = srv.Stop() })
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	return srv, rdb
}

// testWriter sends a child process's output to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(b))
	return len(b), nil
}

// A batch whose workflow cannot answer within the ack timeout (here 1 s,
// while its first side-effect attempt waits 2 s on a hung Redis) is
// answered from the ledger once it has committed: 201 with its routes,
// never 202.
func TestACommittedBatchIsNeverAnswered202(t *testing.T) {
	t.Parallel()
	srv, rdb := ownRedis(t)
	p := startPlatformWith(t, platformOptions{ackTimeout: time.Second, rdb: rdb})
	tenant := testenv.Name(t, "team")

	require.NoError(t, srv.Pause())
	res := p.do(t, "POST", "/api/v1/routes/batch", map[string]any{"routes": []map[string]any{
		{"tenant": tenant, "service": "search", "env": "prod", "version": "v1", "url": "https://s.example/v1"},
		{"tenant": tenant, "service": "search", "env": "prod", "version": "v2", "url": "https://s.example/v2"},
	}})
	require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	require.EqualValues(t, 2, res.Body["created"], res.Raw)
	require.Len(t, res.Body["routes"], 2)
	require.NoError(t, srv.Resume())
	awaitCompleted(t, p, res.Body["workflow_id"].(string), "")
}
