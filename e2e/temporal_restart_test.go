package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

// restartWrite is one write of the restart test and its answer.
type restartWrite struct {
	key  routes.Key
	sent time.Time
	ans  chaosAnswer
	err  error
}

func (w restartWrite) acked() bool {
	return w.err == nil && (w.ans.status == http.StatusOK || w.ans.status == http.StatusCreated || w.ans.status == http.StatusAccepted)
}

// restartLoad is writers writing to one tenant until stopped: each
// alternates an update of a route of its own and the create of a new
// route, and records every answer.
type restartLoad struct {
	mu     sync.Mutex
	writes []restartWrite
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

func startRestartLoad(t *testing.T, p *platform, tenant string, writers int) *restartLoad {
	l := &restartLoad{stop: make(chan struct{})}
	t.Cleanup(l.halt)
	for w := range writers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 1; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				rw := restartWrite{sent: time.Now()}
				if i%2 == 1 {
					rw.key = routes.Key{Tenant: tenant, Service: "payments", Env: "prod", Version: fmt.Sprintf("w%d", w)}
					rw.ans, rw.err = chaosDo("PUT", p.api.URL+routePath(rw.key), map[string]any{"url": fmt.Sprintf("https://w%d.example/%d", w, i)})
				} else {
					rw.key = routes.Key{Tenant: tenant, Service: "payments", Env: "prod", Version: fmt.Sprintf("w%d-%d", w, i)}
					rw.ans, rw.err = chaosDo("POST", p.api.URL+"/api/v1/routes", map[string]any{"tenant": tenant,
						"service": "payments", "env": "prod", "version": rw.key.Version, "url": "https://new.example/" + rw.key.Version})
				}
				l.mu.Lock()
				l.writes = append(l.writes, rw)
				l.mu.Unlock()
				if !rw.acked() {
					// A client backs off after a failure; without it three
					// writers answered 503 in a loop keep both cores busy.
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	return l
}

func (l *restartLoad) halt() { l.once.Do(func() { close(l.stop) }) }

// wait stops the writers and returns every write.
func (l *restartLoad) wait() []restartWrite {
	l.halt()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]restartWrite(nil), l.writes...)
}

// since counts the writes sent at or after from (every recorded write is
// answered), those of them acknowledged (200, 201 or 202) and those
// committed within the ack timeout (200 or 201).
func (l *restartLoad) since(from time.Time) (answered, acked, committed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.writes {
		if w.sent.Before(from) {
			continue
		}
		answered++
		if w.acked() {
			acked++
			if w.ans.status != http.StatusAccepted {
				committed++
			}
		}
	}
	return answered, acked, committed
}

