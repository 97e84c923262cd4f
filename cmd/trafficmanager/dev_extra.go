package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"

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

func seedDemoRoutes(ctx context.Context, cfg config.Config, out io.Writer) error {
	for _, r := range demoRoutes {
		b, _ := json.Marshal(r)
		req, err := http.NewRequestWithContext(ctx, "POST", "http://"+cfg.APIAddr+"/api/v1/routes", bytes.NewReader(b))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", fmt.Sprintf("demo-%s-%s-%s-%s", r["tenant"], r["service"], r["env"], r["version"]))
		if cfg.BootstrapAdminToken != "" {
			req.Header.Set("Authorization", "Bearer "+cfg.BootstrapAdminToken)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode >= 300 {
			return fmt.Errorf("demo route %v: %s", r, res.Status)
		}
	}
	fmt.Fprintf(out, "seed-demo: %d demo routes for team-a and team-b\n", len(demoRoutes))
	return nil
}
