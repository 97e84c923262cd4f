// Package config loads the typed configuration of every trafficmanager
// process from TM_* environment variables and validates it at start.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration. Zero values of optional dependencies
// mean "not configured".
type Config struct {
	DatabaseURL   string   // TM_DATABASE_URL
	RedisURL      string   // TM_REDIS_URL
	KafkaBrokers  []string // TM_KAFKA_BROKERS
	KafkaTopic    string   // TM_KAFKA_TOPIC
	MongoURI      string   // TM_MONGO_URI
	MongoDatabase string   // TM_MONGO_DATABASE

	TemporalAddress   string // TM_TEMPORAL_ADDRESS
	TemporalNamespace string // TM_TEMPORAL_NAMESPACE
	TemporalTaskQueue string // TM_TEMPORAL_TASK_QUEUE
	// TemporalUIURL is the Temporal UI the web console links every
	// mutation's workflow to (the dev stack's UI by default).
	TemporalUIURL string // TM_TEMPORAL_UI_URL
	// ConsoleTrustForwardedProto: the api is behind a TLS-terminating proxy
	// that sets X-Forwarded-Proto, so "https" there marks the console's
	// session cookie Secure.
	ConsoleTrustForwardedProto bool // TM_CONSOLE_TRUST_FORWARDED_PROTO: on or off (default)

	CacheTTL         time.Duration // TM_CACHE_TTL
	NegativeCacheTTL time.Duration // TM_NEGATIVE_CACHE_TTL
	WriteAckTimeout  time.Duration // TM_WRITE_ACK_TIMEOUT

	LogLevel   string // TM_LOG_LEVEL
	LogFormat  string // TM_LOG_FORMAT: json or console
	DevDataDir string // TM_DEV_DATA_DIR

	APIAddr      string // TM_API_ADDR
	ResolverAddr string // TM_RESOLVER_ADDR
	WorkerAddr   string // TM_WORKER_ADDR
	Migrate      string // TM_MIGRATE: auto or off

	ResolverL1Entries   int    // TM_RESOLVER_L1_ENTRIES
	ResolverWarmRoutes  int    // TM_RESOLVER_WARM_ROUTES
	ResolverMaxInflight int    // TM_RESOLVER_MAX_INFLIGHT: concurrent Postgres lookups
	WatchMax            int    // TM_WATCH_MAX: open watch streams per resolver
	ResolverID          string // TM_RESOLVER_ID: this resolver's id in the live set (default host:port)
	PropagationPrefix   string // TM_PROPAGATION_PREFIX: Redis key prefix of resolver liveness and applied revisions
	WatchMaxPerTenant   int    // TM_WATCH_MAX_PER_TENANT: open watch streams of one tenant per resolver

	Auth                bool    // TM_AUTH: on (default) or off
	ResolverAuth        bool    // TM_RESOLVER_AUTH
	BootstrapAdminToken string  // TM_BOOTSTRAP_ADMIN_TOKEN
	TenantWriteRPS      float64 // TM_TENANT_WRITE_RPS
	TenantWriteBurst    int     // TM_TENANT_WRITE_BURST

	AuditRetention time.Duration // TM_AUDIT_RETENTION: 0 keeps audit documents forever

	// HTTP server timeouts of every listener (api, resolver, worker). The
	// read timeout bounds reading a whole request, body included (a body
	// trickled a byte at a time is cut off); the write timeout bounds a
	// response and defaults to TM_WRITE_ACK_TIMEOUT + 30s (at least 60s) so
	// a write's wait for its commit always gets its answer out. 0 turns one
	// off.
	HTTPReadTimeout  time.Duration // TM_HTTP_READ_TIMEOUT (30s)
	HTTPWriteTimeout time.Duration // TM_HTTP_WRITE_TIMEOUT (max(60s, TM_WRITE_ACK_TIMEOUT+30s))
	HTTPIdleTimeout  time.Duration // TM_HTTP_IDLE_TIMEOUT (120s)

	ShutdownTimeout time.Duration // TM_SHUTDOWN_TIMEOUT
	// DrainDelay is how long a stopping server keeps accepting requests
	// after /readyz turned 503, so load balancers (and connections already
	// queued in the listen backlog) move on before the listener closes.
	DrainDelay time.Duration // TM_DRAIN_DELAY

	// Pprof mounts net/http/pprof under /debug/pprof/ on the api, resolver
	// and worker listeners. Off by default: profiles expose internals and
	// cost CPU while taken, so only turn it on where the listeners are private.
	Pprof bool // TM_PPROF: on or off (default)

	// TemporalCompression is the gRPC compression of requests to Temporal:
	// gzip (the SDK's default, for a server across a network) or none
	// (same host: gzip was 5-7 % of the api/worker's CPU per mutation).
	TemporalCompression string // TM_TEMPORAL_GRPC_COMPRESSION: gzip (default) or none
}

