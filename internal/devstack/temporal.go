package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
)

// SearchAttributes are registered on the dev server at start (the names of
// workflows.SearchAttributeNames, which devstack does not import).
var SearchAttributes = []string{"TmTenant", "TmService", "TmEnv", "TmVersion", "TmAction", "TmStatus"}

// KeywordListAttributes are registered likewise, as KeywordList (the names
// of workflows.KeywordListAttributeNames).
var KeywordListAttributes = []string{"TmRoutes"}

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

// TemporalOptions are the server settings StartTemporalWith passes on the
// command line. The zero value is the dev server's own defaults.
type TemporalOptions struct {
	DynamicConfig []string // --dynamic-config-value KEY=VALUE
	SQLitePragmas []string // --sqlite-pragma PRAGMA=VALUE
}

// TunedTemporal is what StartTemporal (and so `trafficmanager dev` and the
// tests) runs with: TemporalDynamicConfig and TemporalSQLitePragmas.
func TunedTemporal() TemporalOptions {
	return TemporalOptions{DynamicConfig: TemporalDynamicConfig, SQLitePragmas: TemporalSQLitePragmas}
}

// Temporal is a Temporal dev server (`temporal server start-dev`).
type Temporal struct {
	Address   string // 127.0.0.1:PORT
	UIURL     string // empty when headless
	Namespace string
	DBFile    string // the SQLite file
	c         *child
}

// TemporalBinary finds the temporal CLI: on PATH, else in $(go env GOPATH)/bin
// (where `go tool task setup` installs it).
func TemporalBinary() (string, error) {
	p, err := lookBin("temporal", goBinDirs()...)
	if err != nil {
		return "", errors.New("temporal CLI not found: run `go tool task setup` (go install github.com/temporalio/cli/cmd/temporal@v1.5.1) or set TM_TEMPORAL_ADDRESS to use a running server")
	}
	return p, nil
}

// goBinDirs are where `go install` puts binaries: $GOPATH/bin for each
// GOPATH entry, ~/go/bin, and the bin of `go env GOPATH` (tools on PATH are
// found before these).
func goBinDirs() []string {
	var dirs []string
	if gp := os.Getenv("GOPATH"); gp != "" {
		for _, d := range filepath.SplitList(gp) {
			dirs = append(dirs, filepath.Join(d, "bin"))
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, d := range filepath.SplitList(strings.TrimSpace(string(out))) {
			dirs = append(dirs, filepath.Join(d, "bin"))
		}
	}
	return dirs
}

// StartTemporal starts a dev server on 127.0.0.1:port with its SQLite file
// in dataDir, the UI on uiPort (0: headless) and the Tm* search attributes,
// tuned with TunedTemporal.
func StartTemporal(ctx context.Context, dataDir string, port, uiPort int, log io.Writer) (*Temporal, error) {
	return StartTemporalWith(ctx, dataDir, port, uiPort, log, TunedTemporal())
}

// StartTemporalWith is StartTemporal with the given server settings instead
// of the tuned ones (TemporalOptions{}: the dev server's defaults, which the
// benchmarks compare against).
func StartTemporalWith(ctx context.Context, dataDir string, port, uiPort int, log io.Writer, o TemporalOptions) (*Temporal, error) {
	if err := checkPort(port, "Temporal dev server", "TM_TEMPORAL_ADDRESS"); err != nil {
		return nil, err
	}
	if uiPort != 0 {
		if err := checkPort(uiPort, "Temporal UI", "TM_TEMPORAL_ADDRESS"); err != nil {
			return nil, err
		}
	}
	bin, err := TemporalBinary()
	if err != nil {
		return nil, err
	}
	if dataDir, err = filepath.Abs(dataDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create Temporal data directory: %w", err)
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
	for _, sa := range KeywordListAttributes {
		args = append(args, "--search-attribute", sa+"=KeywordList")
	}
	for _, dc := range o.DynamicConfig {
		args = append(args, "--dynamic-config-value", dc)
	}
	for _, p := range o.SQLitePragmas {
		args = append(args, "--sqlite-pragma", p)
	}
	c, err := startChild("temporal", log, nil, bin, args...)
	if err != nil {
		return nil, err
	}
	t := &Temporal{Address: fmt.Sprintf("127.0.0.1:%d", port), Namespace: "default", DBFile: filepath.Join(dataDir, "temporal.db"), c: c}
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
		// --search-attribute registers them in a new database only: an
		// attribute added since the data dir was created is added here.
		missing := map[string]enumspb.IndexedValueType{}
		for _, sa := range SearchAttributes {
			if _, ok := res.GetCustomAttributes()[sa]; !ok {
				missing[sa] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
			}
		}
		for _, sa := range KeywordListAttributes {
			if _, ok := res.GetCustomAttributes()[sa]; !ok {
				missing[sa] = enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST
			}
		}
		if len(missing) > 0 {
			if _, err := tc.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: "default", SearchAttributes: missing}); err != nil {
				return fmt.Errorf("add search attributes %v: %w", slices.Sorted(maps.Keys(missing)), err)
			}
			return fmt.Errorf("search attributes %v not registered yet", slices.Sorted(maps.Keys(missing)))
		}
		return nil
	})
	if err != nil {
		_ = t.Stop()
		return nil, fmt.Errorf("Temporal dev server (%s): %w", bin, err)
	}
	return t, nil
}

// PID is the server's process id (the UI runs in the same process).
func (t *Temporal) PID() int { return t.c.pid() }

// Stop stops the server and its UI: SIGTERM to its process group, then SIGKILL after 10 s; nothing it
// started is left running.
func (t *Temporal) Stop() error {
	t.c.stop(syscall.SIGTERM, false, 10*time.Second)
	return nil
}

type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}
