package devstack

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Mongo is an embedded MongoDB-wire store: FerretDB on SQLite files.
type Mongo struct {
	URI    string // mongodb://127.0.0.1:PORT/
	cancel context.CancelFunc
	done   chan struct{}
}

// StartMongo serves FerretDB on 127.0.0.1:port with its SQLite files in dataDir.
func StartMongo(ctx context.Context, dataDir string, port int) (*Mongo, error) {
	if !portFree(port) {
		return nil, fmt.Errorf("port %d is taken: stop what listens there or set TM_MONGO_URI", port)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dataDir + "/",
		Logger:    quiet,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded mongodb: %w", err)
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
	err = waitFor(ctx, nil, 20*time.Second, func(ctx context.Context) error { return client.Ping(ctx, nil) })
	if err != nil {
		_ = m.Stop()
		return nil, fmt.Errorf("embedded mongodb not ready: %w", err)
	}
	return m, nil
}

// Stop stops serving and waits for FerretDB to close its files.
func (m *Mongo) Stop() error {
	m.cancel()
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
	}
	return nil
}
