// Package resilience is the thin layer over failsafe-go that every process
// uses for calls made outside Temporal's own retries: a circuit breaker per
// dependency, bulkheads per kind of operation, one retry budget, timeouts,
// and the /health/resilience report with the same figures as Prometheus
// metrics.
package resilience

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/budget"
	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/failsafe-go/failsafe-go/timeout"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// ErrUnavailable wraps every refusal by a policy (open breaker, full
// bulkhead, exhausted budget, timeout): the API answers 503.
var ErrUnavailable = errors.New("dependency unavailable")

// Options configure a Registry.
type Options struct {
	// IsFailure says whether an error counts against a breaker; domain
	// answers such as "not found" must not. Default: any error but a
	// canceled context.
	IsFailure func(error) bool
	// BreakerFailures opens a breaker after this many consecutive failures
	// (default 5); it half-opens after BreakerDelay (default 5s).
	BreakerFailures uint
	BreakerDelay    time.Duration
	// RetryBudget caps retries to this fraction of in-flight calls
	// (default 0.2); at least MinRetries may run concurrently (default 2).
	RetryBudget float64
	MinRetries  uint
	Log         *zap.Logger
}

// Registry owns the policies of one process.
type Registry struct {
	o         Options
	mu        sync.Mutex
	breakers  map[string]circuitbreaker.CircuitBreaker[any]
	bulkheads map[string]*Bulkhead
	budget    budget.Budget
	m         metrics
}

type metrics struct {
	breakerState   *prometheus.GaugeVec
	breakerCalls   *prometheus.CounterVec
	bulkheadInUse  *prometheus.GaugeVec
	bulkheadMax    *prometheus.GaugeVec
	bulkheadReject *prometheus.CounterVec
	retries        prometheus.Counter
	budgetExceeded prometheus.Counter
}

// New returns a registry whose metrics are registered on reg.
func New(reg prometheus.Registerer, o Options) *Registry {
	if o.IsFailure == nil {
		o.IsFailure = func(err error) bool { return err != nil && !errors.Is(err, context.Canceled) }
	}
	if o.BreakerFailures == 0 {
		o.BreakerFailures = 5
	}
	if o.BreakerDelay == 0 {
		o.BreakerDelay = 5 * time.Second
	}
	if o.RetryBudget == 0 {
		o.RetryBudget = 0.2
	}
	if o.MinRetries == 0 {
		o.MinRetries = 2
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	r := &Registry{o: o, breakers: map[string]circuitbreaker.CircuitBreaker[any]{}, bulkheads: map[string]*Bulkhead{}}
	r.m = metrics{
		breakerState:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "resilience_breaker_state", Help: "Circuit breaker state: 0 closed, 1 half-open, 2 open."}, []string{"breaker"}),
		breakerCalls:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "resilience_breaker_calls_total", Help: "Calls through a breaker by outcome (success, failure, rejected)."}, []string{"breaker", "outcome"}),
		bulkheadInUse:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "resilience_bulkhead_in_use", Help: "Permits held in a bulkhead."}, []string{"bulkhead"}),
		bulkheadMax:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "resilience_bulkhead_max", Help: "Bulkhead size."}, []string{"bulkhead"}),
		bulkheadReject: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "resilience_bulkhead_rejected_total", Help: "Calls refused by a full bulkhead."}, []string{"bulkhead"}),
		retries:        prometheus.NewCounter(prometheus.CounterOpts{Name: "resilience_retries_total", Help: "Retries made within the retry budget."}),
		budgetExceeded: prometheus.NewCounter(prometheus.CounterOpts{Name: "resilience_retry_budget_exceeded_total", Help: "Retries refused by the retry budget."}),
	}
	reg.MustRegister(r.m.breakerState, r.m.breakerCalls, r.m.bulkheadInUse, r.m.bulkheadMax, r.m.bulkheadReject, r.m.retries, r.m.budgetExceeded)
	r.budget = budget.NewBuilder().WithMaxRate(o.RetryBudget).WithMinConcurrency(o.MinRetries).
		OnBudgetExceeded(func(budget.ExceededEvent) { r.m.budgetExceeded.Inc() }).Build()
	return r
}

