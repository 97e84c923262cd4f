package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/trafficmanager/trafficmanager/internal/devstack"
)

// platform is a `trafficmanager dev` child on free ports.
type platform struct {
	cmd                     *exec.Cmd
	dir                     string
	api, resolver, temporal string
	startup                 time.Duration
	done                    chan struct{}
}

// freeAddr picks a free loopback address outside the ephemeral port range
// (see devstack.FreePort).
func freeAddr() string {
	port, err := devstack.FreePort()
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

func numCPU() int { return runtime.NumCPU() }

// resolverURLs are the base URLs of every resolver instance dev runs
// (dev.env's TM_RESOLVER_URLS with --resolvers N), else the one resolver.
func (p *platform) resolverURLs() []string {
	b, err := os.ReadFile(filepath.Join(p.dir, "dev.env"))
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "export TM_RESOLVER_URLS="); ok && v != "" {
				return strings.Split(v, ",")
			}
		}
	}
	return []string{"http://" + p.resolver}
}

// devArgs are extra flags of the `dev` the bench starts (-dev-args), e.g.
// "--temporal cluster --workers 2" to measure the production topology.
var devArgs []string

// startPlatform starts `trafficmanager dev` with TM_PPROF=on; env adds or
// overrides variables (a dependency's address set there is used instead of
// starting one).
func startPlatform(ctx context.Context, bin string, env ...string) (*platform, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s not found: run `go tool task build` first", bin)
	}
	dir, err := os.MkdirTemp("", "tm-bench-")
	if err != nil {
		return nil, err
	}
	p := &platform{dir: dir, api: freeAddr(), resolver: freeAddr(), done: make(chan struct{})}
	_, tport, _ := net.SplitHostPort(freeAddr())
	p.temporal = "127.0.0.1:" + tport
	args := append([]string{"dev", "--temporal-port", tport, "--ui-port", "0"}, devArgs...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(),
		"TM_DEV_DATA_DIR="+dir, "TM_API_ADDR="+p.api, "TM_RESOLVER_ADDR="+p.resolver, "TM_WORKER_ADDR="+freeAddr(),
		"TM_LOG_LEVEL=error", "TM_TENANT_WRITE_RPS=100000", "TM_TENANT_WRITE_BURST=100000", "TM_PPROF=on")
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p.cmd = cmd
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		found := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Println("  dev |", line)
			if !found && strings.Contains(line, "ready") {
				found = true
				ready <- nil
			}
		}
		if !found {
			ready <- errors.New("trafficmanager dev exited before ready")
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	select {
	case err := <-ready:
		if err != nil {
			p.stop()
			return nil, err
		}
	case <-time.After(3 * time.Minute):
		p.stop()
		return nil, errors.New("trafficmanager dev not ready within 3 minutes")
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
	p.startup = time.Since(start)
	return p, nil
}

// pid is the process id of `trafficmanager dev` (api, resolver and worker
// run in it).
func (p *platform) pid() int { return p.cmd.Process.Pid }

func (p *platform) stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	_ = os.RemoveAll(p.dir)
}

// serveBare is the baseline: a bare net/http handler with the resolver's
// path shape returning a constant body.
func serveBare(addr string) {
	body := []byte(`{"url":"https://payments.example/v2"}`)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/resolve/{tenant}/{service}/{env}/{version}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	srv := &http.Server{Addr: addr, Handler: mux}
	_ = srv.ListenAndServe()
}

// startBare runs the baseline server as its own process (this binary),
// pinned to cpus when cpus is not empty, and returns its address and pid.
func startBare(cpus string) (string, int, func(), error) {
	addr := freeAddr()
	self, err := os.Executable()
	if err != nil {
		return "", 0, nil, err
	}
	args := []string{self, "-bare-addr", addr}
	if cpus != "" {
		args = append([]string{"taskset", "-c", cpus}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, cmd.Process.Pid, stop, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return "", 0, nil, errors.New("bare server did not start")
}
