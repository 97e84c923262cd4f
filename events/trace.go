package events

import (
	"context"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Trace context travels in the W3C headers (traceparent, tracestate,
// baggage) of each Kafka message, through the global propagator: with
// tracing off that propagator is OpenTelemetry's empty default, so nothing
// is written or read and no span records.

const tracerScope = "github.com/trafficmanager/trafficmanager/events"

// headerCarrier adapts kafka-go headers to a propagation.TextMapCarrier.
type headerCarrier struct{ h *[]kafka.Header }

var _ propagation.TextMapCarrier = headerCarrier{}

func (c headerCarrier) Get(key string) string {
	for _, h := range *c.h {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func (c headerCarrier) Set(key, value string) {
	for i, h := range *c.h {
		if h.Key == key {
			(*c.h)[i].Value = []byte(value)
			return
		}
	}
	*c.h = append(*c.h, kafka.Header{Key: key, Value: []byte(value)})
}

func (c headerCarrier) Keys() []string {
	keys := make([]string, len(*c.h))
	for i, h := range *c.h {
		keys[i] = h.Key
	}
	return keys
}

// startPublish starts the producer span of a publish to topic and writes
// its context into msgs' headers. End the span when the broker answered.
func startPublish(ctx context.Context, topic string, n int, msgs []kafka.Message) (context.Context, trace.Span) {
	ctx, span := otel.Tracer(tracerScope).Start(ctx, topic+" publish", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.destination.name", topic),
			attribute.Int("messaging.batch.message_count", n)))
	if span.IsRecording() {
		prop := otel.GetTextMapPropagator()
		for i := range msgs {
			prop.Inject(ctx, headerCarrier{&msgs[i].Headers})
		}
	}
	return ctx, span
}

// StartApply starts the consumer span "route_event apply" for msg, a child
// of the span that published it (from its headers). With tracing off it
// returns ctx and a non-recording span at the cost of a header scan.
func StartApply(ctx context.Context, msg *kafka.Message) (context.Context, trace.Span) {
	ctx = otel.GetTextMapPropagator().Extract(ctx, headerCarrier{&msg.Headers})
	return otel.Tracer(tracerScope).Start(ctx, "route_event apply", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.destination.name", msg.Topic),
			attribute.Int("messaging.destination.partition.id", msg.Partition),
			attribute.Int64("messaging.kafka.offset", msg.Offset)))
}
