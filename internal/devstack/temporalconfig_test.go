package devstack

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite the renderings under deploy/temporal/")

// deployed are the renderings temporal-compose.yml mounts, by template.
var deployed = map[string]string{
	"config":             "trafficmanager.yaml",
	"dynamicconfig":      "dynamicconfig.yaml",
	"setup-schema.sh":    "setup-schema.sh",
	"setup-namespace.sh": "setup-namespace.sh",
}

// The containers run what `dev --temporal cluster` runs: the files under
// deploy/temporal/ are the template rendered for compose (run with -update
// after changing the template), and the compose and dev renderings differ
// only in addresses, ports, credentials and paths.
func TestComposeTemporalConfigIsTheDevConfig(t *testing.T) {
	compose := ComposeTemporalConfig()
	for name, file := range deployed {
		want, err := compose.Render(name)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("..", "..", "deploy", "temporal", file)
		if *update {
			mode := os.FileMode(0o644)
			if strings.HasSuffix(file, ".sh") {
				mode = 0o755
			}
			if err := os.WriteFile(path, want, mode); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s is not the %q template rendered for compose: run `go test ./internal/devstack -run TestComposeTemporalConfigIsTheDevConfig -update`", path, name)
		}
	}

	dev, err := devClusterConfig(TemporalClusterOptions{DatabaseURL: "postgres://postgres:secret@127.0.0.1:25432/postgres?sslmode=disable"}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := pickPorts(&dev.Ports, 27233, 28233); err != nil {
		t.Fatal(err)
	}
	if dev.HistoryShards != DefaultHistoryShards || compose.HistoryShards != DefaultHistoryShards {
		t.Fatalf("shards: dev %d, compose %d, want %d", dev.HistoryShards, compose.HistoryShards, DefaultHistoryShards)
	}
	for _, name := range []string{"config", "dynamicconfig"} {
		d, c := parseRendered(t, dev, name), parseRendered(t, compose, name)
		if diff := differences(d, c, name); len(diff) > 0 {
			t.Errorf("dev and compose differ beyond addresses (dev != compose):\n%s", strings.Join(diff, "\n"))
		}
	}

	// And compose mounts those files where its commands expect them.
	raw, err := os.ReadFile("../../temporal-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Image      string   `yaml:"image"`
			Entrypoint []string `yaml:"entrypoint"`
			Volumes    []string `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	mount := "./deploy/temporal:/etc/temporal/trafficmanager:ro"
	for svc, cmd := range map[string]string{
		"temporal":        "temporal-server --root /etc/temporal --config trafficmanager --env trafficmanager --allow-no-auth start",
		"temporal-schema": "sh /etc/temporal/trafficmanager/setup-schema.sh",
		"temporal-setup":  "sh /etc/temporal/trafficmanager/setup-namespace.sh",
	} {
		s := doc.Services[svc]
		if got := strings.Join(s.Entrypoint, " "); got != cmd {
			t.Errorf("%s runs %q, want %q", svc, got, cmd)
		}
		if !slices.Contains(s.Volumes, mount) {
			t.Errorf("%s does not mount %s", svc, mount)
		}
	}
	if img := doc.Services["temporal"].Image; img != "temporalio/server:"+TemporalServerVersion {
		t.Errorf("temporal image %s, want the server version the config is for (%s)", img, TemporalServerVersion)
	}
	if img := doc.Services["temporal-ui"].Image; img != "temporalio/ui:"+TemporalUIVersion {
		t.Errorf("temporal-ui image %s, want the UI dev runs (%s)", img, TemporalUIVersion)
	}
}

// addressKeys are the settings that differ between hosts: where things
// listen and connect, credentials, file paths.
var addressKeys = map[string]bool{
	"connectAddr": true, "user": true, "password": true,
	"broadcastAddress": true, "listenAddress": true, "bindOnIP": true,
	"grpcPort": true, "membershipPort": true, "httpPort": true,
	"rpcAddress": true, "httpAddress": true, "filepath": true,
}

// differences lists the paths where a and b (parsed YAML) differ.
func differences(a, b any, path string) []string {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		var out []string
		for k := range am {
			out = append(out, differences(am[k], bm[k], path+"."+k)...)
		}
		for k := range bm {
			if _, ok := am[k]; !ok {
				out = append(out, fmt.Sprintf("%s.%s: missing != %v", path, k, bm[k]))
			}
		}
		slices.Sort(out)
		return out
	}
	if !reflect.DeepEqual(a, b) {
		return []string{fmt.Sprintf("%s: %v != %v", path, a, b)}
	}
	return nil
}

func parseRendered(t *testing.T, c TemporalClusterConfig, name string) any {
	t.Helper()
	b, err := c.Render(name)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s rendered for %s is not YAML: %v\n%s", name, c.Target, err, b)
	}
	var blank func(any)
	blank = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if addressKeys[k] {
					v[k] = "<address>"
				} else {
					blank(e)
				}
			}
		case []any:
			for _, e := range v {
				blank(e)
			}
		}
	}
	blank(v)
	return v
}

func TestTemporalClusterConfig(t *testing.T) {
	c := ComposeTemporalConfig()
	c.HistoryShards = 0
	if _, err := c.Render("config"); err == nil || !strings.Contains(err.Error(), "shards") {
		t.Errorf("0 shards rendered: %v", err)
	}

	var db TemporalDB
	if err := dbFromURL(&db, "postgres://u:p%40ss@db.example:6543/app?sslmode=disable"); err != nil {
		t.Fatal(err)
	}
	if db.Host != "db.example" || db.Port != 6543 || db.User != "u" || db.Password != "p@ss" {
		t.Errorf("from URL: %+v", db)
	}
	if err := dbFromURL(&db, "host=/var/run/postgresql user=postgres"); err == nil || !strings.Contains(err.Error(), "TCP") {
		t.Errorf("a Unix socket must be refused: %v", err)
	}

	// The dev server's tuning is the cluster's too.
	dc := map[string]string{}
	for _, kv := range c.DynamicConfig {
		dc[kv.Key] = kv.Value
	}
	for _, kv := range TemporalDynamicConfig {
		k, v, _ := strings.Cut(kv, "=")
		if dc[k] != v {
			t.Errorf("dynamic config %s = %q, the dev server runs %q", k, dc[k], v)
		}
	}
	if got := c.ReadinessQuery(); !strings.Contains(got, "TmTenant = 'readiness-probe' AND") {
		t.Errorf("readiness query %q", got)
	}
}

func TestTemporalClusterMissingBinaries(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("PATH", empty)
	t.Setenv("HOME", empty)
	t.Setenv("GOPATH", empty)
	_, _, _, err := TemporalClusterBinaries(true)
	if err == nil || !strings.Contains(err.Error(), "temporal-server, temporal-sql-tool, temporal-ui-server not found: run `go tool task setup`") {
		t.Fatalf("got %v", err)
	}
	_, err = StartTemporalCluster(t.Context(), TemporalClusterOptions{DataDir: empty, Port: freePort(t)})
	if err == nil || !strings.Contains(err.Error(), "--temporal devserver") {
		t.Fatalf("start without binaries: %v", err)
	}
}