// Breaker returns the circuit breaker of a dependency, creating it once.
func (r *Registry) Breaker(name string) circuitbreaker.CircuitBreaker[any] {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cb, ok := r.breakers[name]; ok {
		return cb
	}
	cb := circuitbreaker.NewBuilder[any]().
		HandleIf(func(_ any, err error) bool { return r.o.IsFailure(err) }).
		WithFailureThreshold(r.o.BreakerFailures).
		WithSuccessThreshold(1).
		WithDelay(r.o.BreakerDelay).
		OnStateChanged(func(e circuitbreaker.StateChangedEvent) {
			r.o.Log.Warn("circuit breaker state changed", zap.String("breaker", name), zap.Stringer("from", e.OldState), zap.Stringer("to", e.NewState))
			r.m.breakerState.WithLabelValues(name).Set(stateValue(e.NewState))
		}).
		OnSuccess(func(failsafe.ExecutionEvent[any]) { r.m.breakerCalls.WithLabelValues(name, "success").Inc() }).
		OnFailure(func(failsafe.ExecutionEvent[any]) { r.m.breakerCalls.WithLabelValues(name, "failure").Inc() }).
		Build()
	r.m.breakerState.WithLabelValues(name).Set(0)
	for _, outcome := range []string{"success", "failure", "rejected"} {
		r.m.breakerCalls.WithLabelValues(name, outcome).Add(0)
	}
	r.breakers[name] = cb
	return cb
}

func stateValue(s circuitbreaker.State) float64 {
	switch s {
	case circuitbreaker.HalfOpenState:
		return 1
	case circuitbreaker.OpenState:
		return 2
	}
	return 0
}

// Bulkhead is a named concurrency limit with a short wait for a permit.
type Bulkhead struct {
	name string
	max  uint
	wait time.Duration
	bh   bulkhead.Bulkhead[any]
	r    *Registry
}

// Bulkhead returns the named bulkhead, creating it with max permits and a
// wait of at most wait for one.
func (r *Registry) Bulkhead(name string, max uint, wait time.Duration) *Bulkhead {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.bulkheads[name]; ok {
		return b
	}
	b := &Bulkhead{name: name, max: max, wait: wait, bh: bulkhead.NewBuilder[any](max).WithMaxWaitTime(wait).Build(), r: r}
	r.m.bulkheadMax.WithLabelValues(name).Set(float64(max))
	// Every series exists from the start (a dashboard's rate() of a counter
	// that appears at its first increment misses that increment).
	r.m.bulkheadInUse.WithLabelValues(name).Add(0)
	r.m.bulkheadReject.WithLabelValues(name).Add(0)
	r.bulkheads[name] = b
	return b
}

// Enter takes a permit (waiting at most the bulkhead's wait) and returns the
// function that gives it back, or ErrUnavailable.
func (b *Bulkhead) Enter(ctx context.Context) (func(), error) {
	if err := b.bh.AcquirePermitWithMaxWait(ctx, b.wait); err != nil {
		b.r.m.bulkheadReject.WithLabelValues(b.name).Inc()
		return nil, fmt.Errorf("%w: %s bulkhead full (%d in flight)", ErrUnavailable, b.name, b.max)
	}
	g := b.r.m.bulkheadInUse.WithLabelValues(b.name)
	g.Inc()
	return func() { g.Dec(); b.bh.ReleasePermit() }, nil
}

// Call describes one guarded call.
type Call struct {
	Dependency string        // breaker name: postgres, mongodb, redis, temporal
	Bulkhead   *Bulkhead     // optional
	Timeout    time.Duration // per attempt; 0 = none
	Retries    int           // extra attempts for transient failures, within the budget
}

