package propagation

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// flushBurst is how many flushes may follow each other without waiting for
// the Flush interval.
const flushBurst = 10

// ReporterOptions configure a Reporter. Redis and ID are required.
type ReporterOptions struct {
	Redis redis.Cmdable
	// ID names this resolver instance (TM_RESOLVER_ID; DefaultID builds the
	// usual host:port one). Two live instances must not share an id.
	ID string
	// Address is where the instance answers (informational).
	Address string
	// Prefix is the Redis key prefix (DefaultPrefix when empty).
	Prefix string
	// Heartbeat is how often the instance says it is alive (DefaultHeartbeat).
	Heartbeat time.Duration
	// Flush bounds how often applied revisions are written (DefaultFlush):
	// on average at most once per interval, with a burst of flushBurst
	// writes at once, so a change after a quiet spell (or a writer waiting
	// for each change in turn) is written at once, and a sustained stream
	// of changes in one Redis command per interval.
	Flush time.Duration
	// TTL bounds how long a dead instance's data stays in Redis (DefaultTTL);
	// every heartbeat renews it. It must be well above Heartbeat.
	TTL time.Duration
	Log *zap.Logger
}

// Reporter tells Redis that one resolver instance is alive and which route
// revisions it has applied. Applied is cheap (a map write under a mutex);
// a background loop writes what accumulated in one script call (on
// average at most once per Flush interval), and heartbeats every Heartbeat
// interval in one pipeline.
type Reporter struct {
	rdb       redis.Cmdable
	k         keys
	id        string
	address   string
	heartbeat time.Duration
	flush     time.Duration
	ttl       time.Duration
	log       *zap.Logger

	mu      sync.Mutex
	pending map[string]int64 // route key -> newest revision not yet written
	spare   map[string]int64 // the map written last time, reused

	applied   atomic.Int64 // events applied since start
	lagMS     atomic.Int64 // lag of the last applied event
	startedAt time.Time
	failing   bool // a Redis write failed and nothing succeeded since (loop only)

	kick  chan struct{} // something to flush (capacity 1)
	start sync.Once
	halt  sync.Once
	stop  chan struct{}
	done  chan struct{}
}

// DefaultID is the id of an instance without TM_RESOLVER_ID: the host name
// and the port it listens on, "host:port".
func DefaultID(listenAddr string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	port := listenAddr
	for i := len(listenAddr) - 1; i >= 0; i-- {
		if listenAddr[i] == ':' {
			port = listenAddr[i+1:]
			break
		}
	}
	return host + ":" + port
}

// NewReporter returns a reporter; Start makes it report.
func NewReporter(o ReporterOptions) (*Reporter, error) {
	if o.Redis == nil {
		return nil, errors.New("propagation: ReporterOptions.Redis is required")
	}
	if !validID(o.ID) {
		return nil, fmt.Errorf("propagation: resolver id %q must be 1 to 200 printable characters without spaces", o.ID)
	}
	r := &Reporter{
		rdb:       o.Redis,
		k:         newKeys(o.Prefix),
		id:        o.ID,
		address:   o.Address,
		heartbeat: orDefault(o.Heartbeat, DefaultHeartbeat),
		flush:     orDefault(o.Flush, DefaultFlush),
		ttl:       orDefault(o.TTL, DefaultTTL),
		log:       o.Log,
		pending:   make(map[string]int64),
		spare:     make(map[string]int64),
		kick:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	if r.ttl < 3*r.heartbeat {
		return nil, fmt.Errorf("propagation: TTL %s must be at least 3 heartbeats (%s)", r.ttl, r.heartbeat)
	}
	if r.log == nil {
		r.log = zap.NewNop()
	}
	r.log = r.log.With(zap.String("resolver_id", r.id))
	return r, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// ID is the instance's id.
func (r *Reporter) ID() string { return r.id }

// Applied records that the instance applied revision of the route key (an
// event that occurred, i.e. was committed, at occurredAt). It never blocks
// on Redis; revisions of one key are kept at their maximum.
func (r *Reporter) Applied(key string, revision int64, occurredAt time.Time) {
	now := time.Now()
	r.mu.Lock()
	if cur, ok := r.pending[key]; !ok || revision > cur {
		r.pending[key] = revision
	}
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default: // a flush is due already
	}
	r.applied.Add(1)
	if !occurredAt.IsZero() {
		r.lagMS.Store(max(0, now.Sub(occurredAt).Milliseconds()))
	}
}

// Start writes the first heartbeat and starts reporting in the background.
// Call it once the instance is subscribed to the route events: from then
// on every change is applied, so the instance may count as live. A Redis
// failure is logged, not returned: reporting must never stop the read path.
func (r *Reporter) Start() {
	r.start.Do(func() {
		r.startedAt = time.Now()
		r.beat()
		go r.loop()
	})
}

// Close stops reporting and removes the instance from the live set (a
// graceful shutdown: the api stops waiting for it at once).
func (r *Reporter) Close(ctx context.Context) error {
	started := true
	r.start.Do(func() { started = false; close(r.done) }) // never started: nothing to remove
	r.halt.Do(func() { close(r.stop) })
	<-r.done
	if !started {
		return nil
	}
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, r.k.set(), r.id)
		p.Del(ctx, r.k.resolver(r.id), r.k.applied(r.id))
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove resolver %s from the live set: %w", r.id, err)
	}
	return nil
}

