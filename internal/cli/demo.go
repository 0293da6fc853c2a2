package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/demo"
)

const demoHelp = `Usage: nomad-bootstrapd demo [flags]

Runs a local cluster: N agents as separate processes, each on its own
loopback address (127.0.0.2, 127.0.0.3, ...) and its own directory under a
temporary directory. They gossip, elect the Nomad servers and a CA holder,
and the demo prints their progress and the final table. With a nomad binary
(-nomad, or the one 'make nomad' caches) every agent then runs a real Nomad
server or client with mTLS and ACLs. Ctrl-C stops every agent and removes
the directory.
`

const demoExamples = `  nomad-bootstrapd demo
  nomad-bootstrapd demo -nodes 10 -keep`

// demoOptions are demo's flags.
type demoOptions struct {
	nodes       *int
	base, nomad *string
	keep, once  *bool
	timeout     *time.Duration
}

func demoFlags(fs *flag.FlagSet) demoOptions {
	return demoOptions{
		nodes:   fs.Int("nodes", 5, "number of agents"),
		base:    fs.String("base", "127.0.0.2", "loopback `address` of the first agent; the others follow"),
		keep:    fs.Bool("keep", false, "keep the temporary directory (logs, state) on exit"),
		once:    fs.Bool("once", false, "exit once the agents agree instead of waiting for Ctrl-C"),
		timeout: fs.Duration("timeout", 0, "how long the agents may take to agree (default 60s, 180s with Nomad)"),
		nomad:   fs.String("nomad", defaultNomad(), "`path` of the nomad binary; empty runs the agents without Nomad"),
	}
}

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo", demoHelp, demoExamples, stderr)
	f := demoFlags(fs)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	nodes, base, keep, once, timeout, nomad := f.nodes, f.base, f.keep, f.once, f.timeout, f.nomad
	addr, err := netip.ParseAddr(*base)
	if err != nil {
		fmt.Fprintf(stderr, "nomad-bootstrapd: -base %q is not an IP address\n", *base)
		return exitUsage
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "nomad-bootstrapd: %v: %v\n", demo.ErrNoBinary, err)
		return exitError
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = demo.Run(ctx, demo.Options{Nodes: *nodes, Exe: exe, Base: addr, Keep: *keep, Once: *once, Timeout: *timeout, Out: stdout, Nomad: *nomad})
	if err != nil {
		fmt.Fprintf(stderr, "nomad-bootstrapd: %v\n", err)
		return exitError
	}
	return exitOK
}

// defaultNomad returns the nomad binary that `make nomad` caches, if any.
func defaultNomad() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	p := filepath.Join(home, ".cache", "nomad-bootstrapd", "nomad-v"+NomadVersion)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}
