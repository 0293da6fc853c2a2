package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agent"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
)

const caRotateHelp = `Usage: nomad-bootstrapd ca rotate [-json] [-root DIR]

ca rotate replaces the cluster CA with a new one while Nomad keeps running:
no process restarts, and no two nodes stop trusting each other's
certificates at any moment. Run it as root on the Nomad server that signs
certificates (the CA holder that status names), where the agent runs.

The CA holder makes a new CA (ECDSA P-256, five years) and records each step
in the cluster state, which every node follows:
  1. trust: every node's CA bundle holds both CAs, and Nomad is reloaded
     (SIGHUP, or systemctl reload); the old CA still signs;
  2. issue: the new CA signs, the other servers get its key in escrow, and
     every node renews its certificates from it and reloads Nomad;
  3. done: every node's bundle holds the new CA alone, and Nomad reloads.
The holder waits for every alive member to announce each step, at most a
minute each. A member that was down, or slow, takes the steps from the
cluster state when it is back; it is named on stderr. The new CA key is kept
in the CA directory beside the old one until it signs, so a rotation cut
short (the agent stopped) is finished by running the command again.

A CA that is an intermediate of an operator's offline root is not replaced
here: issue a new intermediate from the root (ca csr) and put it in the ca
block.

Exit code 0: the new CA signs and every alive member announced that it
trusts it alone (others, named on stderr, catch up); 1: refused or failed
(the reason is printed; run it again to finish); 2: usage, or the agent
cannot be reached.
`

const caRotateExamples = `  nomad-bootstrapd ca rotate
  nomad-bootstrapd ca rotate -json | jq .fingerprint`

func runCARotate(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("ca rotate", caRotateHelp, caRotateExamples, stderr)
	f := agentFlags(fs)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	// The agent's own bound, and a margin.
	ctx, cancel := context.WithTimeout(context.Background(), agent.CARotateTimeout+30*time.Second)
	defer cancel()
	var ans agent.CAAnswer
	if code := callAgent(ctx, paths.New(*f.root), "ca rotate", agent.CARotateRoute, agent.CARotateRequest{}, &ans, stderr); code >= 0 {
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
	fmt.Fprintf(stdout, "%s the cluster CA to generation %d, %s (valid until %s).\n", verb, ans.Generation, ans.Fingerprint, ans.NotAfter.UTC().Format(time.RFC3339))
	if n := len(ans.Lagging); n > 0 {
		fmt.Fprintf(stderr, "%d members did not yet announce that they trust the new CA alone: %s. Each takes the steps from the cluster state when it can; status on each shows its certificates.\n",
			n, strings.Join(ans.Lagging, ", "))
	}
	fmt.Fprintf(stdout, "Cluster state version %d records it (rotated %s).\n", ans.Version, ans.RotatedAt.UTC().Format(time.RFC3339))
	return exitOK
}
