package devstack

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a redis-server child process.
type Redis struct {
	URL string // redis://127.0.0.1:PORT/0
	c   *child
}

// StartRedis starts redis-server on 127.0.0.1:port with an append-only file
// in dataDir, so cached data survives a restart like everything else.
func StartRedis(ctx context.Context, dataDir string, port int, log io.Writer) (*Redis, error) {
	if !portFree(port) {
		return nil, fmt.Errorf("port %d is taken: stop what listens there or set TM_REDIS_URL", port)
	}
	bin, err := lookBin("redis-server", "/usr/bin", "/usr/local/bin")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found: run `go tool task setup` (apt-get install redis-server) or set TM_REDIS_URL")
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	c, err := startChild("redis", log, nil, bin,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dataDir,
		"--appendonly", "yes", "--save", "", "--daemonize", "no", "--protected-mode", "yes")
	if err != nil {
		return nil, err
	}
	r := &Redis{URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port), c: c}
	client := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	defer client.Close()
	if err := waitFor(ctx, c, 15*time.Second, func(ctx context.Context) error { return client.Ping(ctx).Err() }); err != nil {
		_ = r.Stop()
		return nil, err
	}
	return r, nil
}

// Stop shuts redis down.
func (r *Redis) Stop() error { return r.c.stop(syscall.SIGTERM, 10*time.Second) }
