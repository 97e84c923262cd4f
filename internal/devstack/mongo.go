package devstack

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Mongo is an embedded MongoDB-wire store: FerretDB v1 on SQLite files,
// served from a goroutine of this process.
type Mongo struct {
	URI      string // mongodb://127.0.0.1:PORT/
	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
}

// MongoLogger is the logger FerretDB gets: it logs every connection at INFO
// and, at WARN, a full dump of each command it lacks (mongo-driver sends
// endSessions on every Disconnect), so only errors are kept (on stderr).
var MongoLogger = slog.New(&lazyAttrs{h: slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})})

// lazyAttrs defers Logger.With's attributes to the (rare) record that is
// logged. FerretDB calls With on every SQL statement, and the text
// handler formats the attributes at once: a tenth of the CPU of a bulk
// audit insert went there, for records that were never written.
type lazyAttrs struct {
	h     slog.Handler
	attrs []slog.Attr
}

func (l *lazyAttrs) Enabled(ctx context.Context, level slog.Level) bool {
	return l.h.Enabled(ctx, level)
}

func (l *lazyAttrs) Handle(ctx context.Context, r slog.Record) error {
	return l.materialize().Handle(ctx, r)
}

func (l *lazyAttrs) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &lazyAttrs{h: l.h, attrs: append(l.attrs[:len(l.attrs):len(l.attrs)], attrs...)}
}

func (l *lazyAttrs) WithGroup(name string) slog.Handler {
	return &lazyAttrs{h: l.materialize().WithGroup(name)}
}

func (l *lazyAttrs) materialize() slog.Handler {
	if len(l.attrs) == 0 {
		return l.h
	}
	return l.h.WithAttrs(l.attrs)
}

// StartMongo serves FerretDB on 127.0.0.1:port with its SQLite files in
// dataDir (data survives restarts) and returns once a ping succeeds.
func StartMongo(ctx context.Context, dataDir string, port int) (*Mongo, error) {
	if err := checkPort(port, "embedded MongoDB (FerretDB)", "TM_MONGO_URI"); err != nil {
		return nil, err
	}
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create FerretDB data directory: %w", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: addr},
		Handler:  "sqlite",
		// WAL (FerretDB's default) with synchronous=NORMAL: a commit no
		// longer waits for an fsync (a third of a bulk insert's cost); a
		// crash of the process loses nothing, a power loss may lose the
		// last commits. The same trade-off as the Temporal dev server's.
		SQLiteURL: "file:" + dataDir + "/?_pragma=synchronous(normal)",
		Logger:    MongoLogger,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded MongoDB (FerretDB) on %s did not start: %w (set TM_MONGO_URI to use a running server)", addr, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	m := &Mongo{URI: "mongodb://" + addr + "/", cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		_ = f.Run(runCtx)
	}()
	client, err := mongo.Connect(options.Client().ApplyURI(m.URI).SetServerSelectionTimeout(2 * time.Second))
	if err != nil {
		_ = m.Stop()
		return nil, err
	}
	defer client.Disconnect(context.Background()) //nolint:errcheck
	err = waitFor(ctx, nil, 20*time.Second, func(ctx context.Context) error {
		select {
		case <-m.done:
			return fmt.Errorf("FerretDB stopped")
		default:
		}
		return client.Ping(ctx, nil)
	})
	if err != nil {
		_ = m.Stop()
		return nil, fmt.Errorf("embedded MongoDB (FerretDB) in %s: %w", dataDir, err)
	}
	return m, nil
}

// Stop stops serving and waits (up to 10 s) for FerretDB to close its
// connections and SQLite files. It is safe to call more than once.
func (m *Mongo) Stop() error {
	m.stopOnce.Do(m.cancel)
	select {
	case <-m.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("embedded MongoDB (FerretDB) did not stop within 10s")
	}
}
