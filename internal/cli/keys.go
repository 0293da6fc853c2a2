package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agent"
)

const keysHelp = `Usage: nomad-bootstrapd keys rotate [-json] [-root DIR]

keys rotate replaces the two gossip encryption keys of the cluster with new
random keys, without restarting anything: the Nomad servers' (server.encrypt,
Nomad's serf keyring), then the agents' own (memberlist). Run it as root on a
Nomad server of the cluster, where the agent runs.

Through Nomad's own keyring API, as 'nomad operator gossip keyring' does by
hand, the server
  1. installs the new key on every Nomad server beside the old one, and
     waits until every server holds it;
  2. makes every server encrypt with the new key;
  3. removes the old key from every server, and waits until none holds it.
The keys and how far the rotation got are kept in a Nomad Variable only the
management token reads (nomad-bootstrapd/keys). A rotation cut short (the
agent stopped, a server unreachable) is finished by running the command
again, or by the CA holder at its next check, within a minute. Servers keep
gossiping throughout: each step leaves every server able to read the others.
A server that was down meanwhile is brought up to the new key by its own
agent when it comes back; a new server is given the keys before its Nomad
starts.

The agents' key rolls over the same way, in phases that the cluster state
records and every node follows: every node gets the new key (servers from a
Nomad Variable only the management token reads, nomad-bootstrapd/agent-keys,
the others from a server's CA port, 4651, where every server answers, sealed
to their identity key), then every node encrypts with it, then every node
drops the old one. The server waits for every alive member to announce each
step (at most a minute each). A node that was down meanwhile, or that joins
later, gets the key from the servers of its plan, or from port+1 of a -join
seed that is a server.
An evicted node, or one holding a client token that was rotated out, gets it
nowhere and can no longer gossip with the cluster.

The CA holder also rotates both keys every gossip_key_rotation (30 days by
default; 0 turns the schedule off). status shows each key's generation and
when it was rotated.

The server waits for each phase until every alive member took it, or a
minute: a member that did not get the key by then (the servers refuse it to
an evicted machine and to one holding a client token rotated out) is left
out, named on stderr, and can no longer gossip with the cluster; a machine
that could not reach a server gets the key when it asks again.

Exit code 0: every Nomad server holds its new key only, and every alive
member that got the agents' new key holds it only; 1: refused or failed (the
reason is printed; run it again to finish); 2: usage, or the agent cannot be
reached.
`

const keysExamples = `  nomad-bootstrapd keys rotate
  nomad-bootstrapd keys rotate -json | jq .generation`

func runKeys(args []string, stdout, stderr io.Writer) int {
	rest, code := subcommand(args, "rotate", keysHelp, keysExamples, stdout, stderr)
	if code >= 0 {
		return code
	}
	fs := newFlagSet("keys rotate", keysHelp, keysExamples, stderr)
	f := agentFlags(fs)
	if code := parseFlags(fs, rest); code >= 0 {
		return code
	}
	var ans agent.KeysAnswer
	if code := runCommand(f, "keys rotate", agent.KeysRotateRoute, agent.KeysRotateTimeout, agent.KeysRotateRequest{}, &ans, stdout, stderr); code >= 0 {
		return code
	}
	fmt.Fprintf(stdout, "%s Nomad's gossip key to generation %d; every Nomad server holds the new key only.\n", rotated(ans.Resumed), ans.Generation)
	fmt.Fprintf(stdout, "%s the agents' gossip key to generation %d; every alive member that got it holds the new key only.\n", rotated(ans.Agents.Resumed), ans.Agents.Generation)
	if n := len(ans.Agents.LeftOut); n > 0 {
		fmt.Fprintf(stderr, "%d members did not get the new key and no longer gossip with the cluster: %s. A machine the servers refuse (evicted, or holding a client token rotated out) never will; one that could not reach a server gets the key when it asks again.\n",
			n, strings.Join(ans.Agents.LeftOut, ", "))
	}
	fmt.Fprintf(stdout, "Cluster state version %d records both (rotated %s).\n", ans.Version, ans.Agents.RotatedAt.UTC().Format(time.RFC3339))
	return exitOK
}
