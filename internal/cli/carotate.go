package cli

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agent"
)

const caRotateHelp = `Usage: nomad-bootstrapd ca rotate [-json] [-root DIR]
       nomad-bootstrapd ca rotate -cert FILE -key FILE -chain FILE [-json] [-root DIR]

ca rotate replaces the cluster CA with a new one while Nomad keeps running:
no process restarts, and no two nodes stop trusting each other's
certificates at any moment. Run it as root on the CA holder (status names
it), where the agent runs.

The CA holder makes a new CA (ECDSA P-256, five years), or takes the
intermediate of the operator's offline root that -cert, -key and -chain
name, and records each step
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

The CA holder also rotates the CA on its own once
ca_rotation_percent of its lifetime has passed (80 by default; 0 only on
command), and finishes a rotation cut short at its next check, within a
minute; status there shows the next rotation. While the CA holder is down
and another server signs in its place, the CA does not rotate.

A CA that is an intermediate of an operator's offline root is replaced only
with another intermediate: make its request with ca csr, sign it with the
root, copy the three files to the CA holder and give them to ca
rotate, which checks the chain up to the root and keeps the key (0600) in
its CA directory. Then point the ca block of every server at the new files:
an agent checks the intermediate the block names when it starts. The
schedule does not rotate an intermediate; status warns once its share of
the lifetime has passed.

Exit code 0: the new CA signs and every alive member announced that it
trusts it alone (others, named on stderr, catch up); 1: refused or failed
(the reason is printed; run it again to finish); 2: usage, or the agent
cannot be reached.
`

const caRotateExamples = `  nomad-bootstrapd ca rotate
  nomad-bootstrapd ca rotate -json | jq .fingerprint
  nomad-bootstrapd ca rotate -cert ca2/intermediate.pem -key ca2/intermediate-key.pem -chain root.pem`

// caRotateFiles are ca rotate's flags naming an intermediate.
type caRotateFiles struct{ cert, key, chain *string }

// caRotateFlags registers ca rotate's flags naming an intermediate.
func caRotateFlags(fs *flag.FlagSet) caRotateFiles {
	return caRotateFiles{
		cert:  fs.String("cert", "", "`file` of the new intermediate CA's certificate, signed by the offline root"),
		key:   fs.String("key", "", "`file` of the new intermediate's key"),
		chain: fs.String("chain", "", "`file` of the certificates above the intermediate, up to the root"),
	}
}

func runCARotate(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("ca rotate", caRotateHelp, caRotateExamples, stderr)
	f := agentFlags(fs)
	files := caRotateFlags(fs)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	req := agent.CARotateRequest{}
	for _, x := range []struct {
		flag, value string
		to          *string
	}{{"-cert", *files.cert, &req.CertFile}, {"-key", *files.key, &req.KeyFile}, {"-chain", *files.chain, &req.ChainFile}} {
		if x.value == "" {
			continue
		}
		abs, err := filepath.Abs(x.value)
		if err != nil {
			fmt.Fprintf(stderr, "nomad-bootstrapd: ca rotate %s: %v\n", x.flag, err)
			return exitUsage
		}
		*x.to = abs
	}
	if set := req.CertFile != "" || req.KeyFile != "" || req.ChainFile != ""; set && (req.CertFile == "" || req.KeyFile == "" || req.ChainFile == "") {
		fmt.Fprintln(stderr, "nomad-bootstrapd: ca rotate needs -cert, -key and -chain together, or none of them")
		return exitUsage
	}
	var ans agent.CAAnswer
	if code := runCommand(f, "ca rotate", agent.CARotateRoute, agent.CARotateTimeout, req, &ans, stdout, stderr); code >= 0 {
		return code
	}
	fmt.Fprintf(stdout, "%s the cluster CA to generation %d, %s (valid until %s).\n", rotated(ans.Resumed), ans.Generation, ans.Fingerprint, ans.NotAfter.UTC().Format(time.RFC3339))
	if n := len(ans.Lagging); n > 0 {
		fmt.Fprintf(stderr, "%d members did not yet announce that they trust the new CA alone: %s. Each takes the steps from the cluster state when it can; status on each shows its certificates.\n",
			n, strings.Join(ans.Lagging, ", "))
	}
	fmt.Fprintf(stdout, "Cluster state version %d records it (rotated %s).\n", ans.Version, ans.RotatedAt.UTC().Format(time.RFC3339))
	return exitOK
}
