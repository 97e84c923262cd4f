package audit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Defaults of a store that ensures its own indexes.
const (
	// lazyIndexesEvery is the least time between the starts of two attempts,
	// so a MongoDB outage costs one failed attempt per interval, not one per
	// insert.
	lazyIndexesEvery = 5 * time.Second
	// lazyIndexesTimeout bounds one attempt (five index commands).
	lazyIndexesTimeout = 30 * time.Second
)

// indexState is what a store knows of its indexes.
type indexState struct {
	lazy      bool          // WithLazyIndexes: the store ensures them itself
	retention time.Duration // the retention they are ensured with, when lazy
	log       *zap.Logger
	every     time.Duration
	timeout   time.Duration

	ensured atomic.Bool
	mu      sync.Mutex
	running bool      // an attempt is in flight
	last    time.Time // when the last attempt began
}

// Option configures a Store.
type Option func(*Store)

// WithLazyIndexes makes the store ensure its indexes itself, as
// EnsureIndexes(ctx, retention) does: TryEnsureIndexes, which every insert
// and query calls, starts an attempt in the background until one succeeds,
// so a process that started while MongoDB was down gets its indexes once
// MongoDB is back, without a restart. Documents stay one per event id
// meanwhile: their _id is the event id. Failed attempts are logged to log.
//
// It is an option rather than the default because only a store that knows
// the deployment's retention may replace the occurred_at index.
func WithLazyIndexes(retention time.Duration, log *zap.Logger) Option {
	return func(s *Store) {
		if log == nil {
			log = zap.NewNop()
		}
		s.idx.lazy, s.idx.retention, s.idx.log = true, retention, log
	}
}

// TryEnsureIndexes starts ensuring the indexes in the background unless the
// store was built without WithLazyIndexes, they are ensured already, an
// attempt is running, or the last one began less than a few seconds ago. It
// never blocks. Call it at start so that the indexes exist before the first
// write when MongoDB is up.
func (s *Store) TryEnsureIndexes() {
	ix := &s.idx
	if !ix.lazy || ix.ensured.Load() {
		return
	}
	now := time.Now()
	ix.mu.Lock()
	if ix.running || (!ix.last.IsZero() && now.Sub(ix.last) < ix.every) {
		ix.mu.Unlock()
		return
	}
	ix.running, ix.last = true, now
	ix.mu.Unlock()
	go s.ensureInBackground()
}

func (s *Store) ensureInBackground() {
	ix := &s.idx
	defer func() {
		ix.mu.Lock()
		ix.running = false
		ix.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), ix.timeout)
	defer cancel()
	err := s.EnsureIndexes(ctx, ix.retention)
	switch {
	case err == nil:
		ix.log.Info("audit indexes ensured", zap.Duration("retention", ix.retention))
	case indexesSettled(err):
		ix.log.Warn("audit indexes ensured as far as the server allows", zap.Error(err))
	default:
		ix.log.Warn("audit indexes not ensured yet; retrying on a later audit write or query",
			zap.Duration("retry_after", ix.every), zap.Error(err))
	}
}

// IndexesEnsured reports whether an EnsureIndexes call has succeeded, with
// the configured retention for a store built WithLazyIndexes. Errors that no
// retry can cure (ErrRetentionUnsupported, ErrDuplicateEvents) count as
// success: they are logged once, not retried.
func (s *Store) IndexesEnsured() bool { return s.idx.ensured.Load() }

// noteEnsured records the outcome of EnsureIndexes(ctx, retention).
func (s *Store) noteEnsured(retention time.Duration, err error) {
	if (err == nil || indexesSettled(err)) && (!s.idx.lazy || retention == s.idx.retention) {
		s.idx.ensured.Store(true)
	}
}

// indexesSettled reports whether err leaves the indexes as good as this
// server and data allow: every index was created except what err names.
func indexesSettled(err error) bool {
	if err == nil {
		return true
	}
	// Either may come joined with the other; anything else means a step
	// did not run.
	var rest []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		rest = j.Unwrap()
	} else {
		rest = []error{err}
	}
	for _, e := range rest {
		if !errors.Is(e, ErrRetentionUnsupported) && !errors.Is(e, ErrDuplicateEvents) {
			return false
		}
	}
	return true
}
