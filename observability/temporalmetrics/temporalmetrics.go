// Package temporalmetrics reports the Temporal SDK's client and worker
// metrics into a process's Prometheus registry, under the names the SDK
// emits (temporal_request, temporal_workflow_task_execution_latency,
// temporal_activity_execution_failed, ...), so they share /metrics with the
// process's own metrics.
//
// It lives apart from observability because it links the Temporal SDK, and
// the resolver, which uses observability, must not (resolver/deps_test.go).
package temporalmetrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/otlptranslator"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.uber.org/zap"
)

// LatencyBuckets are the bucket bounds, in seconds, of every SDK timer
// (histogram). OpenTelemetry's default bounds (0 to 10000) are meant for
// milliseconds and would put every Temporal latency in the first buckets.
var LatencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// NewHandler returns a Temporal metrics handler (client.Options.MetricsHandler)
// whose metrics are collected by reg. Give every registry at most one: the
// second would register the same names again and fail.
//
// The SDK's OpenTelemetry handler feeds an OpenTelemetry meter whose
// Prometheus exporter is a collector on reg. Names are kept as the SDK
// emits them (no _total or unit suffixes added); counters are Prometheus
// counters, timers histograms in seconds. A metric shows once the SDK has
// recorded it (temporal_activity_execution_failed after a first failure).
func NewHandler(reg prometheus.Registerer, log *zap.Logger) (client.MetricsHandler, error) {
	exp, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithoutSuffixes),
		otelprom.WithoutScopeInfo(),
		otelprom.WithoutTargetInfo(),
	)
	if err != nil {
		return nil, fmt.Errorf("temporal metrics: %w", err)
	}
	seconds := sdkmetric.NewView(
		sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram},
		sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: LatencyBuckets}},
	)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithView(seconds))
	return temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
		Meter:                mp.Meter("temporal-sdk-go"),
		UseMonotonicCounters: true,
		// The default panics; a metric the meter refuses is not worth a
		// crashed worker.
		OnError: func(err error) { log.Warn("temporal metric not recorded", zap.Error(err)) },
	}), nil
}