// kill stops reporting without removing the instance, as a crash would.
func (r *Reporter) kill() {
	r.halt.Do(func() { close(r.stop) })
	<-r.done
}

func (r *Reporter) loop() {
	defer close(r.done)
	hb := time.NewTicker(r.heartbeat)
	defer hb.Stop()
	// due fires when a flush waits for its turn; nil when none waits.
	var due <-chan time.Time
	lim := rate.NewLimiter(rate.Every(r.flush), flushBurst)
	flush := func() {
		due = nil
		if !r.flushApplied() {
			due = time.After(r.flush) // retry what failed
		}
	}
	for {
		select {
		case <-r.stop:
			return
		case <-r.kick:
			if due == nil {
				if wait := lim.Reserve().Delay(); wait > 0 {
					due = time.After(wait)
				} else {
					flush()
				}
			}
		case <-due:
			flush()
		case <-hb.C:
			r.beat()
		}
	}
}

// callTimeout bounds one Redis write of the loop.
func (r *Reporter) callTimeout() time.Duration { return min(r.heartbeat, time.Second) }

// beat writes the heartbeat: score and status, renewed TTLs, and the
// pruning of instances whose data has expired (5 commands, one round trip).
func (r *Reporter) beat() {
	ctx, cancel := context.WithTimeout(context.Background(), r.callTimeout())
	defer cancel()
	now := unixMS(time.Now())
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, r.k.set(), redis.Z{Score: float64(now), Member: r.id})
		p.HSet(ctx, r.k.resolver(r.id),
			"address", r.address,
			"started_at", unixMS(r.startedAt),
			"last_heartbeat", now,
			"lag_ms", r.lagMS.Load(),
			"applied_events", r.applied.Load())
		p.PExpire(ctx, r.k.resolver(r.id), r.ttl)
		p.PExpire(ctx, r.k.applied(r.id), r.ttl)
		p.ZRemRangeByScore(ctx, r.k.set(), "-inf", "("+strconv.FormatInt(now-r.ttl.Milliseconds(), 10))
		return nil
	})
	r.outcome("heartbeat", err)
}

// flushApplied writes the revisions applied since the last flush and
// reports whether it succeeded (or had nothing to write).
func (r *Reporter) flushApplied() bool {
	r.mu.Lock()
	if len(r.pending) == 0 {
		r.mu.Unlock()
		return true
	}
	batch := r.pending
	r.pending, r.spare = r.spare, nil
	r.mu.Unlock()

	args := make([]any, 0, 1+2*len(batch))
	args = append(args, r.ttl.Milliseconds())
	for k, rev := range batch {
		args = append(args, k, rev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.callTimeout())
	defer cancel()
	err := recordApplied.Run(ctx, r.rdb, []string{r.k.applied(r.id)}, args...).Err()
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	r.outcome("applied revisions", err)

	r.mu.Lock()
	if err != nil {
		// Keep them for the next flush: a revision must not be lost to a
		// Redis hiccup, or its propagation would stay incomplete.
		for k, rev := range batch {
			if cur, ok := r.pending[k]; !ok || rev > cur {
				r.pending[k] = rev
			}
		}
		batch = make(map[string]int64)
	} else {
		clear(batch)
	}
	r.spare = batch
	r.mu.Unlock()
	return err == nil
}

// outcome logs the first failure of an outage and the recovery, not every
// failed write in between.
func (r *Reporter) outcome(what string, err error) {
	switch {
	case err != nil && !r.failing:
		r.failing = true
		r.log.Warn("propagation reporting to Redis failed; retrying", zap.String("write", what), zap.Error(err))
	case err == nil && r.failing:
		r.failing = false
		r.log.Info("propagation reporting to Redis works again")
	}
}

// recordApplied sets each route's applied revision to the maximum of the
// stored one and the given one, and renews the hash's TTL.
// KEYS[1] the applied hash; ARGV[1] the TTL in ms, then route, revision pairs.
var recordApplied = redis.NewScript(`
local key = KEYS[1]
for i = 2, #ARGV - 1, 2 do
  local cur = redis.call('HGET', key, ARGV[i])
  if (not cur) or tonumber(cur) < tonumber(ARGV[i + 1]) then
    redis.call('HSET', key, ARGV[i], ARGV[i + 1])
  end
end
redis.call('PEXPIRE', key, ARGV[1])
return 0
`)
