package tracing

import (
	"fmt"
	"strconv"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Sampler is OTEL_TRACES_SAMPLER's sampler (parsed here because the SDK
// only reads it when given no sampler) wrapped in noOrphanClients.
func Sampler(getenv func(string) string) (sdktrace.Sampler, error) {
	ratio := 1.0
	if arg := getenv("OTEL_TRACES_SAMPLER_ARG"); arg != "" {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%s: want a ratio from 0 to 1", arg)
		}
		ratio = r
	}
	var base sdktrace.Sampler
	switch name := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER"))); name {
	case "", "parentbased_always_on":
		base = sdktrace.ParentBased(sdktrace.AlwaysSample())
	case "parentbased_always_off":
		base = sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		base = sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
	case "always_on":
		base = sdktrace.AlwaysSample()
	case "always_off":
		base = sdktrace.NeverSample()
	case "traceidratio":
		base = sdktrace.TraceIDRatioBased(ratio)
	default:
		return nil, fmt.Errorf("OTEL_TRACES_SAMPLER=%s: want always_on, always_off, traceidratio or parentbased_ one of them", name)
	}
	return noOrphanClients{base}, nil
}

// noOrphanClients drops a client span that would start a trace: a driver
// call outside any request, workflow or event (the resolver's heartbeat to
// Redis every second, the policy refresh, the watch feed's polls), which
// would otherwise be a one-span trace each time. Everything else is base's
// decision.
type noOrphanClients struct{ base sdktrace.Sampler }

func (s noOrphanClients) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	if p.Kind == trace.SpanKindClient && !trace.SpanContextFromContext(p.ParentContext).IsValid() {
		return sdktrace.SamplingResult{Decision: sdktrace.Drop}
	}
	return s.base.ShouldSample(p)
}

func (s noOrphanClients) Description() string {
	return "NoOrphanClients{" + s.base.Description() + "}"
}
