// Package devstack starts the platform's dependencies on loopback — a
// private PostgreSQL cluster, redis-server, an embedded Kafka-protocol broker
// (kfake), an embedded MongoDB-wire store (FerretDB on SQLite) and Temporal,
// either the dev server or the production server on PostgreSQL with its UI
// (StartTemporalCluster) — for `trafficmanager dev` and for tests. It is the
// one way the project starts them.
//
// Every child process runs in its own process group (Stop signals the whole
// group, so nothing it spawned is left behind) and gets SIGKILL when the
// process that started it dies (Pdeathsig), so no orphan outlives a killed
// parent.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on now.
//
// Ports come from 20000–32767, below Linux's ephemeral range (32768+): a
// port chosen here and bound a moment later cannot meanwhile be handed to
// some process's outgoing connection or to a server asking for port 0 (the
// Temporal dev server does for its internal services).
func FreePort() (int, error) {
	for attempt := 0; attempt < 200; attempt++ {
		port := 20000 + rand.IntN(12768)
		if portFree(port) {
			return port, nil
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// portFree reports whether 127.0.0.1:port can be bound.
func portFree(port int) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// checkPort returns a one-sentence error when port is outside 1..65535 or
// taken; what names the dependency and envVar the variable that points the
// platform at an existing one instead.
func checkPort(port int, what, envVar string) error {
	if port <= 0 || port > 65535 {
		return fmt.Errorf("%s: invalid port %d (want 1-65535; devstack.FreePort picks a free one)", what, port)
	}
	if !portFree(port) {
		return fmt.Errorf("%s: port 127.0.0.1:%d is already in use: stop what listens there, pick another port, or set %s to use a running server", what, port, envVar)
	}
	return nil
}

// child is a dependency running as a child process in its own process group.
type child struct {
	name string
	cmd  *exec.Cmd
	tail *tailBuffer
	done chan struct{}
	err  error
}

// tailBuffer keeps the last bytes written to it, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 2048

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > tailMax {
		b.buf = append([]byte(nil), b.buf[len(b.buf)-tailMax:]...)
	}
	return len(p), nil
}

// lastLines returns up to n of the last non-empty output lines, joined by " | ".
func (b *tailBuffer) lastLines(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var lines []string
	for _, l := range strings.Split(string(b.buf), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// describeExit explains why the child ended, with its last output lines.
func (c *child) describeExit() string {
	msg := fmt.Sprintf("%s exited (%v)", c.name, c.err)
	if out := c.tail.lastLines(3); out != "" {
		msg += ": " + out
	}
	return msg
}

// startChild starts bin with args; its output goes to log (nil: discarded).
// The process leads its own group (so stop reaches its children), gets
// SIGKILL when this process dies, and runs as cred when cred is not nil.
func startChild(name string, log io.Writer, cred *syscall.Credential, bin string, args ...string) (*child, error) {
	return startChildEnv(name, log, cred, nil, bin, args...)
}

// startChildEnv is startChild with env (KEY=VALUE) added to this process's
// environment.
func startChildEnv(name string, log io.Writer, cred *syscall.Credential, env []string, bin string, args ...string) (*child, error) {
	if log == nil {
		log = io.Discard
	}
	tail := &tailBuffer{}
	out := io.MultiWriter(log, tail)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	// Bounds Wait if a grandchild left the group still holding the pipe.
	cmd.WaitDelay = 5 * time.Second
	// Go applies Credential before Pdeathsig in the forked child, so the
	// death signal survives the user switch.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	c := &child{name: name, cmd: cmd, tail: tail, done: make(chan struct{})}
	go func() { c.err = cmd.Wait(); close(c.done) }()
	return c, nil
}

// run runs a short-lived command (like initdb) to completion.
func run(ctx context.Context, name string, log io.Writer, cred *syscall.Credential, bin string, args ...string) error {
	return runEnv(ctx, name, log, cred, nil, bin, args...)
}

// runEnv is run with env added to the environment (see startChildEnv).
func runEnv(ctx context.Context, name string, log io.Writer, cred *syscall.Credential, env []string, bin string, args ...string) error {
	c, err := startChildEnv(name, log, cred, env, bin, args...)
	if err != nil {
		return err
	}
	select {
	case <-c.done:
		if c.err != nil {
			return errors.New(c.describeExit())
		}
		return nil
	case <-ctx.Done():
		c.stop(syscall.SIGKILL, false, 0)
		return ctx.Err()
	}
}

// exited reports whether the process has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// pid returns the process id (and process group id) of the child.
func (c *child) pid() int { return c.cmd.Process.Pid }

// stop sends sig to the leader (leaderOnly) or to the whole group, waits
// up to grace for the leader to exit, then SIGKILLs whatever is left of the
// group. It is safe to call more than once.
func (c *child) stop(sig syscall.Signal, leaderOnly bool, grace time.Duration) {
	if c == nil {
		return
	}
	pgid := c.pid()
	if !c.exited() {
		if leaderOnly {
			_ = syscall.Kill(pgid, sig)
		} else {
			_ = syscall.Kill(-pgid, sig)
		}
		select {
		case <-c.done:
		case <-time.After(grace):
		}
	}
	// Whatever survived the leader (or the grace period) goes now.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-c.done
}

// waitFor polls ready until it succeeds, the child exits or timeout passes.
func waitFor(ctx context.Context, c *child, timeout time.Duration, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		last = ready(pctx)
		pcancel()
		if last == nil {
			return nil
		}
		if c != nil && c.exited() {
			return fmt.Errorf("%s during start-up", c.describeExit())
		}
		select {
		case <-ctx.Done():
			name := "dependency"
			if c != nil {
				name = c.name
			}
			return fmt.Errorf("%s not ready within %s: %w", name, timeout, errors.Join(last, ctx.Err()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// lookBin finds a binary on PATH or in the given directories.
func lookBin(name string, dirs ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}
