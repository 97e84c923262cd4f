// Command trafficmanager is the single binary of Traffic Manager: the api,
// resolver and worker processes, migrations, the dev stack and the CLI client.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/config"
	"github.com/trafficmanager/trafficmanager/observability"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(exitCode(err))
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "trafficmanager",
		Short:         "Multi-tenant routing control plane",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// An unknown or malformed flag is a usage error (exit 2), like a bad
	// value the commands check themselves.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr("%v", err) })
	root.AddCommand(
		newMigrateCmd(),
		newAPICmd(),
		newWorkerCmd(),
		newRoutesCmd(),
		newSplitsCmd(),
		newRolloutsCmd(),
		newMutationsCmd(),
		newTokensCmd(),
		newTenantsCmd(),
		newDevCmd(),
		newResolverCmd(),
		newAuditCmd(),
		newCheckCmd(),
		newVersionCmd(),
	)
	return root
}

// loadConfig reads TM_* variables; a bad one stops the process with one line each.
func loadConfig() (config.Config, error) {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		return cfg, fmt.Errorf("configuration:\n%w", err)
	}
	return cfg, nil
}

func newLogger(cfg config.Config) (*zap.Logger, error) {
	return observability.NewLogger(cfg.LogLevel, cfg.LogFormat)
}

// exitCode lets CLI errors choose their exit status.
func exitCode(err error) int {
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return 1
}
