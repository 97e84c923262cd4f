package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/activities"
	"github.com/trafficmanager/trafficmanager/api"
	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/internal/devstack"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/resolver"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/schema"
	"github.com/trafficmanager/trafficmanager/worker"
)

// faultStack is a platform whose every dependency is its own process (or
// embedded server) on a fixed port, so a test can stop and start it.
type faultStack struct {
	t                                     *testing.T
	dir                                   string
	pgPort, redisPort, mongoPort, tmpPort int
	pg                                    *devstack.Postgres
	rd                                    *devstack.Redis
	kf                                    *devstack.Kafka
	mg                                    *devstack.Mongo
	tmp                                   *devstack.Temporal
	pool                                  *pgxpool.Pool
	rdb                                   *redis.Client
	mc                                    *mongo.Client
	tc                                    client.Client
	queue                                 string
	worker                                sdkworker.Worker
	apiURL, resolverURL                   string
	log                                   *zap.Logger
	mu                                    sync.Mutex
	acked                                 []acked
}

// acked is a mutation acknowledged to the client (200/201 or 202).
type acked struct {
	key        routes.Key
	workflowID string
	status     int
}

func free(t *testing.T) int {
	p, err := devstack.FreePort()
	require.NoError(t, err)
	return p
}

func startFaultStack(t *testing.T) *faultStack {
	ctx := context.Background()
	s := &faultStack{t: t, dir: t.TempDir(), pgPort: free(t), redisPort: free(t), mongoPort: free(t), tmpPort: free(t),
		queue: testenv.Name(t, "tq"), log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))}
	s.startPostgres()
	s.startRedis()
	var err error
	s.kf, err = devstack.StartKafka(0, topic, 3)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.kf.Stop() })
	s.startMongo()
	s.startTemporal()

	s.pool, err = pgxpool.New(ctx, s.pg.DSN)
	require.NoError(t, err)
	t.Cleanup(s.pool.Close)
	_, err = schema.Migrate(ctx, s.pool)
	require.NoError(t, err)
	s.rdb = redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(strings.TrimSuffix(s.rd.URL, "/0"), "redis://"),
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { s.rdb.Close() })
	s.mc, err = mongo.Connect(options.Client().ApplyURI(s.mg.URI).SetServerSelectionTimeout(2 * time.Second).SetTimeout(5 * time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.mc.Disconnect(context.Background()) })
	s.tc, err = client.DialContext(ctx, client.Options{HostPort: s.tmp.Address, Logger: observability.NewTemporalLogger(s.log)})
	require.NoError(t, err)
	t.Cleanup(s.tc.Close)
	s.startWorker()

	reg := observability.NewRegistry()
	auditStore := audit.NewStore(s.mc.Database("audit"))
	require.NoError(t, auditStore.EnsureIndexes(ctx, 0))
	srv := api.New(api.Options{Temporal: s.tc, TaskQueue: s.queue, Routes: routes.NewStore(s.pool), Audit: auditStore,
		AckTimeout: 3 * time.Second, Metrics: observability.NewWriteMetrics(reg), Registry: reg, Log: s.log})
	apiSrv := httptest.NewServer(srv.Handler())
	t.Cleanup(apiSrv.Close)
	s.apiURL = apiSrv.URL
	serves(apiSrv.URL, api.OpenAPI)

	res, err := resolver.New(resolver.Options{Store: routes.NewStore(s.pool), Redis: cache.NewRedis(s.rdb, time.Minute),
		PositiveTTL: time.Minute, NegativeTTL: 10 * time.Second, Logger: s.log})
	require.NoError(t, err)
	cctx, cancel := context.WithCancel(ctx)
	ready := make(chan struct{})
	var once sync.Once
	go func() { _ = res.ConsumeEvents(cctx, s.kf.Brokers, topic, func() { once.Do(func() { close(ready) }) }) }()
	t.Cleanup(cancel)
	<-ready
	res.MarkReady()
	rsrv := httptest.NewServer(res.Handler(observability.NewRegistry()))
	t.Cleanup(rsrv.Close)
	s.resolverURL = rsrv.URL
	serves(rsrv.URL, resolver.OpenAPI)
	return s
}

