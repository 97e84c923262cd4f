package devstack

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
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
// in dataDir, so data survives a restart, and returns once it answers PING.
func StartRedis(ctx context.Context, dataDir string, port int, log io.Writer) (*Redis, error) {
	if err := checkPort(port, "Redis", "TM_REDIS_URL"); err != nil {
		return nil, err
	}
	bin, err := lookBin("redis-server", "/usr/bin", "/usr/local/bin", "/usr/sbin")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found: run `go tool task setup` (apt-get install redis-server) or set TM_REDIS_URL to use a running server")
	}
	if dataDir, err = filepath.Abs(dataDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create Redis data directory: %w", err)
	}
	c, err := startChild("redis-server", log, nil, bin,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dataDir,
		"--appendonly", "yes", "--save", "", "--daemonize", "no",
		"--protected-mode", "yes")
	if err != nil {
		return nil, err
	}
	r := &Redis{URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port), c: c}
	client := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), MaxRetries: -1})
	defer client.Close()
	ready := func(ctx context.Context) error {
		// A plain dial first: go-redis logs every failed pool dial.
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return err
		}
		conn.Close()
		return client.Ping(ctx).Err()
	}
	if err := waitFor(ctx, c, 15*time.Second, ready); err != nil {
		_ = r.Stop()
		return nil, fmt.Errorf("Redis in %s: %w", dataDir, err)
	}
	return r, nil
}

// Pause stops the server with SIGSTOP: connections are still accepted by
// the kernel, nothing is answered (a hung dependency, for fault tests).
func (r *Redis) Pause() error { return r.c.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (r *Redis) Resume() error { return r.c.cmd.Process.Signal(syscall.SIGCONT) }

// Stop shuts redis down (SIGTERM: it flushes the append-only file), killing
// it after 10 s.
func (r *Redis) Stop() error {
	r.c.stop(syscall.SIGTERM, false, 10*time.Second)
	return nil
}
