package cli

import (
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agent"
)

const snapshotHelp = `Usage: nomad-bootstrapd snapshot save [-json] [-root DIR] FILE
       nomad-bootstrapd snapshot restore [-other-cluster] [-json] [-root DIR] FILE

snapshot save writes a snapshot of the cluster to FILE, a new file: Nomad's
state (jobs, allocations, ACL policies and tokens, Variables, everything
Nomad keeps in Raft), streamed from Nomad's leader, together with what Raft
does not hold and a restore needs: this server's copy of Nomad's keyring
(the root keys Variables are encrypted with), the ACL management token, and
the agent's signed plan and cluster state. The file is written with mode 0600 and holds secrets: keep it
as you keep the server token. Run it as root on a Nomad server of the
cluster, where the agent runs.

Every server also saves a snapshot every snapshot_interval (1h by default;
0 turns the schedule off) into /var/lib/nomad-bootstrapd/snapshots/, keeping
the newest snapshot_retain (24 by default). status shows the last one.

snapshot restore puts a snapshot of this cluster back: it checks the whole
file first (its format, and Nomad's state against the digest recorded when
it was saved), saves the current state as a scheduled snapshot so that the
restore can itself be undone, adds root keys of the snapshot that this
server's keystore lacks (restarting this server's Nomad to load them), and
then replaces Nomad's state with the snapshot's. Everything Nomad changed
since the snapshot was taken is lost. This tool's own Variables (the cluster
state, the gossip keys) are put back as they were before the restore:
evictions and rotations made since the snapshot stand.

A snapshot of another cluster, such as the one a cluster built anew after
losing every server needs, is refused unless -other-cluster is given, on
the CA holder (status names it). Its ACL tokens then replace this
cluster's: the CA holder takes the snapshot's management token and hands it
to the other servers in their escrows, and every server sets its ACLs up
again with it. Tokens you made in the old cluster work again; tokens made
in this one since it was built do not.

Exit code 0: done; 1: refused or failed (the reason is printed); 2: usage,
or the agent cannot be reached.
`

const snapshotExamples = `  nomad-bootstrapd snapshot save /root/before-upgrade.snap
  nomad-bootstrapd snapshot restore /var/lib/nomad-bootstrapd/snapshots/nomad-bootstrapd-20261207T200000Z.snap
  nomad-bootstrapd snapshot save -json backup.snap | jq .size
  nomad-bootstrapd snapshot restore -other-cluster /root/old-cluster.snap`

func runSnapshot(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "-help" || args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, snapshotHelp, "\nExamples:\n", snapshotExamples, "\n")
		return exitOK
	}
	if len(args) == 0 || (args[0] != "save" && args[0] != "restore") {
		fmt.Fprint(stderr, snapshotHelp)
		return exitUsage
	}
	sub := args[0]
	what := "snapshot " + sub
	fs := newFlagSet(what, snapshotHelp, snapshotExamples, stderr)
	f := agentFlags(fs)
	other := new(bool)
	if sub == "restore" {
		other = fs.Bool("other-cluster", false, "restore a snapshot of another cluster, such as one built anew after losing every server: the snapshot's ACL tokens replace this cluster's (on the CA holder)")
	}
	given, code := parseWithArgs(fs, args[1:])
	if code >= 0 {
		return code
	}
	if len(given) != 1 {
		fmt.Fprintf(stderr, "%s: name exactly one snapshot file (got %d)\n", what, len(given))
		return exitUsage
	}
	file, err := filepath.Abs(given[0])
	if err != nil {
		fmt.Fprintf(stderr, "nomad-bootstrapd: %s: %v\n", what, err)
		return exitUsage
	}
	route := agent.SnapshotRoute
	if sub == "restore" {
		route = agent.SnapshotRestoreRoute
	}
	var ans agent.SnapshotAnswer
	if code := runCommand(f, what, route, agent.SnapshotTimeout, agent.SnapshotRequest{File: file, OtherCluster: *other}, &ans, stdout, stderr); code >= 0 {
		return code
	}
	taken := fmt.Sprintf("taken on %s at %s", ans.Node, ans.TakenAt.UTC().Format(time.RFC3339))
	if sub == "save" {
		fmt.Fprintf(stdout, "Saved a snapshot to %s, %s: Nomad's state (%d bytes) and %s of Nomad's keyring. The file holds secrets; keep it safe.\n",
			ans.File, taken, ans.Size, count(ans.Keys, "root key", "root keys"))
		return exitOK
	}
	if ans.Before != "" {
		fmt.Fprintf(stdout, "Saved the state before the restore to %s.\n", ans.Before)
	}
	if n := len(ans.KeysAdded); n > 0 {
		fmt.Fprintf(stdout, "Added %s of the snapshot to this server's keystore and restarted its Nomad.\n", count(n, "root key", "root keys"))
	}
	fmt.Fprintf(stdout, "Restored the snapshot %s, %s.\n", ans.File, taken)
	return exitOK
}

// count prints n with the singular or plural noun.
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