func (s *faultStack) startPostgres() {
	var err error
	s.pg, err = devstack.StartPostgres(context.Background(), s.dir+"/pg", s.pgPort, io.Discard)
	require.NoError(s.t, err)
	pg := s.pg
	s.t.Cleanup(func() { _ = pg.Stop() })
}

func (s *faultStack) startRedis() {
	var err error
	s.rd, err = devstack.StartRedis(context.Background(), s.dir+"/redis", s.redisPort, io.Discard)
	require.NoError(s.t, err)
	rd := s.rd
	s.t.Cleanup(func() { _ = rd.Stop() })
}

func (s *faultStack) startMongo() {
	var err error
	s.mg, err = devstack.StartMongo(context.Background(), s.dir+"/mongo", s.mongoPort)
	require.NoError(s.t, err)
	mg := s.mg
	s.t.Cleanup(func() { _ = mg.Stop() })
}

func (s *faultStack) startTemporal() {
	var err error
	s.tmp, err = devstack.StartTemporal(context.Background(), s.dir+"/temporal", s.tmpPort, 0, io.Discard)
	require.NoError(s.t, err)
	tmp := s.tmp
	s.t.Cleanup(func() { _ = tmp.Stop() })
}

func (s *faultStack) startWorker() {
	pub := events.NewPublisher(s.kf.Brokers, topic)
	acts := &activities.Activities{Routes: routes.NewStore(s.pool), Cache: cache.NewRedis(s.rdb, time.Minute),
		Events: pub, AuditLog: audit.NewStore(s.mc.Database("audit")), Log: s.log}
	s.worker = worker.New(s.tc, s.queue, acts, worker.Options{StopTimeout: 5 * time.Second})
	require.NoError(s.t, s.worker.Start())
	w := s.worker
	s.t.Cleanup(w.Stop)
}

