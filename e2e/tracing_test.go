package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/activities"
	"github.com/trafficmanager/trafficmanager/api"
	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/resolver"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/schema"
	"github.com/trafficmanager/trafficmanager/tracing"
	"github.com/trafficmanager/trafficmanager/tracing/mongotrace"
	"github.com/trafficmanager/trafficmanager/worker"
)

// TestOneWriteIsOneTrace wires api, worker and resolver the way cmd does
// with traces on (docs/tracing.md), on an in-memory exporter: one route
// write is one trace, from the api's HTTP span through the workflow and its
// activities (Postgres, Redis, MongoDB, the Kafka publish) to the
// resolver's consumer applying the event. Not parallel: it installs the
// global tracer provider, and parallel tests run only after it.
func TestOneWriteIsOneTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	smp, err := tracing.Sampler(func(string) string { return "" }) // FromEnv's, with no OTEL_TRACES_SAMPLER
	require.NoError(t, err)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(smp))
	tracing.Install(tp)
	t.Cleanup(func() {
		otel.SetTracerProvider(noop.NewTracerProvider())
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
		_ = tp.Shutdown(context.Background())
	})
	require.True(t, tracing.Active())

	ctx := context.Background()
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	pc, err := pgxpool.ParseConfig(testenv.PostgresDSN(t))
	require.NoError(t, err)
	tracing.Pgx(pc)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = schema.Migrate(ctx, pool)
	require.NoError(t, err)
	rdb := testenv.Redis(t)
	require.NoError(t, tracing.Redis(rdb))
	mc, err := mongo.Connect(options.Client().ApplyURI(testenv.MongoURI(t)).SetTimeout(10 * time.Second).
		SetMonitor(mongotrace.Monitor()))
	require.NoError(t, err)
	db := mc.Database(strings.ReplaceAll(testenv.Name(t, "audit"), "-", "_"))
	t.Cleanup(func() { _ = db.Drop(context.Background()); _ = mc.Disconnect(context.Background()) })
	brokers := testenv.Kafka(t, topic, 1)

	ic, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{})
	require.NoError(t, err)
	tc, err := client.DialContext(ctx, client.Options{HostPort: testenv.Temporal(t).Address, Namespace: "default",
		Logger: observability.NewTemporalLogger(log), Interceptors: []interceptor.ClientInterceptor{ic}})
	require.NoError(t, err)
	t.Cleanup(tc.Close)

	// worker
	queue := testenv.Name(t, "tq")
	auditStore := audit.NewStore(db)
	pub := events.NewPublisher(brokers, topic)
	t.Cleanup(func() { pub.Close() })
	w := worker.New(tc, queue, &activities.Activities{Routes: routes.NewStore(pool), Cache: cache.NewRedis(rdb, time.Minute),
		Events: pub, AuditLog: auditStore, Log: log}, worker.Options{StopTimeout: 5 * time.Second})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	// resolver
	res, err := resolver.New(resolver.Options{Store: routes.NewStore(pool), Redis: cache.NewRedis(rdb, time.Minute),
		PositiveTTL: time.Minute, NegativeTTL: 10 * time.Second, Logger: log})
	require.NoError(t, err)
	t.Cleanup(res.Close)
	cctx, cancel := context.WithCancel(ctx)
	ready, done := make(chan struct{}), make(chan struct{})
	var once sync.Once
	go func() {
		defer close(done)
		_ = res.ConsumeEvents(cctx, brokers, topic, func() { once.Do(func() { close(ready) }) })
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("resolver did not subscribe to the events")
	}
	res.MarkReady()
	rsrv := httptest.NewServer(res.Handler(observability.NewRegistry(), tracing.Middleware("trafficmanager-resolver")...))
	t.Cleanup(rsrv.Close)

	// api
	reg := observability.NewRegistry()
	srv := api.New(api.Options{Temporal: tc, TaskQueue: queue, Routes: routes.NewStore(pool), Ledger: routes.NewStore(pool),
		Audit: auditStore, AckTimeout: 10 * time.Second, Metrics: observability.NewWriteMetrics(reg), Registry: reg, Log: log,
		Middleware: tracing.Middleware("trafficmanager-api")})
	asrv := httptest.NewServer(srv.Handler())
	t.Cleanup(asrv.Close)
	p := &platform{api: asrv}

	k := routes.Key{Tenant: testenv.Name(t, "team"), Service: "payments", Env: "prod", Version: "v1"}
	resp := p.do(t, "POST", "/api/v1/routes", map[string]any{
		"tenant": k.Tenant, "service": k.Service, "env": k.Env, "version": k.Version,
		"url": "https://payments.example/v1", "changed_by": "alice@example.com",
	})
	require.Equal(t, http.StatusCreated, resp.Status, resp.Raw)

	// The write's trace: its root is the api's server span.
	var root sdktrace.ReadOnlySpan
	for _, s := range exp.GetSpans().Snapshots() {
		if s.Name() == "POST /api/v1/routes" && s.SpanKind() == trace.SpanKindServer {
			root = s
		}
	}
	require.NotNil(t, root, "no server span for the write")
	id := root.SpanContext().TraceID()
	inTrace := func() []sdktrace.ReadOnlySpan {
		var out []sdktrace.ReadOnlySpan
		for _, s := range exp.GetSpans().Snapshots() {
			if s.SpanContext().TraceID() == id {
				out = append(out, s)
			}
		}
		return out
	}
	want := []string{"POST /api/v1/routes", "UpdateWithStartWorkflow:commit", "RunWorkflow:RouteMutation",
		"RunActivity:Commit", "RunActivity:Publish", topic + " publish", "route_event apply"}
	complete := func() bool {
		names := map[string]bool{}
		for _, s := range inTrace() {
			names[s.Name()] = true
		}
		for _, n := range want {
			if !names[n] {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(20 * time.Second); !complete(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			all := exp.GetSpans().Snapshots()
			t.Fatalf("the write's trace does not hold %v; it has:\n%s\nall %d spans:\n%s", want, spanTree(inTrace()), len(all), spanTree(all))
		}
	}
	time.Sleep(200 * time.Millisecond) // let the audit activity's spans end too
	spans := inTrace()

	// The consumer's span is the child of the publisher's.
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	for _, s := range spans {
		if s.Name() == "route_event apply" {
			parent, ok := byID[s.Parent().SpanID()]
			require.True(t, ok, "the consumer span's parent is in the trace")
			require.Equal(t, topic+" publish", parent.Name())
		}
	}
	kinds := map[string]bool{}
	for _, s := range spans {
		switch {
		case s.InstrumentationScope().Name == "github.com/exaring/otelpgx":
			kinds["postgres"] = true
		case strings.Contains(s.InstrumentationScope().Name, "redisotel"):
			kinds["redis"] = true
		case strings.HasSuffix(s.InstrumentationScope().Name, "mongotrace"):
			kinds["mongodb"] = true
		}
	}
	require.Equal(t, map[string]bool{"postgres": true, "redis": true, "mongodb": true}, kinds, "driver spans in the write's trace")
	t.Logf("one write, %d spans in trace %s:\n%s", len(spans), id, spanTree(spans))

	// A resolve through the traced resolver is a trace of its own.
	r, err := http.Get(rsrv.URL + resolver.ResolvePrefix + k.Tenant + "/payments/prod/v1")
	require.NoError(t, err)
	r.Body.Close()
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.True(t, slices.ContainsFunc(exp.GetSpans().Snapshots(), func(s sdktrace.ReadOnlySpan) bool {
		return s.Name() == "GET /api/v1/resolve/*key" && s.SpanContext().TraceID() != id
	}), "the resolve has a server span")
}

// spanTree renders spans as an indented tree in start order, with each
// span's duration: the picture of a trace in docs/tracing.md.
func spanTree(spans []sdktrace.ReadOnlySpan) string {
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	ids := map[trace.SpanID]bool{}
	for _, s := range spans {
		ids[s.SpanContext().SpanID()] = true
	}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if p := s.Parent().SpanID(); p.IsValid() && ids[p] {
			children[p] = append(children[p], s)
		} else {
			roots = append(roots, s)
		}
	}
	var b strings.Builder
	var walk func([]sdktrace.ReadOnlySpan, int)
	walk = func(ss []sdktrace.ReadOnlySpan, depth int) {
		sort.Slice(ss, func(i, j int) bool { return ss[i].StartTime().Before(ss[j].StartTime()) })
		for _, s := range ss {
			fmt.Fprintf(&b, "%s%s  [%s, %s]\n", strings.Repeat("  ", depth), s.Name(), s.SpanKind(),
				s.EndTime().Sub(s.StartTime()).Round(100*time.Microsecond))
			walk(children[s.SpanContext().SpanID()], depth+1)
		}
	}
	walk(roots, 0)
	return b.String()
}
