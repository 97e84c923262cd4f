package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/internal/devstack"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

// chaosStack is the platform of the randomized test: the api in-process,
// the worker a process, Kafka (kfake) and MongoDB (FerretDB) of its own on
// fixed ports so they can be stopped and started again.
type chaosStack struct {
	t            *testing.T
	p            *platform
	dir          string
	kport, mport int
	kf           *devstack.Kafka
	mg           *devstack.Mongo
	mongoURI     string
	coll         *mongo.Collection
	workers      *chaosWorkers
	worker       *chaosWorker
}

func startChaosStack(t *testing.T) *chaosStack {
	t.Helper()
	s := &chaosStack{t: t, dir: t.TempDir()}
	var err error
	s.kport, err = devstack.FreePort()
	require.NoError(t, err)
	s.mport, err = devstack.FreePort()
	require.NoError(t, err)
	s.startKafka()
	s.startMongo()
	t.Cleanup(func() {
		if s.kf != nil {
			_ = s.kf.Stop()
		}
		if s.mg != nil {
			_ = s.mg.Stop()
		}
	})
	s.p = startPlatformWith(t, platformOptions{ackTimeout: 3 * time.Second, brokers: s.kf.Brokers, noWorker: true})
	s.mongoURI = s.mg.URI
	mc, err := mongo.Connect(options.Client().ApplyURI(s.mongoURI).SetServerSelectionTimeout(5 * time.Second).SetTimeout(30 * time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { _ = mc.Disconnect(context.Background()) })
	db := mc.Database(s.p.mongo.Name())
	require.NoError(t, audit.NewStore(db).EnsureIndexes(context.Background(), 0))
	s.coll = db.Collection(audit.CollectionName)
	s.workers = newChaosWorkers(t, processEnv(t, s.p, s.mongoURI, testenv.Temporal(t).Address))
	s.worker, err = s.workers.start()
	require.NoError(t, err)
	return s
}

// startKafka starts kfake on the stack's port (again: a fresh, empty log;
// events published before are gone, Postgres and the audit store are not).
func (s *chaosStack) startKafka() {
	var err error
	for range 50 { // the port may take a moment to be released
		if s.kf, err = devstack.StartKafka(s.kport, topic, 3); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(s.t, err)
}

func (s *chaosStack) startMongo() {
	var err error
	for range 50 {
		if s.mg, err = devstack.StartMongo(context.Background(), s.dir+"/mongo", s.mport); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(s.t, err)
}

// resolverServer serves a resolver reading the stack's Postgres and Redis
// and consuming its events; it stops with the test.
func (s *chaosStack) resolverServer() string { return startResolver(s.t, s.p) }

// chaosWrite is one write request and its answer.
type chaosWrite struct {
	route        int
	method, path string
	body         map[string]any
	key          string
	reused       bool // the same request as an earlier one, same Idempotency-Key
	ans          chaosAnswer
	err          error
}

// writer sends random writes to the routes until stop is closed.
func (s *chaosStack) writer(g int, rng *rand.Rand, keys []routes.Key, stop <-chan struct{}, record func(chaosWrite)) {
	var mine []chaosWrite
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		var w chaosWrite
		if len(mine) > 0 && rng.Intn(5) == 0 {
			w = mine[rng.Intn(len(mine))]
			w.reused, w.ans, w.err = true, chaosAnswer{}, nil
		} else {
			w.route = rng.Intn(len(keys))
			w.key = fmt.Sprintf("g%d-%d", g, i)
			w.method, w.path = "POST", routePath(keys[w.route])
			switch rng.Intn(3) {
			case 0:
				w.method = "PUT"
				w.body = map[string]any{"url": fmt.Sprintf("https://r%d.example/%d", w.route, rng.Intn(4))}
			case 1:
				w.path += "/activate"
			default:
				w.path += "/deactivate"
			}
		}
		var body any
		if w.body != nil {
			body = w.body
		}
		w.ans, w.err = chaosDo(w.method, s.p.api.URL+w.path, body, "Idempotency-Key", w.key)
		record(w)
		if !w.reused && w.err == nil && (w.ans.status == http.StatusOK || w.ans.status == http.StatusAccepted) {
			mine = append(mine, w)
		}
		time.Sleep(time.Duration(50+rng.Intn(200)) * time.Millisecond)
	}
}

// injectFaults runs faults at random moments for d, in the test's goroutine:
// resets of completed mutations, a SIGKILLed and restarted worker, Kafka and
// MongoDB stopped for a few seconds. Each fault is over when the next one
// starts; every kind happens at least once. It returns what each reset
// mutation reported before its first reset.
func (s *chaosStack) injectFaults(rng *rand.Rand, d time.Duration, written func() []chaosWrite) map[string]outcome {
	t := s.t
	before := map[string]outcome{}
	kinds := []string{"reset", "kill", "kafka", "mongo"}
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	counts := map[string]int{}
	end := time.Now().Add(d)
	for i := 0; i < len(kinds) || time.Now().Before(end); i++ {
		time.Sleep(time.Duration(500+rng.Intn(1500)) * time.Millisecond)
		kind := kinds[rng.Intn(len(kinds))]
		if i < len(kinds) {
			kind = kinds[i]
		}
		counts[kind]++
		switch kind {
		case "reset":
			s.resetSome(rng, 1+rng.Intn(3), written(), before)
		case "kill":
			s.worker.kill()
			s.resetSome(rng, rng.Intn(2), written(), before)
			time.Sleep(time.Duration(rng.Intn(1500)) * time.Millisecond)
			var err error
			s.worker, err = s.workers.start()
			require.NoError(t, err)
		case "kafka":
			require.NoError(t, s.kf.Stop())
			s.kf = nil
			s.resetSome(rng, rng.Intn(3), written(), before)
			time.Sleep(time.Duration(2000+rng.Intn(2000)) * time.Millisecond)
			s.startKafka()
		case "mongo":
			require.NoError(t, s.mg.Stop())
			s.mg = nil
			s.resetSome(rng, rng.Intn(3), written(), before)
			time.Sleep(time.Duration(2000+rng.Intn(2000)) * time.Millisecond)
			s.startMongo()
		}
	}
	t.Logf("faults: %v; %d mutations reset", counts, len(before))
	return before
}

// resetSome resets up to n mutations whose write was answered 200 and
// whose latest run has completed (also while a fault goes on: the re-run
// then waits for it to end), recording in before what each reported before
// its first reset.
func (s *chaosStack) resetSome(rng *rand.Rand, n int, written []chaosWrite, before map[string]outcome) {
	var done []string
	for _, w := range written {
		if w.err == nil && w.ans.status == http.StatusOK {
			done = append(done, w.ans.body["workflow_id"].(string))
		}
	}
	for ; n > 0 && len(done) > 0; n-- {
		id := done[rng.Intn(len(done))]
		st, err := chaosDo("GET", s.p.api.URL+"/api/v1/mutations/"+id, nil)
		if err != nil || st.body["status"] != "completed" {
			continue // still running (reset before, say): nothing to compare yet
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = resetFirstTask(ctx, s.p.tc, id)
		cancel()
		require.NoError(s.t, err, "reset %s", id)
		if _, ok := before[id]; !ok {
			before[id] = outcomeOf(st.body)
		}
	}
}
