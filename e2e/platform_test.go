package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/activities"
	"github.com/trafficmanager/trafficmanager/api"
	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/auth"
	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/internal/openapitest"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/policies"
	"github.com/trafficmanager/trafficmanager/propagation"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/schema"
	"github.com/trafficmanager/trafficmanager/worker"
)

func TestMain(m *testing.M) {
	validateOpenAPI() // openapi_test.go: every exchange is checked against the OpenAPI documents
	testenv.Main(m)
}

const topic = "route-events"

// platform is one isolated write path: its own database, topic, audit
// database and task queue on the shared servers.
type platform struct {
	pool    *pgxpool.Pool
	rdb     *redis.Client
	brokers []string
	mongo   *mongo.Database
	tc      client.Client
	queue   string
	api     *httptest.Server
	tokens  *auth.Store
	admin   string
}

// platformOptions vary the API under test.
type platformOptions struct {
	ackTimeout time.Duration
	auth       bool    // bearer tokens on; p.admin holds an admin token
	writeRPS   float64 // per-tenant write limit; 0 = unlimited
	burst      int
	dsn        string        // a Postgres of the test's own (fault tests); default a fresh database
	brokers    []string      // a Kafka of the test's own; default a fresh kfake
	rdb        *redis.Client // a Redis of the test's own; default the shared one
	noWorker   bool          // the test runs its own worker (a process)
	temporal   string        // a Temporal of the test's own (frontend address); default testenv.Temporal
	policies   bool          // tenant approval policies on (the policy endpoints answer 503 without)
	// propagationPrefix, when set, gives the api a propagation registry over
	// p.rdb under this Redis key prefix (resolvers report under the same).
	propagationPrefix string
}

func startPlatform(t *testing.T, ackTimeout time.Duration) *platform {
	return startPlatformWith(t, platformOptions{ackTimeout: ackTimeout})
}

func startPlatformWith(t *testing.T, o platformOptions) *platform {
	t.Helper()
	ackTimeout := o.ackTimeout
	ctx := context.Background()
	log := zaptest.NewLogger(t)
	p := &platform{
		rdb:     testenv.Redis(t),
		brokers: o.brokers,
		mongo:   testenv.Mongo(t),
		queue:   testenv.Name(t, "tq"),
	}
	if p.brokers == nil {
		p.brokers = testenv.Kafka(t, topic, 3)
	}
	if o.rdb != nil {
		p.rdb = o.rdb
	}
	if o.dsn == "" {
		p.pool = testenv.Postgres(t)
	} else {
		pool, err := pgxpool.New(ctx, o.dsn)
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		_, err = schema.Migrate(ctx, pool)
		require.NoError(t, err)
		p.pool = pool
	}
	temporalAddr := o.temporal
	if temporalAddr == "" {
		temporalAddr = testenv.Temporal(t).Address
	}
	tc, err := client.DialContext(ctx, client.Options{HostPort: temporalAddr, Namespace: "default", Logger: observability.NewTemporalLogger(log)})
	require.NoError(t, err)
	t.Cleanup(tc.Close)
	p.tc = tc

	auditStore := audit.NewStore(p.mongo)
	require.NoError(t, auditStore.EnsureIndexes(ctx, 0))
	pub := events.NewPublisher(p.brokers, topic)
	t.Cleanup(func() { pub.Close() })
	acts := &activities.Activities{
		Routes: routes.NewStore(p.pool), Cache: cache.NewRedis(p.rdb, time.Minute),
		Events: pub, AuditLog: auditStore, Log: log,
	}
	if !o.noWorker {
		w := worker.New(tc, p.queue, acts, worker.Options{StopTimeout: 5 * time.Second})
		require.NoError(t, w.Start())
		t.Cleanup(w.Stop)
	}

	reg := observability.NewRegistry()
	opts := api.Options{
		Temporal: tc, TaskQueue: p.queue, Routes: routes.NewStore(p.pool), Ledger: routes.NewStore(p.pool), Audit: auditStore,
		AckTimeout: ackTimeout, Metrics: observability.NewWriteMetrics(reg), Registry: reg, Log: log,
	}
	if o.auth {
		p.tokens = auth.NewStore(p.pool)
		p.admin = auth.NewSecret()
		require.NoError(t, p.tokens.Ensure(ctx, "root", p.admin))
		opts.Auth, opts.Tokens = auth.NewAuthenticator(p.tokens, log), p.tokens
	}
	if o.policies {
		pols := policies.NewSnapshot(policies.NewStore(p.pool), log)
		require.NoError(t, pols.Refresh(ctx))
		opts.Policies = pols
	}
	if o.propagationPrefix != "" {
		reg, err := propagation.NewRegistry(propagation.RegistryOptions{Redis: p.rdb, Prefix: o.propagationPrefix})
		require.NoError(t, err)
		opts.Resolvers = reg
	}
	if o.writeRPS > 0 {
		opts.Limiter = api.NewTenantLimiter(o.writeRPS, o.burst)
	}
	srv := api.New(opts)
	p.api = httptest.NewServer(srv.Handler())
	t.Cleanup(p.api.Close)
	serves(p.api.URL, api.OpenAPI)
	return p
}

type response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

func (p *platform) do(t *testing.T, method, path string, body any, headers ...string) response {
	t.Helper()
	var r io.Reader
	if s, ok := body.(string); ok {
		r = bytes.NewBufferString(s)
	} else if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(openapitest.WithReporter(context.Background(), t), method, p.api.URL+path, r)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := response{Status: res.StatusCode, Header: res.Header, Raw: string(raw)}
	_ = json.Unmarshal(raw, &out.Body)
	return out
}

// eventsFor reads the whole topic and returns the events of one route.
func (p *platform) eventsFor(t *testing.T, k routes.Key) []events.Event {
	t.Helper()
	var out []events.Event
	for _, e := range p.allEvents(t) {
		if e.Key() == k {
			out = append(out, e)
		}
	}
	return out
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

// allEvents reads every partition of the topic from the start to its end.
func (p *platform) allEvents(t *testing.T) []events.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", p.brokers[0])
	require.NoError(t, err)
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	require.NoError(t, err)
	var out []events.Event
	for _, part := range parts {
		pc, err := kafka.DialLeader(ctx, "tcp", p.brokers[0], topic, part.ID)
		require.NoError(t, err)
		last, err := pc.ReadLastOffset()
		pc.Close()
		require.NoError(t, err)
		if last == 0 {
			continue
		}
		rd := kafka.NewReader(kafka.ReaderConfig{Brokers: p.brokers, Topic: topic, Partition: part.ID, MaxWait: 50 * time.Millisecond})
		for {
			m, err := rd.ReadMessage(ctx)
			require.NoError(t, err)
			e, err := events.Decode(m.Value)
			require.NoError(t, err)
			out = append(out, e)
			if m.Offset >= last-1 {
				break
			}
		}
		rd.Close()
	}
	return out
}

func (p *platform) auditDocs(t *testing.T, eventID string) int64 {
	t.Helper()
	n, err := p.mongo.Collection(audit.CollectionName).CountDocuments(context.Background(), bson.D{{Key: "event_id", Value: eventID}})
	require.NoError(t, err)
	return n
}

// eventually polls cond every 50 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
