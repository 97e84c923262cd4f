package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/config"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/observability/temporalmetrics"
)

// maxDevInstances bounds `dev --workers` and `--resolvers`.
const maxDevInstances = 16

// devInstance is one worker or resolver `dev` runs in its process.
type devInstance struct {
	id   string // worker-1, resolver-2
	addr string // its listener: /metrics and health (the resolver's API too)
}

// devInstances are the worker and resolver instances of one dev stack.
type devInstances struct {
	workers, resolvers []devInstance
}

// planDevInstances places n workers and r resolvers: the first of each on
// TM_WORKER_ADDR / TM_RESOLVER_ADDR, the i-th (from 0) on that port + 100·i
// (8082, 8182, 8282…; 8081, 8181…), so every instance keeps its address
// across restarts and the two kinds never meet.
func planDevInstances(cfg config.Config, workers, resolvers int) (devInstances, error) {
	w, err := planInstances("worker", "TM_WORKER_ADDR", cfg.WorkerAddr, workers)
	if err != nil {
		return devInstances{}, err
	}
	r, err := planInstances("resolver", "TM_RESOLVER_ADDR", cfg.ResolverAddr, resolvers)
	if err != nil {
		return devInstances{}, err
	}
	return devInstances{workers: w, resolvers: r}, nil
}

func planInstances(kind, envVar, base string, n int) ([]devInstance, error) {
	if n < 1 || n > maxDevInstances {
		return nil, fmt.Errorf("--%ss %d: want 1 to %d", kind, n, maxDevInstances)
	}
	host, portStr, err := net.SplitHostPort(base)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", envVar, base, err)
	}
	port, err := strconv.Atoi(portStr)
	if n > 1 && (err != nil || port == 0 || port+100*(n-1) > 65535) {
		return nil, fmt.Errorf("--%ss %d: %s %q needs a fixed port that leaves room for +100 per instance", kind, n, envVar, base)
	}
	out := make([]devInstance, n)
	for i := range out {
		addr := base
		if i > 0 {
			addr = net.JoinHostPort(host, strconv.Itoa(port+100*i))
		}
		out[i] = devInstance{id: fmt.Sprintf("%s-%d", kind, i+1), addr: addr}
	}
	return out, nil
}

// urls lists the instances' base URLs plus suffix, comma-separated.
func urls(insts []devInstance, suffix string) string {
	var u []string
	for _, in := range insts {
		u = append(u, "http://"+in.addr+suffix)
	}
	return strings.Join(u, ",")
}

// readyPart is "resolver URL" for one instance, "resolvers URL,URL" for more.
func readyPart(kind string, insts []devInstance, suffix string) string {
	if len(insts) > 1 {
		kind += "s"
	}
	return kind + " " + urls(insts, suffix)
}

// instanceLogger names the instance in its log lines when there are several.
func instanceLogger(log *zap.Logger, insts []devInstance, in devInstance) *zap.Logger {
	if len(insts) == 1 {
		return log
	}
	return log.With(zap.String("instance", in.id))
}

// workerClient gives a worker instance a Temporal client on the shared
// connection whose SDK metrics go to reg (the instance's /metrics). With
// several instances it also has an identity of its own
// (pid@host@worker-N), so the Temporal UI and workflow histories tell them
// apart; a single worker keeps the SDK's default identity. The caller
// closes it.
func workerClient(ctx context.Context, tc client.Client, cfg config.Config, log *zap.Logger, reg prometheus.Registerer, insts []devInstance, in devInstance) (client.Client, error) {
	o := client.Options{
		Namespace: cfg.TemporalNamespace,
		Logger:    observability.NewTemporalLogger(log.Named("temporal")),
	}
	if len(insts) > 1 {
		host, _ := os.Hostname()
		o.Identity = fmt.Sprintf("%d@%s@%s", os.Getpid(), host, in.id)
	}
	h, err := temporalmetrics.NewHandler(reg, log)
	if err != nil {
		return nil, err
	}
	o.MetricsHandler = h
	if o.Interceptors, err = temporalInterceptors(); err != nil { // traces on: as dialTemporal's
		return nil, err
	}
	return client.NewClientFromExistingWithContext(ctx, tc, o)
}