// The production Temporal server stopped mid-traffic, first as an operator
// does (SIGTERM) and then as a crash does (SIGKILL), each time started
// again on the same databases while clients keep writing: every write is
// either acknowledged or answered 5xx, and every acknowledged one ends
// committed, its workflow completed with every step done, its event on the
// topic and exactly one audit document; the oracle finds nothing.
func TestATemporalServerRestartLosesNoAcknowledgedWrite(t *testing.T) {
	if testenv.TemporalTopology() != testenv.TopologyCluster {
		t.Skip("restarts the production Temporal server: runs with TM_TEST_TEMPORAL=cluster (the cluster pass of `go tool task test`)")
	}
	t.Parallel()
	ctx := context.Background()
	tmp := testenv.NewTemporalCluster(t)
	p := startPlatformWith(t, platformOptions{ackTimeout: time.Second, temporal: tmp.Address})
	tenant := testenv.Name(t, "tmp-restart")
	const writers = 3
	for w := range writers {
		createCompleted(t, p, routes.Key{Tenant: tenant, Service: "payments", Env: "prod", Version: fmt.Sprintf("w%d", w)}, "https://w.example/0", true)
	}

	load := startRestartLoad(t, p, tenant, writers)
	// committedAfter waits for a write sent at or after from to be
	// committed within the ack timeout: the api and a worker both talk
	// to the server again.
	committedAfter := func(from time.Time, what string) {
		t.Helper()
		eventually(t, 60*time.Second, func() bool { _, _, committed := load.since(from); return committed > 0 }, what)
	}
	committedAfter(time.Now(), "a write committed before the first fault")
	faults := []struct {
		name string
		stop func() error
	}{
		{"SIGTERM", tmp.Stop},
		{"SIGKILL", tmp.Kill},
	}
	for _, f := range faults {
		down := time.Now()
		require.NoError(t, f.stop(), f.name)
		stopped := time.Now()
		// A write sent while no server runs is answered (5xx).
		eventually(t, 60*time.Second, func() bool { answered, _, _ := load.since(stopped); return answered > 0 }, "a write answered while the server is down")
		_, ackedDown, _ := load.since(stopped)
		restart := time.Now()
		require.NoError(t, tmp.Start(ctx), "start again after "+f.name)
		serving := time.Now()
		committedAfter(serving, "a write committed after the restart")
		t.Logf("%s: server gone %s after the signal, down %s (%d writes acknowledged meanwhile), serving %s after the start, first write committed in time %s later",
			f.name, stopped.Sub(down).Round(time.Millisecond), restart.Sub(down).Round(time.Millisecond), ackedDown,
			serving.Sub(restart).Round(time.Millisecond), time.Since(serving).Round(time.Millisecond))
	}
	writes := load.wait()

	var acked []restartWrite
	failed, accepted := 0, 0
	for _, w := range writes {
		switch {
		case w.err != nil:
			t.Errorf("write to %s: %v", w.key, w.err)
		case w.acked():
			acked = append(acked, w)
			if w.ans.status == http.StatusAccepted {
				accepted++
			}
		case w.ans.status == http.StatusServiceUnavailable || w.ans.status == http.StatusInternalServerError:
			failed++
		default:
			t.Errorf("write to %s answered %d: %s", w.key, w.ans.status, w.ans.raw)
		}
	}
	t.Logf("%d writes: %d acknowledged (%d of them 202), %d answered 5xx", len(writes), len(acked), accepted, failed)

	ids := make([]string, len(acked))
	for i, w := range acked {
		ids[i] = w.ans.body["workflow_id"].(string)
	}
	statuses, pending := awaitMutations(p.api.URL, ids, 120*time.Second)
	require.Empty(t, pending, "acknowledged mutations not completed")
	onTopic := map[string]int{}
	for _, e := range p.allEvents(t) {
		onTopic[e.EventID]++
	}
	cur, err := p.mongo.Collection(audit.CollectionName).Find(ctx, bson.D{{Key: "route.tenant", Value: tenant}})
	require.NoError(t, err)
	var docs []audit.Document
	require.NoError(t, cur.All(ctx, &docs))
	audited := map[string]int{}
	for _, d := range docs {
		audited[d.EventID]++
	}
	allDone := map[string]any{"committed": "done", "invalidated": "done", "published": "done", "audited": "done"}
	for i, w := range acked {
		st := statuses[ids[i]]
		require.Equal(t, allDone, st["steps"], ids[i])
		eventID, _ := st["event_id"].(string)
		require.NotEmpty(t, eventID, ids[i])
		if w.ans.status != http.StatusAccepted {
			require.Equal(t, outcomeOf(w.ans.body), outcomeOf(st), "%s reports what was acknowledged", ids[i])
		}
		var inLedger int
		require.NoError(t, p.pool.QueryRow(ctx, `SELECT count(*) FROM route_ledger WHERE event_id = $1`, eventID).Scan(&inLedger))
		if inLedger != 1 || onTopic[eventID] == 0 || audited[eventID] != 1 {
			t.Errorf("%s (answered %d): event %s has %d ledger rows, %d copies on the topic, %d audit documents",
				ids[i], w.ans.status, eventID, inLedger, onTopic[eventID], audited[eventID])
		}
	}
	requireConsistentTenant(t, p, tenant)
}
