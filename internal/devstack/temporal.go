package devstack

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
)

// SearchAttributes are registered on the dev server at start.
var SearchAttributes = []string{"TmTenant", "TmService", "TmEnv", "TmVersion", "TmAction"}

// TemporalDynamicConfig tunes the dev server for latency (measured in
// DESIGN.md): the transfer queue poll rate and single task-queue partitions.
var TemporalDynamicConfig = []string{
	"history.transferProcessorMaxPollRPS=1000",
	"matching.numTaskqueueReadPartitions=1",
	"matching.numTaskqueueWritePartitions=1",
}

// TemporalSQLitePragmas keep the dev server durable across process crashes
// while cutting commit latency (WAL, synchronous=NORMAL).
var TemporalSQLitePragmas = []string{"journal_mode=WAL", "synchronous=NORMAL"}

// Temporal is a Temporal dev server (`temporal server start-dev`).
type Temporal struct {
	Address   string // 127.0.0.1:PORT
	UIURL     string // empty when headless
	Namespace string
	c         *child
}

// TemporalBinary finds the temporal CLI on PATH or in $(go env GOPATH)/bin.
func TemporalBinary() (string, error) {
	dirs := []string{}
	if gp := os.Getenv("GOPATH"); gp != "" {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil && len(out) > 1 {
		dirs = append(dirs, filepath.Join(string(out[:len(out)-1]), "bin"))
	}
	p, err := lookBin("temporal", dirs...)
	if err != nil {
		return "", fmt.Errorf("temporal CLI not found: run `go tool task setup` (go install github.com/temporalio/cli/cmd/temporal@v1.5.1) or set TM_TEMPORAL_ADDRESS")
	}
	return p, nil
}

// StartTemporal starts a dev server on 127.0.0.1:port with its SQLite file
// in dataDir, the UI on uiPort (0: headless) and the Tm* search attributes.
func StartTemporal(ctx context.Context, dataDir string, port, uiPort int, log io.Writer) (*Temporal, error) {
	if !portFree(port) {
		return nil, fmt.Errorf("port %d is taken (another Temporal server?): stop it or set TM_TEMPORAL_ADDRESS", port)
	}
	if uiPort != 0 && !portFree(uiPort) {
		return nil, fmt.Errorf("Temporal UI port %d is taken: stop what listens there or pass --ui-port", uiPort)
	}
	bin, err := TemporalBinary()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	httpPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	metricsPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	args := []string{"server", "start-dev",
		"--ip", "127.0.0.1", "--port", strconv.Itoa(port),
		"--http-port", strconv.Itoa(httpPort), "--metrics-port", strconv.Itoa(metricsPort),
		"--db-filename", filepath.Join(dataDir, "temporal.db"),
		"--namespace", "default", "--log-level", "warn",
	}
	if uiPort == 0 {
		args = append(args, "--headless")
	} else {
		args = append(args, "--ui-ip", "127.0.0.1", "--ui-port", strconv.Itoa(uiPort))
	}
	for _, sa := range SearchAttributes {
		args = append(args, "--search-attribute", sa+"=Keyword")
	}
	for _, dc := range TemporalDynamicConfig {
		args = append(args, "--dynamic-config-value", dc)
	}
	for _, p := range TemporalSQLitePragmas {
		args = append(args, "--sqlite-pragma", p)
	}
	c, err := startChild("temporal", log, nil, bin, args...)
	if err != nil {
		return nil, err
	}
	t := &Temporal{Address: fmt.Sprintf("127.0.0.1:%d", port), Namespace: "default", c: c}
	if uiPort != 0 {
		t.UIURL = fmt.Sprintf("http://127.0.0.1:%d", uiPort)
	}
	err = waitFor(ctx, c, 60*time.Second, func(ctx context.Context) error {
		tc, err := client.DialContext(ctx, client.Options{HostPort: t.Address, Namespace: "default", Logger: nopLogger{}})
		if err != nil {
			return err
		}
		defer tc.Close()
		res, err := tc.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "default"})
		if err != nil {
			return err
		}
		for _, sa := range SearchAttributes {
			if _, ok := res.GetCustomAttributes()[sa]; !ok {
				return fmt.Errorf("search attribute %s not registered yet", sa)
			}
		}
		return nil
	})
	if err != nil {
		_ = t.Stop()
		return nil, err
	}
	return t, nil
}

// Stop stops the server and its UI.
func (t *Temporal) Stop() error { return t.c.stop(syscall.SIGTERM, 10*time.Second) }

type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}
