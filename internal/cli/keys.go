package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agent"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
)

const keysHelp = `Usage: nomad-bootstrapd keys rotate [-json] [-root DIR]

keys rotate replaces the gossip encryption key of the Nomad servers
(server.encrypt, Nomad's serf keyring) with a new random key, without
restarting Nomad anywhere. Run it as root on a Nomad server of the cluster,
where the agent runs.

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

The CA holder also rotates the key every gossip_key_rotation (30 days by
default; 0 turns the schedule off). status shows the key's generation and
when it was rotated.

The agents' own gossip (memberlist) key is derived from the join token and
does not change with this command.

Exit code 0: every Nomad server holds the new key only; 1: refused or failed
(the reason is printed; run it again to finish); 2: usage, or the agent
cannot be reached.
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
	// Two waits of Timings.KeyWait at most, and the keyring calls.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var ans agent.KeysAnswer
	if code := callAgent(ctx, paths.New(*f.root), "keys rotate", agent.KeysRotateRoute, agent.KeysRotateRequest{}, &ans, stderr); code >= 0 {
		return code
	}
	if *f.json {
		printJSON(stdout, ans)
		return exitOK
	}
	verb := "Rotated"
	if ans.Resumed {
		verb = "Finished the rotation that was cut short:"
	}
	fmt.Fprintf(stdout, "%s Nomad's gossip key to generation %d; every Nomad server holds the new key only.\n", verb, ans.Generation)
	fmt.Fprintf(stdout, "Cluster state version %d records it (rotated %s).\n", ans.Version, ans.RotatedAt.UTC().Format(time.RFC3339))
	return exitOK
}