// Load reads the configuration through getenv (os.Getenv in main). It
// returns every bad variable at once, one line each.
func Load(getenv func(string) string) (Config, error) {
	p := parser{getenv: getenv}
	c := Config{
		DatabaseURL:   p.str("TM_DATABASE_URL", ""),
		RedisURL:      p.str("TM_REDIS_URL", ""),
		KafkaBrokers:  p.list("TM_KAFKA_BROKERS"),
		KafkaTopic:    p.str("TM_KAFKA_TOPIC", "route-events"),
		MongoURI:      p.str("TM_MONGO_URI", ""),
		MongoDatabase: p.str("TM_MONGO_DATABASE", "traffic_manager"),

		TemporalAddress:   p.str("TM_TEMPORAL_ADDRESS", ""),
		TemporalNamespace: p.str("TM_TEMPORAL_NAMESPACE", "default"),
		TemporalTaskQueue: p.str("TM_TEMPORAL_TASK_QUEUE", "route-mutations"),
		TemporalUIURL:     p.str("TM_TEMPORAL_UI_URL", "http://127.0.0.1:8233"),

		ConsoleTrustForwardedProto: p.onOff("TM_CONSOLE_TRUST_FORWARDED_PROTO", false),

		CacheTTL:         p.duration("TM_CACHE_TTL", 60*time.Second),
		NegativeCacheTTL: p.duration("TM_NEGATIVE_CACHE_TTL", 10*time.Second),
		WriteAckTimeout:  p.duration("TM_WRITE_ACK_TIMEOUT", 5*time.Second),

		LogLevel:   p.oneOf("TM_LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		LogFormat:  p.oneOf("TM_LOG_FORMAT", "json", "json", "console"),
		DevDataDir: p.str("TM_DEV_DATA_DIR", "./.tmdata"),

		APIAddr:      p.str("TM_API_ADDR", ":8080"),
		ResolverAddr: p.str("TM_RESOLVER_ADDR", ":8081"),
		WorkerAddr:   p.str("TM_WORKER_ADDR", ":8082"),
		Migrate:      p.oneOf("TM_MIGRATE", "off", "auto", "off"),

		ResolverL1Entries:   p.int("TM_RESOLVER_L1_ENTRIES", 100_000, 0),
		ResolverWarmRoutes:  p.int("TM_RESOLVER_WARM_ROUTES", 0, 0),
		ResolverMaxInflight: p.int("TM_RESOLVER_MAX_INFLIGHT", 32, 1),
		WatchMax:            p.int("TM_WATCH_MAX", 10_000, 1),
		ResolverID:          p.str("TM_RESOLVER_ID", ""),
		PropagationPrefix:   p.str("TM_PROPAGATION_PREFIX", "tm:"),
		WatchMaxPerTenant:   p.int("TM_WATCH_MAX_PER_TENANT", 1_000, 1),

		Auth:                p.onOff("TM_AUTH", true),
		ResolverAuth:        p.onOff("TM_RESOLVER_AUTH", false),
		BootstrapAdminToken: p.str("TM_BOOTSTRAP_ADMIN_TOKEN", ""),
		TenantWriteRPS:      p.float("TM_TENANT_WRITE_RPS", 50),
		TenantWriteBurst:    p.int("TM_TENANT_WRITE_BURST", 100, 1),

		AuditRetention:  p.duration("TM_AUDIT_RETENTION", 0),
		ShutdownTimeout: p.duration("TM_SHUTDOWN_TIMEOUT", 15*time.Second),
		DrainDelay:      p.duration("TM_DRAIN_DELAY", time.Second),
		Pprof:           p.onOff("TM_PPROF", false),

		TemporalCompression: p.oneOf("TM_TEMPORAL_GRPC_COMPRESSION", "gzip", "gzip", "none"),
	}
	c.HTTPReadTimeout = p.duration("TM_HTTP_READ_TIMEOUT", 30*time.Second)
	c.HTTPWriteTimeout = p.duration("TM_HTTP_WRITE_TIMEOUT", max(60*time.Second, c.WriteAckTimeout+30*time.Second))
	c.HTTPIdleTimeout = p.duration("TM_HTTP_IDLE_TIMEOUT", 120*time.Second)
	if c.HTTPWriteTimeout > 0 && c.HTTPWriteTimeout <= c.WriteAckTimeout {
		p.bad("TM_HTTP_WRITE_TIMEOUT", fmt.Sprintf("must be longer than TM_WRITE_ACK_TIMEOUT (%s), or 0 for none", c.WriteAckTimeout))
	}
	if u, err := url.Parse(c.TemporalUIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.bad("TM_TEMPORAL_UI_URL", "must be an http(s) URL, as in http://127.0.0.1:8233")
	}
	if c.DatabaseURL != "" {
		if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			p.bad("TM_DATABASE_URL", "must be a postgres:// URL")
		}
	}
	if c.RedisURL != "" {
		if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			p.bad("TM_REDIS_URL", "must be a redis:// URL")
		}
	}
	if c.MongoURI != "" && !strings.HasPrefix(c.MongoURI, "mongodb://") && !strings.HasPrefix(c.MongoURI, "mongodb+srv://") {
		p.bad("TM_MONGO_URI", "must be a mongodb:// URL")
	}
	return c, errors.Join(p.errs...)
}

