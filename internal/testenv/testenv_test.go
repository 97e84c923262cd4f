package testenv_test

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/trafficmanager/trafficmanager/internal/devstack"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var private = os.Getenv("TM_TEST_PRIVATE_SERVERS") == "1"

func port(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

func TestName(t *testing.T) {
	t.Parallel()
	valid := regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	seen := map[string]bool{}
	for _, prefix := range []string{"tenant", "", "Test/Sub_case", strings.Repeat("x", 100), "--a--", "ünï"} {
		for i := 0; i < 50; i++ {
			n := testenv.Name(t, prefix)
			if !valid.MatchString(n) || len(n) > 63 {
				t.Fatalf("Name(%q) = %q: not a valid tenant name", prefix, n)
			}
			if seen[n] {
				t.Fatalf("Name(%q) repeated %q", prefix, n)
			}
			seen[n] = true
		}
	}
	if n := testenv.Name(t, "svc"); !strings.HasPrefix(n, "svc-") || len(n) != len("svc-")+8 {
		t.Fatalf("Name(svc) = %q", n)
	}
}

func TestPostgresDSN(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var dsn string
	t.Run("fresh", func(t *testing.T) {
		dsn = testenv.PostgresDSN(t)
		t.Logf("postgres %s", dsn)
		if private && port(t, dsn) == "5432" {
			t.Fatalf("TM_TEST_PRIVATE_SERVERS=1 but the machine's server is used: %s", dsn)
		}
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var tables int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil || tables != 0 {
			t.Fatalf("fresh database has %d tables (%v)", tables, err)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE mine (x int)"); err != nil {
			t.Fatal(err)
		}
		if other := testenv.PostgresDSN(t); other == dsn {
			t.Fatal("two calls returned one database")
		}
	})
	// The subtest's cleanup dropped its database.
	u, _ := url.Parse(dsn)
	name := strings.TrimPrefix(u.Path, "/")
	u.Path = "/postgres"
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil || n != 0 {
		t.Fatalf("database %s still exists after the test (%d, %v)", name, n, err)
	}
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	var version int64
	err := pool.QueryRow(context.Background(), "SELECT max(version_id) FROM goose_db_version").Scan(&version)
	if err != nil || version < 1 {
		t.Fatalf("migrations not applied: version %d, %v", version, err)
	}
}

func TestRedis(t *testing.T) {
	t.Parallel()
	u := testenv.RedisURL(t)
	t.Logf("redis %s", u)
	if private && port(t, u) == "6379" {
		t.Fatalf("TM_TEST_PRIVATE_SERVERS=1 but the machine's server is used: %s", u)
	}
	c := testenv.Redis(t)
	key := testenv.Name(t, "key")
	if err := c.Set(context.Background(), key, "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(context.Background(), key).Result(); err != nil || v != "v" {
		t.Fatalf("get %q, %v", v, err)
	}
}

func TestKafka(t *testing.T) {
	t.Parallel()
	a := testenv.Kafka(t, "route-events", 2)
	b := testenv.Kafka(t, "route-events", 1)
	if a[0] == b[0] {
		t.Fatal("two calls share a cluster")
	}
	conn, err := kafka.Dial("tcp", a[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions("route-events")
	if err != nil || len(parts) != 2 {
		t.Fatalf("partitions %d, %v", len(parts), err)
	}
}

func TestMongo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var names []string
	for i := 0; i < 2; i++ {
		t.Run("db", func(t *testing.T) {
			db := testenv.Mongo(t)
			names = append(names, db.Name())
			if _, err := db.Collection("c").InsertOne(ctx, bson.M{"v": i}); err != nil {
				t.Fatal(err)
			}
			if n, err := db.Collection("c").CountDocuments(ctx, bson.M{}); err != nil || n != 1 {
				t.Fatalf("count %d, %v", n, err)
			}
		})
	}
	if names[0] == names[1] {
		t.Fatal("two tests share a database")
	}
	db := testenv.Mongo(t)
	dbs, err := db.Client().ListDatabaseNames(ctx, bson.M{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dbs {
		if d == names[0] || d == names[1] {
			t.Fatalf("database %s not dropped after its test", d)
		}
	}
}

func TestTemporal(t *testing.T) {
	t.Parallel()
	tp := testenv.Temporal(t)
	if again := testenv.Temporal(t); again != tp {
		t.Fatal("second call started another server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: tp.Address, Namespace: tp.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: "default"})
	if err != nil || res.GetNamespaceInfo().GetName() != "default" {
		t.Fatalf("describe namespace: %v", err)
	}
	if tp.Topology != testenv.TemporalTopology() {
		t.Fatalf("topology %q, TM_TEST_TEMPORAL asks for %q", tp.Topology, testenv.TemporalTopology())
	}
	sas, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: tp.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	for _, sa := range devstack.SearchAttributes {
		if _, ok := sas.GetCustomAttributes()[sa]; !ok {
			t.Errorf("search attribute %s not registered on the %s", sa, tp.Topology)
		}
	}
}

// TestPrivateServers runs this package's Postgres and Redis tests again in
// a child test binary with TM_TEST_PRIVATE_SERVERS=1 (the clean-machine
// path: devstack servers), and checks Main stopped them afterwards.
func TestPrivateServers(t *testing.T) {
	if private {
		t.Skip("already the private run")
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^(TestPostgresDSN|TestPostgres|TestRedis)$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "TM_TEST_PRIVATE_SERVERS=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("private run failed: %v\n%s", err, out)
	}
	var ports []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	re := regexp.MustCompile(`(postgres|redis) ((?:postgres|redis)://\S+)`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			ports = append(ports, port(t, m[2]))
		}
	}
	if len(ports) < 2 {
		t.Fatalf("private run logged no server URLs:\n%s", out)
	}
	for _, p := range ports {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+p, time.Second); err == nil {
			c.Close()
			t.Errorf("private server on port %s still listens after Main", p)
		}
	}
}
