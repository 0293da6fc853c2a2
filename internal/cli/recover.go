package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agent"
)

const recoverHelp = `Usage: nomad-bootstrapd recover [-confirm] [-json] [-root DIR]

recover brings a cluster back after it lost a majority of its Nomad servers
for good (machines destroyed, disks gone): the surviving servers can then
neither agree on replacements nor give Nomad a leader. Run it as root on a
surviving server, where the agent runs. Without -confirm it only prints
what it would do, and changes nothing.

With -confirm, the server
  1. writes Nomad's raft/peers.json naming itself alone and restarts its
     Nomad, as Nomad's outage recovery guide prescribes: it leads a cluster
     of one with all its data (jobs, ACL tokens, Variables);
  2. proposes a recovery plan that gives the lost servers' seats to live
     machines holding the server token; the new servers agree on it and
     sign it, each checking that it saw the lost servers down for
     server_replace_after, and their Nomad joins the first.
A step that is done already is skipped, so running it again finishes a
recovery cut short.

Use it only when the lost servers will not come back: a server that was
merely cut off and returns finds the cluster gone on without it. Take a
snapshot first if Nomad still answers (snapshot save).

Exit code 0: recovered, or the dry run printed; 1: refused or failed (the
reason is printed; a majority of the servers alive, servers down for less
than server_replace_after, or too few machines holding the server token to
take the seats); 2: usage, or the agent cannot be reached.
`

const recoverExamples = `  nomad-bootstrapd recover
  nomad-bootstrapd recover -confirm`

func runRecover(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("recover", recoverHelp, recoverExamples, stderr)
	f := agentFlags(fs)
	confirm := fs.Bool("confirm", false, "carry the recovery out; without it, only print what it would do")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	var ans agent.RecoverAnswer
	if code := runCommand(f, "recover", agent.RecoverRoute, agent.RecoverTimeout, agent.RecoverRequest{Confirm: *confirm}, &ans, stdout, stderr); code >= 0 {
		return code
	}
	verb := map[bool]string{false: "Would", true: "Did"}[ans.Done]
	if len(ans.Lost) > 0 {
		fmt.Fprintf(stdout, "Lost servers: %s.\n", strings.Join(ans.Lost, ", "))
	}
	for _, p := range ans.Peers {
		fmt.Fprintf(stdout, "%s write Nomad's raft/peers.json naming this server alone (%s, %s) and restart Nomad.\n", verb, p.ID, p.Address)
	}
	if ans.Epoch > 0 {
		fmt.Fprintf(stdout, "%s commit recovery plan epoch %d with the servers %s.\n", verb, ans.Epoch, strings.Join(ans.Servers, ", "))
	}
	if !ans.Done {
		fmt.Fprintln(stdout, "Nothing was changed. Run it again with -confirm once the lost servers are gone for good.")
		return exitOK
	}
	fmt.Fprintf(stdout, "Nomad's leader is %s.\n", ans.Leader)
	return exitOK
}
