package events

import (
	"context"
	"testing"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"
)

func TestTraceContextTravelsInHeaders(t *testing.T) {
	t.Run("off: no header is written", func(t *testing.T) {
		msgs := []kafka.Message{{Headers: []kafka.Header{{Key: "event_id", Value: []byte("e1")}}}}
		_, span := startPublish(context.Background(), "route-events", 1, msgs)
		span.End()
		if len(msgs[0].Headers) != 1 {
			t.Fatalf("headers %v", msgs[0].Headers)
		}
	})
	t.Run("on: the consumer span is the publisher span's child", func(t *testing.T) {
		exp := tracetest.NewInMemoryExporter()
		otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)))
		otel.SetTextMapPropagator(propagation.TraceContext{})
		t.Cleanup(func() {
			otel.SetTracerProvider(noop.NewTracerProvider())
			otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
		})
		msgs := []kafka.Message{{Topic: "route-events", Headers: []kafka.Header{{Key: "event_id", Value: []byte("e1")}}}}
		_, pub := startPublish(context.Background(), "route-events", 1, msgs)
		pub.End()
		if got := (headerCarrier{&msgs[0].Headers}).Get("traceparent"); got == "" {
			t.Fatalf("no traceparent header: %v", msgs[0].Headers)
		}
		_, apply := StartApply(context.Background(), &msgs[0])
		apply.End()
		spans := exp.GetSpans()
		if len(spans) != 2 || spans[1].Parent.SpanID() != spans[0].SpanContext.SpanID() ||
			spans[1].SpanContext.TraceID() != spans[0].SpanContext.TraceID() {
			t.Fatalf("spans %+v", spans)
		}
	})
}
