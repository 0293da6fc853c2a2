// Package cli implements the nomad-bootstrapd command line: it parses flags,
// calls into the other packages and prints their results.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
)

// Version is the program's version, set at build time with
// -ldflags "-X github.com/nomad-bootstrapd/nomad-bootstrapd/internal/cli.Version=…".
var Version = "0.1.0-dev"

// NomadVersion is the Nomad version this release is built and tested with.
const NomadVersion = "1.6.3"

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	// exitEvicted ends an agent the cluster evicted; the unit does not
	// restart it (RestartPreventExitStatus=).
	exitEvicted = 3
)

// usage is the program's help: the commands, from the commands table.
func usage() string {
	return `Usage: nomad-bootstrapd <command> [flags]

nomad-bootstrapd runs on every machine of a Nomad cluster. The machines find
each other, elect three Nomad servers and a CA holder, issue certificates and
configure Nomad: no hand-written Nomad configuration is needed.

Commands:
` + commandUsage() + `
Run 'nomad-bootstrapd <command> -help' for a command's flags and examples.
`
}

// Run runs the command line args (without the program name) and returns the
// exit code.
func Run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "token":
		return runToken(rest, stdout, stderr)
	case "ca":
		return runCA(rest, stdout, stderr)
	case "agent":
		return runAgent(rest, stdout, stderr)
	case "join":
		return runJoin(rest, stdout, stderr)
	case "status":
		return runStatus(rest, stdout, stderr)
	case "node":
		return runNode(rest, stdout, stderr)
	case "keys":
		return runKeys(rest, stdout, stderr)
	case "snapshot":
		return runSnapshot(rest, stdout, stderr)
	case "recover":
		return runRecover(rest, stdout, stderr)
	case "upgrade":
		return runUpgrade(rest, stdout, stderr)
	case "demo":
		return runDemo(rest, stdout, stderr)
	case "completion":
		return runCompletion(rest, stdout, stderr)
	case "version", "-version", "--version":
		if len(rest) > 0 && (rest[0] == "-help" || rest[0] == "-h" || rest[0] == "--help") {
			fmt.Fprint(stdout, "Usage: nomad-bootstrapd version\n\nPrints the version of nomad-bootstrapd, the Go version it was built with and\nits platform.\n\nExamples:\n  nomad-bootstrapd version\n")
			return exitOK
		}
		fmt.Fprintf(stdout, "nomad-bootstrapd v%s (%s, %s/%s)\n", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "help", "-help", "--help", "-h":
		fmt.Fprint(stdout, usage())
		return exitOK
	default:
		fmt.Fprintf(stderr, "nomad-bootstrapd: unknown command %q\n\n%s", cmd, usage())
		return exitUsage
	}
}

// newFlagSet returns a FlagSet whose -help prints help, the flags and examples.
func newFlagSet(name, help, examples string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\n", strings.TrimSpace(help))
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintf(stderr, "\nFlags:\n")
			fs.PrintDefaults()
		}
		if examples != "" {
			fmt.Fprintf(stderr, "\nExamples:\n%s\n", strings.TrimRight(examples, "\n"))
		}
	}
	return fs
}

// parseFlags parses args and reports the exit code to return when parsing
// ended the command (-help or a bad flag), or -1 to go on.
func parseFlags(fs *flag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage
	}
	return -1
}

// newLogger returns the process's logger: text on stderr, without timestamps
// under systemd, whose journal adds its own.
func newLogger(w io.Writer, level string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if os.Getenv("JOURNAL_STREAM") != "" {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// subcommand checks that args start with the one subcommand a command has
// (token create, ca csr) and returns the arguments after it, or the exit
// code when -help was asked for or the subcommand is missing.
func subcommand(args []string, name, help, examples string, stdout, stderr io.Writer) ([]string, int) {
	if len(args) > 0 && args[0] == name {
		return args[1:], -1
	}
	if len(args) > 0 && (args[0] == "-help" || args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, help, "\nExamples:\n", examples, "\n")
		return nil, exitOK
	}
	fmt.Fprint(stderr, help)
	return nil, exitUsage
}

// loadToken reads the join token that cfg names, the server token or a
// client token, and parses it.
func loadToken(cfg *config.Config, warn func(string)) (certs.Credential, error) {
	text, err := cfg.ResolveToken(warn)
	if err != nil {
		return certs.Credential{}, err
	}
	return certs.ParseCredential(text)
}