// write creates or updates a route and records it when acknowledged.
func (s *faultStack) write(tenant, version, url string, create bool) int {
	var req *http.Request
	if create {
		req, _ = http.NewRequest("POST", s.apiURL+"/api/v1/routes", strings.NewReader(fmt.Sprintf(
			`{"tenant":%q,"service":"payments","env":"prod","version":%q,"url":%q}`, tenant, version, url)))
	} else {
		req, _ = http.NewRequest("PUT", s.apiURL+"/api/v1/routes/"+tenant+"/payments/prod/"+version, strings.NewReader(fmt.Sprintf(`{"url":%q}`, url)))
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	var body map[string]any
	_ = jsonDecode(res.Body, &body)
	if res.StatusCode == 200 || res.StatusCode == 201 || res.StatusCode == 202 {
		s.mu.Lock()
		s.acked = append(s.acked, acked{key: routes.Key{Tenant: tenant, Service: "payments", Env: "prod", Version: version}, workflowID: body["workflow_id"].(string), status: res.StatusCode})
		s.mu.Unlock()
	}
	return res.StatusCode
}

// batchWrite creates n routes in one batch and returns the answer's status,
// workflow id and per-route event ids.
func (s *faultStack) batchWrite(tenant, name string, n int) (int, string, []string) {
	rs := make([]map[string]any, n)
	for i := range rs {
		rs[i] = map[string]any{"tenant": tenant, "service": "bulk", "env": "prod", "version": fmt.Sprintf("%s-%d", name, i), "url": fmt.Sprintf("https://%s.example/%d", name, i)}
	}
	raw, _ := json.Marshal(map[string]any{"routes": rs})
	req, _ := http.NewRequest("POST", s.apiURL+"/api/v1/routes/batch", bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, "", nil
	}
	defer res.Body.Close()
	var body struct {
		WorkflowID string `json:"workflow_id"`
		Routes     []struct {
			EventID string `json:"event_id"`
		} `json:"routes"`
	}
	_ = jsonDecode(res.Body, &body)
	ids := make([]string, len(body.Routes))
	for i, r := range body.Routes {
		ids[i] = r.EventID
	}
	return res.StatusCode, body.WorkflowID, ids
}

// verifyBatch checks a committed batch once the fault is over: workflow
// completed with every step done, every route's event on the topic and
// exactly one audit document each. It returns how many routes were lost.
func (s *faultStack) verifyBatch(wfID string, eventIDs []string, timeout time.Duration) (lost int) {
	t := s.t
	deadline := time.Now().Add(timeout)
	for {
		res, err := http.Get(s.apiURL + "/api/v1/mutations/" + wfID)
		st := map[string]any{}
		if err == nil {
			_ = jsonDecode(res.Body, &st)
			res.Body.Close()
		}
		if st["status"] == "completed" {
			require.Equal(t, map[string]any{"committed": "done", "invalidated": "done", "published": "done", "audited": "done"}, st["steps"], wfID)
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("batch %s not completed: %v", wfID, st)
			return len(eventIDs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	onTopic := map[string]int{}
	for _, e := range s.allEvents() {
		onTopic[e.EventID]++
	}
	coll := s.mc.Database("audit").Collection(audit.CollectionName)
	for _, id := range eventIDs {
		n, err := coll.CountDocuments(context.Background(), map[string]any{"event_id": id})
		require.NoError(t, err)
		if onTopic[id] == 0 || n != 1 {
			t.Errorf("batch %s event %s: %d on the topic, %d audit documents", wfID, id, onTopic[id], n)
			lost++
		}
	}
	return lost
}

// resolve returns the status, X-Cache and body of a resolve, and its latency.
func (s *faultStack) resolve(k routes.Key) (int, string, string, time.Duration) {
	start := time.Now()
	res, err := (&http.Client{Timeout: 10 * time.Second}).Get(s.resolverURL + "/api/v1/resolve/" + k.Tenant + "/" + k.Service + "/" + k.Env + "/" + k.Version)
	if err != nil {
		return 0, "", err.Error(), time.Since(start)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("X-Cache"), string(b), time.Since(start)
}

// verify checks the invariant for every acknowledged mutation: workflow
// completed with every step done, the Postgres row, its event id on the
// topic, exactly one audit document, and the resolver agreeing with
// Postgres. It returns how many were lost and the staleness observed.
func (s *faultStack) verify(timeout time.Duration) (lost int, staleness time.Duration) {
	t := s.t
	ctx := context.Background()
	s.mu.Lock()
	list := append([]acked(nil), s.acked...)
	s.acked = nil
	s.mu.Unlock()
	topicIDs := map[string]int{}
	deadline := time.Now().Add(timeout)
	for _, a := range list {
		var st map[string]any
		for {
			res, err := http.Get(s.apiURL + "/api/v1/mutations/" + a.workflowID)
			if err == nil {
				st = map[string]any{}
				_ = jsonDecode(res.Body, &st)
				res.Body.Close()
				if st["status"] == "completed" {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Errorf("mutation %s not completed: %v", a.workflowID, st)
				lost++
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if st["status"] != "completed" {
			continue
		}
		steps := st["steps"].(map[string]any)
		if steps["committed"] != "done" {
			continue // a no-op or rejected mutation has nothing more to check
		}
		require.Equal(t, map[string]any{"committed": "done", "invalidated": "done", "published": "done", "audited": "done"}, steps, a.workflowID)
		eventID := st["event_id"].(string)
		if len(topicIDs) == 0 {
			for _, e := range s.allEvents() {
				topicIDs[e.EventID]++
			}
		}
		if topicIDs[eventID] == 0 {
			for _, e := range s.allEvents() { // published after the first read
				topicIDs[e.EventID]++
			}
		}
		if topicIDs[eventID] == 0 {
			t.Errorf("event %s of %s not on the topic", eventID, a.workflowID)
			lost++
		}
		n, err := s.mc.Database("audit").Collection(audit.CollectionName).CountDocuments(ctx, map[string]any{"event_id": eventID})
		require.NoError(t, err)
		if n != 1 {
			t.Errorf("event %s has %d audit documents", eventID, n)
			lost++
		}
	}
	// Resolvers converge to Postgres once the fault is over.
	seen := map[routes.Key]bool{}
	for _, a := range list {
		if seen[a.key] {
			continue
		}
		seen[a.key] = true
		r, err := routes.NewStore(s.pool).Get(ctx, a.key)
		require.NoError(t, err)
		start := time.Now()
		for {
			code, _, body, _ := s.resolve(a.key)
			if code == 200 && strings.Contains(body, r.URL) {
				break
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("resolver still answers %d %s for %s, Postgres has %s", code, body, a.key, r.URL)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if d := time.Since(start); d > staleness {
			staleness = d
		}
	}
	return lost, staleness
}

func (s *faultStack) allEvents() []events.Event {
	return (&platform{brokers: s.kf.Brokers}).allEvents(s.t)
}

type faultRow struct {
	fault                    string
	sent, acknowledged, lost int
	staleness                time.Duration
	notes                    string
}

func TestFaultsLoseNoAcknowledgedWrite(t *testing.T) {
	s := startFaultStack(t)
	var rows []faultRow
	record := func(r faultRow) {
		rows = append(rows, r)
		t.Logf("%-28s sent %3d  acknowledged %3d  lost %d  max staleness %s  %s", r.fault, r.sent, r.acknowledged, r.lost, r.staleness.Round(time.Millisecond), r.notes)
	}
	tenant := testenv.Name(t, "fault")
	// A warm route every resolver has cached before the faults.
	require.Equal(t, 201, s.write(tenant, "warm", "https://warm.example/0", true))
	warm := routes.Key{Tenant: tenant, Service: "payments", Env: "prod", Version: "warm"}
	code, _, _, _ := s.resolve(warm)
	require.Equal(t, 200, code)
	lost, _ := s.verify(30 * time.Second)
	require.Zero(t, lost)

	burst := func(name string, n int) (sent, ok int) {
		for i := 0; i < n; i++ {
			sent++
			c := s.write(tenant, fmt.Sprintf("%s-%d", name, i), fmt.Sprintf("https://%s.example/%d", name, i), true)
			if c >= 200 && c < 300 {
				ok++
			} else {
				t.Logf("%s write %d answered %d", name, i, c)
			}
		}
		return sent, ok
	}

	t.Run("postgres down", func(t *testing.T) {
		require.NoError(t, s.pg.Stop())
		sent, ok := burst("pg", 5)
		code, xcache, _, _ := s.resolve(warm)
		require.Equal(t, 200, code, "a cached route is still served")
		require.Contains(t, []string{"hit", "stale"}, xcache)
		var slowest time.Duration
		for i := 0; i < 20; i++ {
			code, _, _, d := s.resolve(routes.Key{Tenant: tenant, Service: "payments", Env: "prod", Version: fmt.Sprintf("cold-%d", i)})
			require.Equal(t, 503, code, "an uncached route cannot be answered")
			if i > 5 && d > slowest {
				slowest = d
			}
		}
		s.startPostgres()
		lost, stale := s.verify(60 * time.Second)
		record(faultRow{"postgres down", sent, ok, lost, stale, fmt.Sprintf("writes answered 202; cold resolves 503 in ≤ %s once the breaker opened", slowest.Round(time.Millisecond))})
		require.Zero(t, lost)
		require.Equal(t, sent, ok)
	})

	t.Run("redis down", func(t *testing.T) {
		require.NoError(t, s.rd.Stop())
		sent, ok := burst("redis", 5)
		for i := 0; i < 5; i++ {
			code, _, _, _ := s.resolve(routes.Key{Tenant: tenant, Service: "payments", Env: "prod", Version: fmt.Sprintf("redis-%d", i)})
			require.Equal(t, 200, code, "routes created during the outage resolve from Postgres")
		}
		// Distinct missing keys miss L1 every time, so each one goes to the
		// Redis tier: once its breaker is open they must not wait for Redis.
		var slowest time.Duration
		for i := 0; i < 40; i++ {
			code, _, _, d := s.resolve(routes.Key{Tenant: tenant, Service: "payments", Env: "prod", Version: fmt.Sprintf("redis-miss-%d", i)})
			require.Equal(t, 404, code)
			if i >= 10 && d > slowest {
				slowest = d
			}
		}
		s.startRedis()
		lost, stale := s.verify(60 * time.Second)
		record(faultRow{"redis down", sent, ok, lost, stale, fmt.Sprintf("resolves from L1/Postgres, slowest %s after the breaker opened", slowest.Round(time.Millisecond))})
		require.Zero(t, lost)
		require.Less(t, slowest, 100*time.Millisecond)
	})

	t.Run("kafka refusing writes", func(t *testing.T) {
		s.kf.RefuseProduce(true)
		sent, ok := burst("kafka", 5)
		code, wfID, ids := s.batchWrite(tenant, "kafka-batch", 50)
		require.Contains(t, []int{201, 202}, code, "a batch is acknowledged while Kafka refuses produce")
		time.Sleep(2 * time.Second) // the publish activities retry meanwhile
		s.kf.RefuseProduce(false)
		lost, stale := s.verify(60 * time.Second)
		batchLost := s.verifyBatch(wfID, ids, 60*time.Second)
		record(faultRow{"kafka refusing produce", sent + 50, ok + 50, lost + batchLost, stale, "writes and a 50-route batch acknowledged; events delivered after recovery"})
		require.Zero(t, lost)
		require.Zero(t, batchLost)
		require.Equal(t, sent, ok)
	})

	t.Run("mongodb down", func(t *testing.T) {
		require.NoError(t, s.mg.Stop())
		sent, ok := burst("mongo", 5)
		code, wfID, ids := s.batchWrite(tenant, "mongo-batch", 50)
		require.Contains(t, []int{201, 202}, code, "a batch is acknowledged while MongoDB is down")
		time.Sleep(time.Second)
		s.startMongo()
		lost, stale := s.verify(90 * time.Second)
		batchLost := s.verifyBatch(wfID, ids, 90*time.Second)
		record(faultRow{"mongodb down", sent + 50, ok + 50, lost + batchLost, stale, "audit documents (5 single, a 50-route batch) written after recovery, one each"})
		require.Zero(t, lost)
		require.Zero(t, batchLost)
		require.Equal(t, sent, ok)
	})

	t.Run("temporal restarted during a burst", func(t *testing.T) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		sent, ok, failedClearly := 0, 0, 0
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := s.write(tenant, fmt.Sprintf("tmp-%d", i), fmt.Sprintf("https://tmp.example/%d", i), true)
				mu.Lock()
				defer mu.Unlock()
				sent++
				switch {
				case c >= 200 && c < 300:
					ok++
				case c == 503 || c == 500:
					failedClearly++
				}
			}()
			if i == 5 {
				require.NoError(t, s.tmp.Stop())
				go func() { time.Sleep(2 * time.Second); s.startTemporal() }()
			}
			time.Sleep(100 * time.Millisecond)
		}
		wg.Wait()
		lost, stale := s.verify(120 * time.Second)
		record(faultRow{"temporal restarted", sent, ok, lost, stale, fmt.Sprintf("%d unacknowledged answered 5xx", failedClearly)})
		require.Zero(t, lost)
		require.Equal(t, sent, ok+failedClearly, "every request is either acknowledged or fails clearly")
	})

	if path := os.Getenv("TM_FAULT_REPORT"); path != "" {
		var b strings.Builder
		b.WriteString("| fault | requests sent | acknowledged | lost | max staleness after recovery | notes |\n|---|---|---|---|---|---|\n")
		for _, r := range rows {
			fmt.Fprintf(&b, "| %s | %d | %d | %d | %s | %s |\n", r.fault, r.sent, r.acknowledged, r.lost, r.staleness.Round(time.Millisecond), r.notes)
		}
		require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	}
}
