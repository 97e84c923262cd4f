package devstack

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// TemporalServerVersion is the Temporal server (and temporal-sql-tool) that
// `go tool task setup` installs and the cluster configuration is written for.
const TemporalServerVersion = "1.29.1"

// TemporalUIVersion is the ui-server setup installs as temporal-ui-server:
// the one the Temporal CLI v1.5.1 embeds in its dev server.
const TemporalUIVersion = "2.42.1"

// DefaultHistoryShards is the history shard count of a new cluster. A
// cluster keeps the count it was created with.
const DefaultHistoryShards = 8

//go:embed temporalcluster.yaml.tmpl
var temporalClusterTemplate string

var clusterTemplates = template.Must(template.New("temporalcluster").Funcs(template.FuncMap{
	// q quotes a string for YAML (a JSON string is a YAML double-quoted scalar).
	"q": func(s string) string { b, _ := json.Marshal(s); return string(b) },
	"hostPort": func(host string, port int) string {
		return net.JoinHostPort(host, strconv.Itoa(port))
	},
}).Parse(temporalClusterTemplate))

// TemporalClusterConfig is what the cluster templates are rendered from.
// The topology fields (shards, pool sizes, dynamic config, log level) are
// the same for every target; addresses, ports, credentials and paths are
// what differs between `dev --temporal cluster` and temporal-compose.yml.
type TemporalClusterConfig struct {
	Target        string // who the rendering is for, written in its header
	ServerVersion string
	UIVersion     string
	LogLevel      string
	HistoryShards int

	DB TemporalDB

	BindIP            string // the services listen here
	BroadcastAddress  string // and are reached (by each other, the UI) here
	Ports             TemporalPorts
	DynamicConfigPath string
	DynamicConfig     []DynamicConfigValue

	Namespace          string
	NamespaceRetention time.Duration
	SearchAttributes   []string // Keyword attributes of Namespace
	// KeywordListAttributes are its KeywordList attributes.
	KeywordListAttributes []string
}

// TemporalSchema is a database and the temporal-sql-tool schema it holds.
type TemporalSchema struct{ Database, Schema string }

// Schemas are the cluster's databases with their embedded schema names
// (temporal-sql-tool --schema-name).
func (c TemporalClusterConfig) Schemas() []TemporalSchema {
	return []TemporalSchema{
		{c.DB.Database, "postgresql/v12/temporal"},
		{c.DB.VisibilityDatabase, "postgresql/v12/visibility"},
	}
}

// ReadinessQuery is a visibility query on every search attribute: the
// frontend accepts it once its namespace registry knows them all.
func (c TemporalClusterConfig) ReadinessQuery() string {
	var q []string
	for _, sa := range append(slices.Clone(c.SearchAttributes), c.KeywordListAttributes...) {
		q = append(q, sa+" = 'readiness-probe'")
	}
	return strings.Join(q, " AND ")
}

// TemporalDB is where the cluster keeps its state: two databases on one
// PostgreSQL server.
type TemporalDB struct {
	Host, User, Password         string
	Port                         int
	Database, VisibilityDatabase string
	// Connection pools, per service and store: the history service's pool
	// on the default store carries the write path.
	MaxConns, VisibilityMaxConns int
}

// TemporalPorts are the listening ports of the one server process (every
// service has a gRPC and a ringpop membership port) and of the UI.
type TemporalPorts struct {
	Frontend, FrontendHTTP, FrontendMembership int
	History, HistoryMembership                 int
	Matching, MatchingMembership               int
	Worker, WorkerMembership                   int
	Metrics                                    int
	UI                                         int
}

// DynamicConfigValue is one key of the dynamic config file; Value is YAML.
type DynamicConfigValue struct{ Key, Value string }

// clusterDynamicConfig is the cluster's dynamic config: the dev server's
// tuning (TemporalDynamicConfig, so both topologies are measured with the
// same settings) plus two values the dev server sets in its own code.
func clusterDynamicConfig() []DynamicConfigValue {
	var out []DynamicConfigValue
	for _, kv := range TemporalDynamicConfig {
		k, v, _ := strings.Cut(kv, "=")
		out = append(out, DynamicConfigValue{Key: k, Value: v})
	}
	return append(out,
		// The dev server's: a host-level mutable-state cache of 8k entries
		// (the server's default is 128k, sized for large hosts) and 100
		// visibility requests/s per namespace for the UI and `workflow list`
		// (the default is 10).
		DynamicConfigValue{Key: "history.hostLevelCacheMaxSize", Value: "8192"},
		DynamicConfigValue{Key: "frontend.namespaceRPS.visibility", Value: "100"},
	)
}

// NewTemporalClusterConfig returns the configuration with this project's
// topology and the well-known ports (7233 frontend, 7243 HTTP, 6933–6939
// membership, 7234/7235/7239 services, 8000 metrics, 8080 UI) on bindIP:
// what a container runs. `dev` replaces ports, database and paths.
func NewTemporalClusterConfig(target, bindIP string) TemporalClusterConfig {
	return TemporalClusterConfig{
		Target:           target,
		ServerVersion:    TemporalServerVersion,
		UIVersion:        TemporalUIVersion,
		LogLevel:         "warn",
		HistoryShards:    DefaultHistoryShards,
		BindIP:           bindIP,
		BroadcastAddress: "127.0.0.1",
		DB: TemporalDB{
			Port:               5432,
			Database:           "temporal",
			VisibilityDatabase: "temporal_visibility",
			MaxConns:           20,
			VisibilityMaxConns: 4,
		},
		Ports: TemporalPorts{
			Frontend: 7233, FrontendHTTP: 7243, FrontendMembership: 6933,
			History: 7234, HistoryMembership: 6934,
			Matching: 7235, MatchingMembership: 6935,
			Worker: 7239, WorkerMembership: 6939,
			Metrics: 8000, UI: 8080,
		},
		DynamicConfig:         clusterDynamicConfig(),
		Namespace:             "default",
		NamespaceRetention:    24 * time.Hour, // the dev server's
		SearchAttributes:      SearchAttributes,
		KeywordListAttributes: KeywordListAttributes,
	}
}

// ComposeTemporalConfig is the rendering committed under deploy/temporal/
// for temporal-compose.yml: the server in its container listens on every
// interface and reaches the temporal-postgres service.
func ComposeTemporalConfig() TemporalClusterConfig {
	c := NewTemporalClusterConfig("temporal-compose.yml", "0.0.0.0")
	c.DB.Host, c.DB.User, c.DB.Password = "temporal-postgres", "temporal", "temporal"
	c.DynamicConfigPath = "/etc/temporal/trafficmanager/dynamicconfig.yaml"
	return c
}

// Render returns one of the templates ("config", "dynamicconfig", "ui")
// rendered with c.
func (c TemporalClusterConfig) Render(name string) ([]byte, error) {
	if c.HistoryShards < 1 {
		return nil, fmt.Errorf("history shards: %d (want at least 1)", c.HistoryShards)
	}
	var b bytes.Buffer
	if err := clusterTemplates.ExecuteTemplate(&b, name, c); err != nil {
		return nil, fmt.Errorf("render Temporal %s: %w", name, err)
	}
	return b.Bytes(), nil
}
