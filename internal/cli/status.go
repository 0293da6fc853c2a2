package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/statusview"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/systemd"
)

const statusHelp = `Usage: nomad-bootstrapd status [-json] [-root DIR]

Shows this node (name, ID, address, role, pool, zone), its phase and why it
waits or is degraded, the committed plan (epoch, servers, CA holder), the
certificates and when they expire, how Nomad runs, Nomad's leader, raft
peers, autopilot health, clients ready per pool and the ACL state, the
warnings and the gossip members, as the local agent sees them.

When the agent is not running, status shows what the agent left on disk
(the node, the committed plan, the certificates), says how to start the
agent, and exits 2.

Colours are used only on a terminal, and never with -no-color or when
NO_COLOR is set.

Exit code 0: healthy (Nomad runs in its role, nothing to warn about);
1: degraded or not running yet; 2: the agent cannot be reached.
`

const statusExamples = `  nomad-bootstrapd status
  nomad-bootstrapd status -json | jq .plan.servers
  nomad-bootstrapd status >/dev/null || echo "not healthy yet"`

// statusOptions are status's flags.
type statusOptions struct {
	json, noColor *bool
	root, config  *string
}

func statusFlags(fs *flag.FlagSet) statusOptions {
	return statusOptions{
		json:    fs.Bool("json", false, "print one JSON object"),
		root:    fs.String("root", "/", "`dir`ectory every path is relative to"),
		config:  fs.String("config", "", "agent configuration `file`, read when the agent is not running (default <root>/etc/nomad-bootstrapd/config.hcl)"),
		noColor: fs.Bool("no-color", false, "never use colours"),
	}
}

func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("status", statusHelp, statusExamples, stderr)
	f := statusFlags(fs)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	asJSON, root, configFile, noColor := f.json, f.root, f.config, f.noColor
	p := paths.New(*root)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := status.Query(ctx, p.Socket())
	code := exitError
	switch {
	case err == nil:
		if s.Healthy() {
			code = exitOK
		}
	case errors.Is(err, status.ErrAgentDown):
		s = persistedStatus(p, *root, *configFile, stderr)
		fmt.Fprintf(stderr, "nomad-bootstrapd: the agent is not running (%v)\nstart it with: %s\n", err, startHint(*root))
		code = exitUsage
	default:
		fmt.Fprintf(stderr, "nomad-bootstrapd: %v\n", err)
		return exitUsage
	}
	if *asJSON {
		statusview.JSON(stdout, s)
	} else {
		statusview.Table(stdout, s, statusview.Options{Color: useColor(stdout, *noColor)})
	}
	return code
}

// persistedStatus reads what a stopped agent left under p, with the
// node's configuration for what the files do not say.
func persistedStatus(p paths.Paths, root, configFile string, stderr io.Writer) status.Status {
	path, required := configFile, configFile != ""
	if !required {
		path = p.ConfigFile()
	}
	file, err := config.ReadFile(path, required)
	if err != nil {
		fmt.Fprintf(stderr, "nomad-bootstrapd: %v\n", err)
	}
	cfg := config.Merge(config.Defaults(), file)
	s := status.Persisted(p, cfg, startHint(root))
	if p.Root == "/" && cfg.Supervise == config.SuperviseSystemd {
		addUnitStates(&s)
	}
	return s
}

// addUnitStates adds what systemd says of the two units to a stopped
// agent's status, when systemd answers within two seconds.
func addUnitStates(s *status.Status) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	m, err := systemd.Connect(ctx)
	if err != nil {
		return
	}
	defer m.Close()
	if active, sub, enabled, err := m.State(ctx, systemd.AgentService); err == nil {
		s.Reason = fmt.Sprintf("%s is %s/%s (%s); %s", systemd.AgentService, active, sub, enabled, s.Reason)
	}
	if active, sub, _, err := m.State(ctx, systemd.NomadService); err == nil {
		s.Nomad = &status.NomadStatus{Unit: fmt.Sprintf("%s (%s/%s)", systemd.NomadService, active, sub), Peers: []string{}}
	}
}

// startHint says how to start the agent of root.
func startHint(root string) string {
	if paths.New(root).Root == "/" {
		return "systemctl start nomad-bootstrapd"
	}
	return fmt.Sprintf("nomad-bootstrapd agent -root %s [flags]", root)
}

// useColor reports whether w is a terminal that colours may be sent to.
func useColor(w io.Writer, never bool) bool {
	if never || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
