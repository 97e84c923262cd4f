// Package testenv gives tests real dependencies through internal/devstack:
// a fresh Postgres database, Redis, a fresh kfake cluster, a FerretDB
// database and Temporal (the dev server, or with TM_TEST_TEMPORAL=cluster
// the production server on PostgreSQL: see Temporal). Every helper is safe
// to call from parallel tests. Shared servers start lazily, once per test
// binary; call Main from TestMain so they stop when the tests end:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// Without Main the child processes still die with the test binary (devstack
// sets a parent-death signal), but their temporary directories stay behind.
//
// Where a machine already runs PostgreSQL on 5432 or Redis on 6379 (or
// TM_TEST_DATABASE_URL / TM_TEST_REDIS_URL are set), tests use that server;
// otherwise devstack starts private ones (TM_TEST_PRIVATE_SERVERS=1 forces
// private ones even then). Kafka (kfake), MongoDB (FerretDB)
// and Temporal are always private.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/trafficmanager/trafficmanager/internal/devstack"
	"github.com/trafficmanager/trafficmanager/schema"
)

// shared servers, started lazily and stopped by Main.
var (
	mu      sync.Mutex
	stops   []func() error
	tmpDirs []string

	pgOnce sync.Once
	pgBase string
	pgErr  error

	redisOnce sync.Once
	redisURL  string
	redisErr  error

	mongoOnce sync.Once
	mongoURI  string
	mongoErr  error
)

// afterRun are package-wide checks run once the tests have run.
var afterRun []func() bool

// AfterRun registers a check that runs after every test of the package (in
// TestMain, before Main); false fails the package. e2e uses it for the
// OpenAPI validation summary.
func AfterRun(f func() bool) { afterRun = append(afterRun, f) }

// Main runs the tests, then the AfterRun checks, then stops every shared
// server they started.
func Main(m *testing.M) {
	code := m.Run()
	for _, f := range afterRun {
		if !f() && code == 0 {
			code = 1
		}
	}
	mu.Lock()
	for i := len(stops) - 1; i >= 0; i-- {
		_ = stops[i]()
	}
	for _, d := range tmpDirs {
		_ = os.RemoveAll(d)
	}
	mu.Unlock()
	os.Exit(code)
}

func register(stop func() error) {
	mu.Lock()
	defer mu.Unlock()
	stops = append(stops, stop)
}

func tempDir(prefix string) (string, error) {
	d, err := os.MkdirTemp("", prefix)
	if err == nil {
		mu.Lock()
		tmpDirs = append(tmpDirs, d)
		mu.Unlock()
	}
	return d, err
}

// Name returns a unique name valid as a tenant, service or env (lowercase
// letters, digits and '-', at most 63 chars, starting and ending with a
// letter or digit): the prefix, sanitized and cut to 54 chars, then '-' and
// 8 random hex digits.
func Name(t testing.TB, prefix string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(prefix) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	p := b.String()
	if len(p) > 54 {
		p = p[:54]
	}
	p = strings.Trim(p, "-")
	if p == "" {
		p = "t"
	}
	rnd := make([]byte, 4)
	if _, err := rand.Read(rnd); err != nil {
		t.Fatal(err)
	}
	return p + "-" + hex.EncodeToString(rnd)
}

// forcePrivate reports whether TM_TEST_PRIVATE_SERVERS asks for private
// servers even where the machine runs its own PostgreSQL or Redis (what a
// clean CI machine does).
func forcePrivate() bool {
	v := os.Getenv("TM_TEST_PRIVATE_SERVERS")
	return v != "" && v != "0" && v != "false"
}

func reachable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// postgresBase returns a DSN of a server where tests may create databases:
// $TM_TEST_DATABASE_URL, the machine's server on 5432, else a private
// cluster started once.
func postgresBase() (string, error) {
	pgOnce.Do(func() {
		if v := os.Getenv("TM_TEST_DATABASE_URL"); v != "" {
			pgBase = v
			return
		}
		if !forcePrivate() && reachable("127.0.0.1:5432") {
			dsn := "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if c, err := pgx.Connect(ctx, dsn); err == nil {
				c.Close(ctx)
				pgBase = dsn
				return
			}
		}
		pgBase, pgErr = privatePostgres("tm-test-pg-")
	})
	return pgBase, pgErr
}

