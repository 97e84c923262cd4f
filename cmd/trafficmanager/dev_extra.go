package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/trafficmanager/trafficmanager/config"
)

// newDevLogger writes the processes' logs to the dev log file, keeping the
// terminal for progress lines; warnings and errors also go to stderr.
func newDevLogger(cfg config.Config, file *os.File) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	// dev.log keeps info and above (debug too with TM_LOG_LEVEL=debug):
	// a debug line per route event was a few percent of the CPU of a bulk
	// load, for a file nobody reads at that level.
	fileLvl := min(lvl, zapcore.InfoLevel)
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	core := zapcore.NewTee(
		zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(file), fileLvl),
		zapcore.NewCore(enc, zapcore.Lock(os.Stderr), lvl),
	)
	return zap.New(core), nil
}

// demoRoutes are loaded by `dev --seed-demo` through the api, so they come
// with workflows, events and audit documents like any other change.
var demoRoutes = []map[string]any{
	{"tenant": "team-a", "service": "payments", "env": "prod", "version": "v1", "url": "https://payments-v1.team-a.example", "changed_by": "demo"},
	{"tenant": "team-a", "service": "payments", "env": "prod", "version": "v2", "url": "https://payments-v2.team-a.example", "changed_by": "demo"},
	{"tenant": "team-a", "service": "payments", "env": "staging", "version": "v2", "url": "https://payments-v2.staging.team-a.example", "changed_by": "demo"},
	{"tenant": "team-a", "service": "checkout", "env": "prod", "version": "v1", "url": "https://checkout.team-a.example", "changed_by": "demo"},
	{"tenant": "team-b", "service": "search", "env": "prod", "version": "2024.1", "url": "https://search.team-b.example", "changed_by": "demo"},
	{"tenant": "team-b", "service": "search", "env": "prod", "version": "2024.2", "url": "https://search-next.team-b.example", "changed_by": "demo", "active": false},
}

// seedDemoRoutes creates the demo routes that do not exist yet: a route
// already there (from an earlier --seed-demo, or the README's "Try it" at
// another URL) is left as it is and counted as skipped, so the flag can be
// given on every start. It goes on past a route it cannot create and
// reports them all at the end.
func seedDemoRoutes(ctx context.Context, cfg config.Config, out io.Writer) error {
	base := "http://" + cfg.APIAddr + "/api/v1/routes"
	do := func(method, url string, body []byte, key string) (int, error) {
		var r io.Reader
		if body != nil {
			r = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, url, r)
		if err != nil {
			return 0, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		if cfg.BootstrapAdminToken != "" {
			req.Header.Set("Authorization", "Bearer "+cfg.BootstrapAdminToken)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode, nil
	}
	var created, skipped int
	var errs []error
	for _, r := range demoRoutes {
		name := fmt.Sprintf("%s/%s/%s/%s", r["tenant"], r["service"], r["env"], r["version"])
		status, err := do("GET", base+"/"+name, nil, "")
		if err != nil {
			return err // the api is gone: nothing else will work either
		}
		if status == http.StatusOK {
			skipped++
			continue
		}
		b, _ := json.Marshal(r)
		status, err = do("POST", base, b, "demo-"+strings.ReplaceAll(name, "/", "-"))
		switch {
		case err != nil:
			return err
		case status == http.StatusConflict: // created meanwhile
			skipped++
		case status >= 300:
			errs = append(errs, fmt.Errorf("demo route %s: %d %s", name, status, http.StatusText(status)))
		default:
			created++
		}
	}
	fmt.Fprintf(out, "seed-demo: %d demo routes for team-a and team-b created, %d already there (left as they are)\n", created, skipped)
	return errors.Join(errs...)
}
