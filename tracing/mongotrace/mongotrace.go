// Package mongotrace traces MongoDB commands with a CommandMonitor: the
// driver (go.mongodb.org/mongo-driver/v2) ships no OpenTelemetry support and
// contrib's otelmongo is for v1 only. It lives apart from package tracing so
// that importing tracing never links the MongoDB driver (the resolver's
// dependencies must hold none: resolver/deps_test.go).
package mongotrace

import (
	"context"
	"sync"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

const scope = "github.com/trafficmanager/trafficmanager/tracing/mongotrace"

// Monitor returns a command monitor that records one client span per
// command ("find audit_events", "insert audit_events", ...) as a child of
// the span in the operation's context, on the global tracer provider.
func Monitor() *event.CommandMonitor {
	m := &monitor{tracer: otel.Tracer(scope)}
	return &event.CommandMonitor{Started: m.started, Succeeded: m.succeeded, Failed: m.failed}
}

type monitor struct {
	tracer trace.Tracer
	spans  sync.Map // request id (with connection id) -> trace.Span
}

type spanKey struct {
	conn string
	id   int64
}

func (m *monitor) started(ctx context.Context, e *event.CommandStartedEvent) {
	name := e.CommandName
	coll := ""
	if v, err := e.Command.IndexErr(0); err == nil {
		if s, ok := v.Value().StringValueOK(); ok {
			coll = s
			name += " " + s
		}
	}
	attrs := []attribute.KeyValue{
		attribute.String("db.system.name", "mongodb"),
		attribute.String("db.namespace", e.DatabaseName),
		attribute.String("db.operation.name", e.CommandName),
	}
	if coll != "" {
		attrs = append(attrs, attribute.String("db.collection.name", coll))
	}
	_, span := m.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	m.spans.Store(spanKey{e.ConnectionID, e.RequestID}, span)
}

func (m *monitor) succeeded(_ context.Context, e *event.CommandSucceededEvent) {
	if v, ok := m.spans.LoadAndDelete(spanKey{e.ConnectionID, e.RequestID}); ok {
		v.(trace.Span).End()
	}
}

func (m *monitor) failed(_ context.Context, e *event.CommandFailedEvent) {
	if v, ok := m.spans.LoadAndDelete(spanKey{e.ConnectionID, e.RequestID}); ok {
		span := v.(trace.Span)
		span.RecordError(e.Failure)
		span.SetStatus(codes.Error, e.CommandName+" failed")
		span.End()
	}
}