// Do runs fn under the call's policies. Refusals and timeouts come back
// wrapped in ErrUnavailable; fn's own errors come back as they are.
func Do[T any](ctx context.Context, r *Registry, c Call, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	if c.Bulkhead != nil {
		release, err := c.Bulkhead.Enter(ctx)
		if err != nil {
			return zero, err
		}
		defer release()
	}
	cb := r.Breaker(c.Dependency)
	policies := []failsafe.Policy[any]{}
	if c.Retries > 0 {
		policies = append(policies, retrypolicy.NewBuilder[any]().
			HandleIf(func(_ any, err error) bool { return r.o.IsFailure(err) && !errors.Is(err, circuitbreaker.ErrOpen) }).
			WithMaxRetries(c.Retries).
			WithBackoff(20*time.Millisecond, 200*time.Millisecond).
			WithBudget(r.budget).
			OnRetry(func(failsafe.ExecutionEvent[any]) { r.m.retries.Inc() }).
			ReturnLastFailure().
			Build())
	}
	policies = append(policies, cb)
	if c.Timeout > 0 {
		policies = append(policies, timeout.New[any](c.Timeout))
	}
	v, err := failsafe.With(policies...).WithContext(ctx).GetWithExecution(func(exec failsafe.Execution[any]) (any, error) {
		return fn(exec.Context())
	})
	switch {
	case errors.Is(err, circuitbreaker.ErrOpen):
		r.m.breakerCalls.WithLabelValues(c.Dependency, "rejected").Inc()
		return zero, fmt.Errorf("%w: %s circuit open", ErrUnavailable, c.Dependency)
	case errors.Is(err, timeout.ErrExceeded):
		return zero, fmt.Errorf("%w: %s timed out after %s", ErrUnavailable, c.Dependency, c.Timeout)
	case errors.Is(err, budget.ErrExceeded):
		return zero, fmt.Errorf("%w: retry budget exceeded", ErrUnavailable)
	case err != nil:
		return zero, err
	}
	t, _ := v.(T)
	return t, nil
}

// BreakerStatus is one breaker in the report.
type BreakerStatus struct {
	State      string `json:"state"`
	Successes  uint   `json:"successes"`
	Failures   uint   `json:"failures"`
	Executions uint   `json:"executions"`
}

// BulkheadStatus is one bulkhead in the report.
type BulkheadStatus struct {
	Max  uint   `json:"max_concurrency"`
	Wait string `json:"max_wait"`
}

// BudgetStatus is the retry budget in the report.
type BudgetStatus struct {
	MaxRate     float64 `json:"max_rate"`
	MinRetries  uint    `json:"min_concurrent_retries"`
	CurrentRate float64 `json:"current_rate"`
}

// Status is the /health/resilience document.
type Status struct {
	CircuitBreakers map[string]BreakerStatus  `json:"circuit_breakers"`
	RetryBudget     BudgetStatus              `json:"retry_budget"`
	Bulkheads       map[string]BulkheadStatus `json:"bulkheads"`
}

// Status reports every breaker, bulkhead and the budget.
func (r *Registry) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Status{CircuitBreakers: map[string]BreakerStatus{}, Bulkheads: map[string]BulkheadStatus{},
		RetryBudget: BudgetStatus{MaxRate: r.o.RetryBudget, MinRetries: r.o.MinRetries, CurrentRate: r.budget.Rate()}}
	for name, cb := range r.breakers {
		m := cb.Metrics()
		s.CircuitBreakers[name] = BreakerStatus{State: cb.State().String(), Successes: m.Successes(), Failures: m.Failures(), Executions: m.Executions()}
	}
	for name, b := range r.bulkheads {
		s.Bulkheads[name] = BulkheadStatus{Max: b.max, Wait: b.wait.String()}
	}
	return s
}

// Names lists the breakers, sorted (for logs and tests).
func (r *Registry) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for n := range r.breakers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
