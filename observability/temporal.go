package observability

import "go.uber.org/zap"

// TemporalLogger adapts zap to the Temporal SDK's logger so SDK logs share
// the process's format. It satisfies go.temporal.io/sdk/log.Logger without
// importing it (temporal_test.go checks), so the resolver, which uses this
// package's metrics, does not link the Temporal SDK.
type TemporalLogger struct{ s *zap.SugaredLogger }

// NewTemporalLogger wraps l.
func NewTemporalLogger(l *zap.Logger) TemporalLogger {
	return TemporalLogger{s: l.WithOptions(zap.AddCallerSkip(1)).Sugar()}
}

func (t TemporalLogger) Debug(msg string, kv ...any) { t.s.Debugw(msg, kv...) }
func (t TemporalLogger) Info(msg string, kv ...any)  { t.s.Infow(msg, kv...) }
func (t TemporalLogger) Warn(msg string, kv ...any)  { t.s.Warnw(msg, kv...) }
func (t TemporalLogger) Error(msg string, kv ...any) { t.s.Errorw(msg, kv...) }
