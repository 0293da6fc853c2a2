package cli

import (
	"cmp"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agent"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/clusterstate"
)

const upgradeHelp = `Usage: nomad-bootstrapd upgrade nomad [-batch N] [-drain-deadline D] [-node-timeout D] [-json] [-root DIR] VERSION
       nomad-bootstrapd upgrade status [-json] [-root DIR]

upgrade nomad rolls every node of the cluster onto Nomad VERSION, one node
at a time, without a person: it records the version in the cluster state,
and the server whose Nomad leads takes the roll step by step.
  1. The servers, one at a time, the leader last: each installs VERSION and
     restarts Nomad, and the next begins only once autopilot reports every
     server healthy and the upgraded one has caught up with the leader's
     Raft log.
  2. The clients, pool by pool, -batch at a time: each batch is drained
     first (its allocations move to other clients; -drain-deadline bounds
     the drain, then Nomad stops what is left), installs VERSION, restarts
     Nomad, and is made eligible again once Nomad sees it ready.
A client that is down during the roll, or a node that joins while it runs,
installs VERSION when it starts Nomad. A node that does not come back
healthy within -node-timeout, or a drain that overruns its deadline by 2
minutes, stops the roll; status and upgrade status show why. Start it again with the same
command once the cause is fixed.

Each node installs VERSION with the system's package manager (apt-get
install nomad=VERSION-*, or dnf) under systemd, or, with supervise =
"process", takes nomad_dir/nomad-VERSION. Run it as root on a Nomad server,
where the agent runs; that server checks first that it can install VERSION.
A downgrade, and a Nomad newer than the lines this release configures, are
refused. Take a snapshot first (snapshot save).

upgrade status shows the roll: its stage, the nodes of its turn, what it
waits for, the first failure, and every node's Nomad version (on a server).

Exit code 0: started, under way already, or every node runs VERSION
already; for status, shown; 1: refused or failed (the reason is printed);
2: usage, or the agent cannot be reached.
`

const upgradeExamples = `  nomad-bootstrapd snapshot save /root/before-upgrade.snap
  nomad-bootstrapd upgrade nomad 1.6.3
  nomad-bootstrapd upgrade nomad -batch 2 -drain-deadline 10m 1.6.3
  nomad-bootstrapd upgrade status
  nomad-bootstrapd upgrade status -json | jq .upgrade.stage`

// upgradeFlags registers upgrade nomad's own flags.
func upgradeFlags(fs *flag.FlagSet) (batch *int, deadline, nodeTimeout *time.Duration) {
	batch = fs.Int("batch", 1, fmt.Sprintf("how many clients of one pool are drained and upgraded at once (1 to %d)", clusterstate.MaxUpgradeBatch))
	deadline = fs.Duration("drain-deadline", agent.DefaultDrainDeadline, "how long a client's drain may take before Nomad stops its remaining allocations")
	nodeTimeout = fs.Duration("node-timeout", agent.DefaultNodeTimeout, fmt.Sprintf("how long a node may take to run the new version healthy before the roll stops (at least %s)", agent.MinNodeTimeout))
	return batch, deadline, nodeTimeout
}

func runUpgrade(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "-help" || args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, upgradeHelp, "\nExamples:\n", upgradeExamples, "\n")
		return exitOK
	}
	if len(args) == 0 || (args[0] != "nomad" && args[0] != "status") {
		fmt.Fprint(stderr, upgradeHelp)
		return exitUsage
	}
	sub := args[0]
	what := "upgrade " + sub
	fs := newFlagSet(what, upgradeHelp, upgradeExamples, stderr)
	f := agentFlags(fs)
	var batch *int
	var deadline, nodeTimeout *time.Duration
	if sub == "nomad" {
		batch, deadline, nodeTimeout = upgradeFlags(fs)
	}
	given, code := parseWithArgs(fs, args[1:])
	if code >= 0 {
		return code
	}
	var ans agent.UpgradeAnswer
	if sub == "status" {
		if len(given) != 0 {
			fmt.Fprintf(stderr, "%s takes no arguments (got %q)\n", what, given)
			return exitUsage
		}
		if code := runCommand(f, what, agent.UpgradeStatusRoute, agent.UpgradeTimeout, struct{}{}, &ans, stdout, stderr); code >= 0 {
			return code
		}
		printUpgrade(stdout, ans)
		return exitOK
	}
	if len(given) != 1 {
		fmt.Fprintf(stderr, "%s: name exactly one Nomad version, such as 1.6.3 (got %d arguments)\n", what, len(given))
		return exitUsage
	}
	req := agent.UpgradeRequest{Version: given[0], Batch: *batch, DrainDeadline: *deadline, NodeTimeout: *nodeTimeout}
	if code := runCommand(f, what, agent.UpgradeRoute, agent.UpgradeTimeout, req, &ans, stdout, stderr); code >= 0 {
		return code
	}
	switch {
	case ans.Current:
		fmt.Fprintf(stdout, "Every node runs Nomad %s already; nothing to upgrade.\n", strings.TrimPrefix(given[0], "v"))
		return exitOK
	case ans.Started:
		fmt.Fprintf(stdout, "Started the rolling upgrade to Nomad %s. Follow it with: nomad-bootstrapd upgrade status\n", ans.Upgrade.Version)
	default:
		fmt.Fprintf(stdout, "The rolling upgrade to Nomad %s is under way already.\n", ans.Upgrade.Version)
	}
	printUpgrade(stdout, ans)
	return exitOK
}

// printUpgrade prints a roll and the nodes' versions.
func printUpgrade(w io.Writer, ans agent.UpgradeAnswer) {
	u := ans.Upgrade
	if u.Version == "" {
		fmt.Fprintln(w, "No Nomad upgrade has been started in this cluster.")
	} else {
		fmt.Fprintf(w, "Upgrade to Nomad %s: %s\n", u.Version, upgradeSummary(u, ans.Turn))
		fmt.Fprintf(w, "  started %s, %d nodes upgraded", u.StartedAt.UTC().Format(time.RFC3339), u.Upgraded)
		if !u.FinishedAt.IsZero() {
			fmt.Fprintf(w, ", ended %s", u.FinishedAt.UTC().Format(time.RFC3339))
		}
		fmt.Fprintln(w)
		if ans.Wait != "" {
			fmt.Fprintf(w, "  %s\n", ans.Wait)
		}
	}
	if len(ans.Nodes) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tPOOL\tNOMAD\t")
	for _, n := range ans.Nodes {
		mark := ""
		if n.Turn {
			mark = "(upgrading)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.Name, n.Role, cmp.Or(n.Pool, "-"), cmp.Or(n.Version, "down"), mark)
	}
	tw.Flush()
}

// upgradeSummary says in a few words where a roll stands.
func upgradeSummary(u clusterstate.NomadUpgrade, turn []string) string {
	switch u.Stage {
	case clusterstate.UpgradeDone:
		return "done"
	case clusterstate.UpgradeFailed:
		return "stopped: " + u.Failure
	}
	s := "upgrading the " + u.Stage
	if len(turn) > 0 {
		verb := "installing on"
		if u.Step == clusterstate.TurnDrain {
			verb = "draining"
		}
		s += ", " + verb + " " + strings.Join(turn, ", ")
	}
	return s
}