// privatePostgres starts a PostgreSQL cluster of the test binary's own in
// a temporary directory named by prefix, stopped by Main, and returns its
// DSN.
func privatePostgres(prefix string) (string, error) {
	dir, err := tempDir(prefix)
	if err != nil {
		return "", err
	}
	var pg *devstack.Postgres
	err = onFreePort(func(port int) (err error) {
		pg, err = devstack.StartPostgres(context.Background(), dir+"/data", port, io.Discard)
		return err
	})
	if err != nil {
		return "", err
	}
	register(pg.Stop)
	return pg.DSN, nil
}

// PostgresDSN creates a fresh, empty database and returns its DSN; the
// database is dropped when the test ends.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base, err := postgresBase()
	if err != nil {
		t.Fatalf("postgres for tests: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("postgres for tests: connect %s: %v", base, err)
	}
	defer conn.Close(ctx)
	name := "tm_" + strings.ReplaceAll(Name(t, "t"), "-", "_")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("postgres for tests: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// Postgres returns a pool on a fresh database with the schema migrated.
func Postgres(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := schema.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return pool
}

// RedisURL returns $TM_TEST_REDIS_URL, the machine's Redis on 6379, else a
// private redis-server started once. Tests keep keys apart with unique names.
func RedisURL(t testing.TB) string {
	t.Helper()
	redisOnce.Do(func() {
		if v := os.Getenv("TM_TEST_REDIS_URL"); v != "" {
			redisURL = v
			return
		}
		if !forcePrivate() && reachable("127.0.0.1:6379") {
			c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
			defer c.Close()
			if c.Ping(context.Background()).Err() == nil {
				redisURL = "redis://127.0.0.1:6379/0"
				return
			}
		}
		dir, err := tempDir("tm-test-redis-")
		if err != nil {
			redisErr = err
			return
		}
		var r *devstack.Redis
		err = onFreePort(func(port int) (err error) {
			r, err = devstack.StartRedis(context.Background(), dir, port, io.Discard)
			return err
		})
		if err != nil {
			redisErr = err
			return
		}
		register(r.Stop)
		redisURL = r.URL
	})
	if redisErr != nil {
		t.Fatalf("redis for tests: %v", redisErr)
	}
	return redisURL
}

// Redis returns a client on RedisURL.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// Kafka starts a fresh embedded broker with topic and returns its address.
func Kafka(t testing.TB, topic string, partitions int) []string {
	t.Helper()
	k, err := devstack.StartKafka(0, topic, partitions)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Stop() })
	return k.Brokers
}

// MongoURI returns the address of the FerretDB shared by this test binary.
func MongoURI(t testing.TB) string {
	t.Helper()
	mongoOnce.Do(func() {
		dir, err := tempDir("tm-test-mongo-")
		if err != nil {
			mongoErr = err
			return
		}
		var m *devstack.Mongo
		err = onFreePort(func(port int) (err error) {
			m, err = devstack.StartMongo(context.Background(), dir, port)
			return err
		})
		if err != nil {
			mongoErr = err
			return
		}
		register(m.Stop)
		mongoURI = m.URI
	})
	if mongoErr != nil {
		t.Fatalf("mongodb for tests: %v", mongoErr)
	}
	return mongoURI
}

// Mongo returns a database of its own on the shared FerretDB, dropped at the end.
func Mongo(t testing.TB) *mongo.Database {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(MongoURI(t)).SetTimeout(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	db := c.Database(strings.ReplaceAll(Name(t, "audit"), "-", "_"))
	t.Cleanup(func() {
		_ = db.Drop(context.Background())
		_ = c.Disconnect(context.Background())
	})
	return db
}

// onFreePort runs start on a free port, trying again on another one when
// the port was taken between choosing and binding it (parallel tests).
func onFreePort(start func(port int) error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var port int
		if port, err = devstack.FreePort(); err != nil {
			return err
		}
		if err = start(port); err == nil || !strings.Contains(err.Error(), "in use") {
			return err
		}
	}
	return err
}
