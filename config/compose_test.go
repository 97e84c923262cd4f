package config_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/trafficmanager/trafficmanager/config"
)

// The build machines cannot run containers, so temporal-compose.yml is
// checked as far as a file can be: it parses, it has every service the
// platform needs with health-gated dependencies, and it only sets TM_*
// variables the config actually reads.
func TestComposeFileDescribesTheWholePlatform(t *testing.T) {
	raw, err := os.ReadFile("../temporal-compose.yml")
	require.NoError(t, err)
	var doc struct {
		Services map[string]struct {
			Image       string                    `yaml:"image"`
			Build       any                       `yaml:"build"`
			Command     []string                  `yaml:"command"`
			Environment map[string]any            `yaml:"environment"`
			DependsOn   map[string]map[string]any `yaml:"depends_on"`
			Healthcheck map[string]any            `yaml:"healthcheck"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &doc))

	images := map[string]string{"postgres": "postgres:16", "redis": "redis:7", "mongo": "mongo:7", "kafka": "apache/kafka"}
	for svc, image := range images {
		require.Contains(t, doc.Services, svc)
		require.True(t, strings.HasPrefix(doc.Services[svc].Image, image), svc)
		require.NotEmpty(t, doc.Services[svc].Healthcheck, "%s has a health check", svc)
	}
	require.Contains(t, doc.Services, "temporal")
	require.Contains(t, doc.Services, "temporal-ui")
	require.Contains(t, doc.Services, "temporal-postgres", "Temporal keeps its own schema apart from ours")

	known := map[string]bool{}
	_, _ = config.Load(func(name string) string { known[name] = true; return "" })
	for _, svc := range []string{"api", "resolver", "worker"} {
		s, ok := doc.Services[svc]
		require.True(t, ok, svc)
		require.NotNil(t, s.Build, "%s is built from the Dockerfile", svc)
		require.Equal(t, []string{svc}, s.Command)
		for name := range s.Environment {
			if strings.HasPrefix(name, "TM_") {
				require.True(t, known[name], "%s sets %s, which the config does not read", svc, name)
			}
		}
		for _, need := range []string{"TM_DATABASE_URL", "TM_TEMPORAL_ADDRESS"} {
			require.Contains(t, s.Environment, need, svc)
		}
		for dep, cond := range s.DependsOn {
			require.Contains(t, doc.Services, dep)
			require.NotEmpty(t, cond["condition"], "%s waits on %s with a condition", svc, dep)
		}
	}
	for _, need := range []string{"TM_KAFKA_BROKERS", "TM_MONGO_URI", "TM_REDIS_URL"} {
		require.Contains(t, doc.Services["worker"].Environment, need)
	}
	_, err = os.Stat("../Dockerfile")
	require.NoError(t, err)
}

func TestEveryBadVariableIsReportedOnItsOwnLine(t *testing.T) {
	env := map[string]string{
		"TM_CACHE_TTL":                 "soon",
		"TM_LOG_LEVEL":                 "loud",
		"TM_DATABASE_URL":              "mysql://x",
		"TM_TENANT_WRITE_RPS":          "-1",
		"TM_AUTH":                      "maybe",
		"TM_WRITE_ACK_TIMEOUT":         "5s",
		"TM_TEMPORAL_GRPC_COMPRESSION": "zstd",
	}
	_, err := config.Load(func(n string) string { return env[n] })
	require.Error(t, err)
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, 6, err.Error())
	for _, name := range []string{"TM_CACHE_TTL", "TM_LOG_LEVEL", "TM_DATABASE_URL", "TM_TENANT_WRITE_RPS", "TM_AUTH", "TM_TEMPORAL_GRPC_COMPRESSION"} {
		require.Contains(t, err.Error(), name)
	}

	cfg, err := config.Load(func(string) string { return "" })
	require.NoError(t, err)
	require.Equal(t, "route-events", cfg.KafkaTopic)
	require.Equal(t, "route-mutations", cfg.TemporalTaskQueue)
	require.EqualValues(t, 60e9, cfg.CacheTTL)
	require.EqualValues(t, 10e9, cfg.NegativeCacheTTL)
	require.EqualValues(t, 5e9, cfg.WriteAckTimeout)
	require.True(t, cfg.Auth)
	require.False(t, cfg.Pprof, "TM_PPROF is opt-in")
	require.Equal(t, "gzip", cfg.TemporalCompression, "the SDK's default unless asked")
	require.EqualError(t, cfg.Require("TM_DATABASE_URL", "TM_TEMPORAL_ADDRESS"), "TM_DATABASE_URL is required\nTM_TEMPORAL_ADDRESS is required")
	require.Equal(t, "postgres://u:xxxxx@h/db", config.Config{DatabaseURL: "postgres://u:secret@h/db"}.Redacted().DatabaseURL)
}

func TestHTTPTimeoutsDefaultAroundTheWriteAckTimeout(t *testing.T) {
	cfg, err := config.Load(func(string) string { return "" })
	require.NoError(t, err)
	require.Equal(t, 30*time.Second, cfg.HTTPReadTimeout)
	require.Equal(t, 60*time.Second, cfg.HTTPWriteTimeout, "at least a minute")
	require.Equal(t, 120*time.Second, cfg.HTTPIdleTimeout)

	cfg, err = config.Load(func(n string) string { return map[string]string{"TM_WRITE_ACK_TIMEOUT": "45s"}[n] })
	require.NoError(t, err)
	require.Equal(t, 75*time.Second, cfg.HTTPWriteTimeout, "a write's wait for its commit plus a margin")

	_, err = config.Load(func(n string) string {
		return map[string]string{"TM_WRITE_ACK_TIMEOUT": "10s", "TM_HTTP_WRITE_TIMEOUT": "10s"}[n]
	})
	require.ErrorContains(t, err, "TM_HTTP_WRITE_TIMEOUT must be longer than TM_WRITE_ACK_TIMEOUT")
}