// Require returns one error per listed variable that is empty in c, so a
// command states what it cannot run without.
func (c Config) Require(names ...string) error {
	var errs []error
	for _, n := range names {
		var empty bool
		switch n {
		case "TM_DATABASE_URL":
			empty = c.DatabaseURL == ""
		case "TM_KAFKA_BROKERS":
			empty = len(c.KafkaBrokers) == 0
		case "TM_MONGO_URI":
			empty = c.MongoURI == ""
		case "TM_TEMPORAL_ADDRESS":
			empty = c.TemporalAddress == ""
		case "TM_REDIS_URL":
			empty = c.RedisURL == ""
		default:
			panic("config: Require of unknown variable " + n)
		}
		if empty {
			errs = append(errs, fmt.Errorf("%s is required", n))
		}
	}
	return errors.Join(errs...)
}

// Redacted returns a copy safe to log: passwords and tokens masked.
func (c Config) Redacted() Config {
	c.DatabaseURL = redactURL(c.DatabaseURL)
	c.RedisURL = redactURL(c.RedisURL)
	c.MongoURI = redactURL(c.MongoURI)
	if c.BootstrapAdminToken != "" {
		c.BootstrapAdminToken = "***"
	}
	return c
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

type parser struct {
	getenv func(string) string
	errs   []error
}

func (p *parser) bad(name, why string) { p.errs = append(p.errs, fmt.Errorf("%s %s", name, why)) }

func (p *parser) str(name, def string) string {
	if v := strings.TrimSpace(p.getenv(name)); v != "" {
		return v
	}
	return def
}

func (p *parser) list(name string) []string {
	var out []string
	for _, s := range strings.Split(p.getenv(name), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (p *parser) duration(name string, def time.Duration) time.Duration {
	v := p.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		p.bad(name, fmt.Sprintf("must be a non-negative Go duration such as 5s, got %q", v))
		return def
	}
	return d
}

func (p *parser) int(name string, def, min int) int {
	v := p.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min {
		p.bad(name, fmt.Sprintf("must be an integer >= %d, got %q", min, v))
		return def
	}
	return n
}

func (p *parser) float(name string, def float64) float64 {
	v := p.str(name, "")
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		p.bad(name, fmt.Sprintf("must be a positive number, got %q", v))
		return def
	}
	return f
}

func (p *parser) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(p.str(name, def))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	p.bad(name, fmt.Sprintf("must be one of %s, got %q", strings.Join(allowed, ", "), v))
	return def
}

func (p *parser) onOff(name string, def bool) bool {
	switch strings.ToLower(p.str(name, "")) {
	case "":
		return def
	case "on", "true", "1", "yes":
		return true
	case "off", "false", "0", "no":
		return false
	}
	p.bad(name, "must be on or off")
	return def
}
