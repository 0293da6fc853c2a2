package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agent"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/metrics"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/systemd"
)

const agentHelp = `Usage: nomad-bootstrapd agent [flags]

Runs the agent on this machine. It gossips with the seeds given by -join,
takes part in electing the Nomad servers and the CA holder, and keeps
running to serve the cluster. Settings come from the built-in defaults, then
the configuration file, then the environment (` + config.TokenEnv + `), then
flags.
`

const agentExamples = `  # the first machines of a cluster, all with the same seeds
  nomad-bootstrapd agent -token-file /etc/nomad-bootstrapd/token -join 10.0.0.5,10.0.0.6
  # a machine that must be a client in the batch pool of zone b
  nomad-bootstrapd agent -token-file /etc/nomad-bootstrapd/token -join 10.0.0.5 -role client -pool batch -zone b
  # advertise the address of eth1, whatever it is
  nomad-bootstrapd agent -advertise '{{ GetInterfaceIP "eth1" }}' -join 10.0.0.5`

// loadAgentConfig parses the agent flags and merges every configuration layer.
func loadAgentConfig(name string, args []string, stderr io.Writer) (config.Config, *config.Flags, int) {
	fs := newFlagSet(name, agentHelp, agentExamples, stderr)
	flags := config.RegisterFlags(fs)
	if code := parseFlags(fs, args); code >= 0 {
		return config.Config{}, nil, code
	}
	path, required := flags.ConfigFile, flags.ConfigFile != ""
	if !required {
		path = paths.New(flags.Root).ConfigFile()
	}
	file, err := config.ReadFile(path, required)
	if err != nil {
		fmt.Fprintf(stderr, "nomad-bootstrapd: %v\n", err)
		return config.Default(), nil, exitError
	}
	cfg := config.Merge(config.Defaults(), file, config.Env(os.Getenv), flags.Layer())
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "nomad-bootstrapd: invalid configuration:\n  %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return cfg, nil, exitError
	}
	return cfg, flags, -1
}

func runAgent(args []string, stdout, stderr io.Writer) int {
	cfg, flags, code := loadAgentConfig("agent", args, stderr)
	if code >= 0 {
		return code
	}
	log := newLogger(stderr, cfg.LogLevel)
	token, err := loadToken(&cfg, func(w string) { log.Warn(w) })
	if err != nil {
		fmt.Fprintf(stderr, "nomad-bootstrapd: %v\n", err)
		return exitError
	}
	a, err := agent.New(agent.Options{Config: cfg, Credential: token, Root: flags.Root, Logger: log, Version: Version, DryRun: flags.DryRun})
	if err != nil {
		fmt.Fprintf(stderr, "nomad-bootstrapd: %v\n", err)
		if errors.Is(err, agent.ErrEvicted) {
			return exitEvicted
		}
		return exitError
	}
	if flags.DryRun {
		out, err := a.DryRun()
		if err != nil {
			fmt.Fprintf(stderr, "nomad-bootstrapd: %v\n", err)
			return exitError
		}
		fmt.Fprint(stdout, out)
		return exitOK
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go logHangups(ctx, hup, log)
	if cfg.MetricsAddr != "" {
		m, err := metrics.Listen(cfg.MetricsAddr, a)
		if err != nil {
			fmt.Fprintf(stderr, "nomad-bootstrapd: %v\n", err)
			return exitError
		}
		defer m.Close()
		log.Info("metrics endpoint listening", "address", "http://"+m.Addr()+metrics.Path)
	}
	if err := a.Start(); err != nil {
		fmt.Fprintf(stderr, "nomad-bootstrapd: %v\n", err)
		return exitError
	}
	// Under systemd (Type=notify): ready once the control socket answers.
	if _, err := systemd.Notify(systemd.Ready); err != nil {
		log.Warn("telling systemd the agent is ready", "error", err)
	}
	defer systemd.Notify(systemd.Stopping)
	if err := a.Run(ctx); err != nil {
		log.Error("agent failed", slog.Any("error", err))
		if errors.Is(err, agent.ErrEvicted) {
			return exitEvicted
		}
		return exitError
	}
	return exitOK
}

// logHangups logs each SIGHUP on hup until ctx ends. The agent reads its
// configuration only at start, so SIGHUP, which would otherwise end it
// (a closed terminal, `kill -HUP` meant as a reload), changes nothing.
func logHangups(ctx context.Context, hup <-chan os.Signal, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			log.Warn("SIGHUP ignored: nomad-bootstrapd reads its configuration at start; restart it to apply a change")
		}
	}
}
