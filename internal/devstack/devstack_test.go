package devstack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

func freePort(t *testing.T) int {
	t.Helper()
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// groupGone waits until no process of group pgid is left.
func groupGone(t *testing.T, pgid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := syscall.Kill(-pgid, 0)
		if errors.Is(err, syscall.ESRCH) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process group %d still has processes after Stop (kill 0: %v)", pgid, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// occupy listens on a free port until the test ends and returns the port.
func occupy(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func TestFreePort(t *testing.T) {
	t.Parallel()
	p := freePort(t)
	if p <= 0 || p > 65535 {
		t.Fatalf("port %d", p)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		t.Fatalf("FreePort returned a port that cannot be bound: %v", err)
	}
	ln.Close()
}

func TestPortInUseNamesVariable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	port := occupy(t)
	dir := t.TempDir()
	cases := map[string]func() error{
		"TM_DATABASE_URL": func() error { _, err := StartPostgres(ctx, dir+"/pg", port, nil); return err },
		"TM_REDIS_URL":    func() error { _, err := StartRedis(ctx, dir+"/redis", port, nil); return err },
		"TM_KAFKA_BROKERS": func() error {
			_, err := StartKafka(port, "t", 1)
			return err
		},
		"TM_MONGO_URI":        func() error { _, err := StartMongo(ctx, dir+"/mongo", port); return err },
		"TM_TEMPORAL_ADDRESS": func() error { _, err := StartTemporal(ctx, dir+"/temporal", port, 0, nil); return err },
	}
	for env, start := range cases {
		err := start()
		if err == nil || !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), env) {
			t.Errorf("%s: want a port-in-use error naming it, got %v", env, err)
		}
	}
}

func TestPostgresRestartKeepsData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir() + "/pg"
	pg, err := StartPostgres(ctx, dir, freePort(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	var fsync string
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil || fsync != "on" {
		t.Fatalf("fsync = %q, %v", fsync, err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('hello')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	pgid := pg.c.pid()
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	groupGone(t, pgid)
	if err := pg.Stop(); err != nil { // a second Stop is harmless
		t.Fatal(err)
	}

	// Restart on the same data directory (another port): no initdb, data kept.
	pg2, err := StartPostgres(ctx, dir, freePort(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pg2.Stop()
	conn, err = pgx.Connect(ctx, pg2.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "hello" {
		t.Fatalf("after restart: %q, %v", v, err)
	}
}

func TestRedisRestartKeepsData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	r, err := StartRedis(ctx, dir, freePort(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	if err := c.Set(ctx, "kept", "v1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	pgid := r.c.pid()
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	groupGone(t, pgid)

	r2, err := StartRedis(ctx, dir, freePort(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Stop()
	opt, _ = redis.ParseURL(r2.URL)
	c = redis.NewClient(opt)
	defer c.Close()
	if v, err := c.Get(ctx, "kept").Result(); err != nil || v != "v1" {
		t.Fatalf("after restart: %q, %v", v, err)
	}
}

func TestKafka(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k, err := StartKafka(0, "route-events", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	if len(k.Brokers) != 1 || !strings.HasPrefix(k.Brokers[0], "127.0.0.1:") {
		t.Fatalf("brokers %v", k.Brokers)
	}
	conn, err := kafka.DialContext(ctx, "tcp", k.Brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions("route-events")
	conn.Close()
	if err != nil || len(parts) != 3 {
		t.Fatalf("partitions %d, %v", len(parts), err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(k.Brokers...), Topic: "route-events", RequiredAcks: kafka.RequireAll,
		Balancer: &kafka.Hash{}, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: k.Brokers, Topic: "route-events", GroupID: "devstack-test",
		StartOffset: kafka.FirstOffset, MaxWait: 10 * time.Millisecond})
	defer rd.Close()
	m, err := rd.ReadMessage(ctx)
	if err != nil || string(m.Value) != "v" {
		t.Fatalf("read %q, %v", m.Value, err)
	}

	// A fixed port works too.
	port := freePort(t)
	k2, err := StartKafka(port, "other", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer k2.Stop()
	if want := fmt.Sprintf("127.0.0.1:%d", port); k2.Brokers[0] != want {
		t.Fatalf("brokers %v, want %s", k2.Brokers, want)
	}
}

func TestMongoRestartKeepsData(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	m, err := StartMongo(ctx, dir, freePort(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := mongo.Connect(options.Client().ApplyURI(m.URI))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Database("kept").Collection("docs").InsertOne(ctx, bson.M{"_id": "a", "v": 1}); err != nil {
		t.Fatal(err)
	}
	_ = c.Disconnect(ctx)
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}

	m2, err := StartMongo(ctx, dir, freePort(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Stop()
	c, err = mongo.Connect(options.Client().ApplyURI(m2.URI))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	var doc bson.M
	if err := c.Database("kept").Collection("docs").FindOne(ctx, bson.M{"_id": "a"}).Decode(&doc); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}

func TestTemporalRestartKeepsWorkflows(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	tp, err := StartTemporal(ctx, dir, freePort(t), freePort(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tp.Namespace != "default" || tp.UIURL == "" {
		t.Fatalf("temporal %+v", tp)
	}
	res, err := http.Get(tp.UIURL)
	if err != nil {
		t.Fatalf("UI: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("UI status %d", res.StatusCode)
	}
	tc, err := client.DialContext(ctx, client.Options{HostPort: tp.Address, Logger: nopLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "kept", TaskQueue: "nobody-polls"}, "Nothing")
	tc.Close()
	if err != nil {
		t.Fatal(err)
	}
	pgid := tp.c.pid()
	if err := tp.Stop(); err != nil {
		t.Fatal(err)
	}
	groupGone(t, pgid)

	tp2, err := StartTemporal(ctx, dir, freePort(t), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tp2.Stop()
	if tp2.UIURL != "" {
		t.Fatalf("headless server has UIURL %q", tp2.UIURL)
	}
	tc, err = client.DialContext(ctx, client.Options{HostPort: tp2.Address, Logger: nopLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	desc, err := tc.DescribeWorkflowExecution(ctx, "kept", run.GetRunID())
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if st := desc.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("status %v", st)
	}
}

func TestTemporalMissingBinary(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("PATH", empty)
	t.Setenv("HOME", empty)
	t.Setenv("GOPATH", empty)
	_, err := StartTemporal(context.Background(), empty, freePort(t), 0, nil)
	if err == nil || !strings.Contains(err.Error(), "temporal CLI not found: run `go tool task setup`") {
		t.Fatalf("got %v", err)
	}
}

// TestChildDiesWithParent kills (SIGKILL) a process that started
// redis-server and checks that the server does not outlive it.
func TestChildDiesWithParent(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperStartRedis$")
	cmd.Env = append(os.Environ(), "DEVSTACK_HELPER_DIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var url string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "URL "); ok {
			url = line
			break
		}
	}
	if url == "" {
		t.Fatal("helper printed no URL")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	opt, _ := redis.ParseURL(url)
	answers := func() bool {
		c, err := net.DialTimeout("tcp", opt.Addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	deadline := time.Now().Add(10 * time.Second)
	for answers() {
		if time.Now().After(deadline) {
			t.Fatal("redis-server still answers after its parent was killed")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestHelperStartRedis(t *testing.T) {
	dir := os.Getenv("DEVSTACK_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process for TestChildDiesWithParent")
	}
	r, err := StartRedis(context.Background(), dir, freePort(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("URL %s\n", r.URL)
	time.Sleep(time.Minute)
}
