package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agent"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

const nodeHelp = `Usage: nomad-bootstrapd node evict [-json] [-root DIR] NAME|ID

node evict removes a node from the cluster for good, for a machine that was
lost, retired or compromised. Run it as root on a Nomad server of the cluster,
where the agent runs; the node is named by its name or node ID, as status
lists the members.

The server adds the node to the cluster's deny list, kept in Nomad (a Nomad
Variable, nomad-bootstrapd/cluster) and sent to every member signed by the
server. From then on:
  - the CA issues the node no certificate, so the ones it holds expire at
    their lifetime (24 hours by default; Nomad checks no revocation list);
  - every agent drops its gossip messages and refuses it as a member;
  - its Nomad node is marked ineligible and drained (5 minute deadline), and
    purged from Nomad once it is down;
  - an agent that learns that it was evicted stops its Nomad, leaves the
    gossip pool and exits with status 3, and will not start again with the
    same identity.

A Nomad server of the plan is replaced at once, as a dead server is after
server_replace_after: a successor plan gives its seat to a live node that
holds the server token, and Nomad's autopilot removes it from the raft peers
once it has stopped. This needs a majority of the other servers alive, a
spare server-token node, and, for a server that is up, a raft that can lose
it (autopilot's failure tolerance at least 1); without them node evict refuses
and says why.

Evicting a node again changes nothing. Eviction refuses the node's identity,
not its token: after evicting a compromised client, also run
token rotate -client -grace 0, or whoever holds the machine could join again
as a new node with the token it holds.

Exit code 0: the node is evicted; 1: refused (the reason is printed);
2: usage, or the agent cannot be reached.
`

const nodeExamples = `  nomad-bootstrapd node evict worker-7
  nomad-bootstrapd node evict 0b6e0c1e-8d6b-4d5a-9a55-0f7c1e0b9d31
  nomad-bootstrapd node evict -json worker-7 | jq .version`

// runCommand sends req to the agent under f's root, within the agent's own
// bound and a margin, and decodes its answer into ans, which it prints as
// JSON with -json. It returns -1 when the caller prints the answer, else
// the exit code.
func runCommand(f agentOptions, what, route string, within time.Duration, req, ans any, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), within+30*time.Second)
	defer cancel()
	if code := callAgent(ctx, paths.New(*f.root), what, route, req, ans, stderr); code >= 0 {
		return code
	}
	if *f.json {
		printJSON(stdout, ans)
		return exitOK
	}
	return -1
}

// parseWithArgs parses args, whose positional arguments may come before,
// between or after the flags, and returns the positional ones; or the exit
// code when parsing ended the command (-help or a bad flag).
func parseWithArgs(fs *flag.FlagSet, args []string) ([]string, int) {
	var given []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK
			}
			return nil, exitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		given = append(given, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return given, -1
}

// rotated is how a rotation command's output begins.
func rotated(resumed bool) string {
	if resumed {
		return "Finished the rotation that was cut short:"
	}
	return "Rotated"
}

// callAgent sends a command to the agent behind the control socket under p
// and decodes its answer into out; it returns -1 when the agent did it, or
// the exit code after printing why not: 1 when the agent refused, 2 when
// it cannot be reached.
func callAgent(ctx context.Context, p paths.Paths, what, route string, in, out any, stderr io.Writer) int {
	err := status.Call(ctx, p.Socket(), route, in, out)
	var refused *status.CallError
	switch {
	case err == nil:
		return -1
	case errors.As(err, &refused):
		fmt.Fprintf(stderr, "nomad-bootstrapd: %s: %s\n", what, refused.Message)
		return exitError
	case errors.Is(err, status.ErrAgentDown):
		fmt.Fprintf(stderr, "nomad-bootstrapd: %v\n%s runs where the agent of a Nomad server runs\n", err, what)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "nomad-bootstrapd: %s: %v\n", what, err)
		return exitUsage
	}
}

// printJSON prints v as indented JSON, the -json output of a command.
func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// agentOptions are the flags of the commands the agent behind the control
// socket carries out: node evict, keys rotate.
type agentOptions struct {
	json *bool
	root *string
}

func agentFlags(fs *flag.FlagSet) agentOptions {
	return agentOptions{
		json: fs.Bool("json", false, "print the result as one JSON object"),
		root: fs.String("root", "/", "`dir`ectory every path is relative to"),
	}
}

func runNode(args []string, stdout, stderr io.Writer) int {
	rest, code := subcommand(args, "evict", nodeHelp, nodeExamples, stdout, stderr)
	if code >= 0 {
		return code
	}
	fs := newFlagSet("node evict", nodeHelp, nodeExamples, stderr)
	f := agentFlags(fs)
	given, code := parseWithArgs(fs, rest)
	if code >= 0 {
		return code
	}
	if len(given) != 1 {
		fmt.Fprintf(stderr, "node evict: name exactly one node, by its name or node ID (got %d)\n", len(given))
		return exitUsage
	}
	var ans agent.EvictAnswer
	if code := runCommand(f, "node evict", agent.EvictRoute, time.Minute, agent.EvictRequest{Node: given[0]}, &ans, stdout, stderr); code >= 0 {
		return code
	}
	name := ans.Name
	if name == "" {
		name = "node"
	}
	switch {
	case ans.Already:
		fmt.Fprintf(stdout, "%s (%s) was evicted already (cluster state version %d).\n", name, ans.ID, ans.Version)
	default:
		fmt.Fprintf(stdout, "Evicted %s (%s): cluster state version %d is on its way to every member.\n", name, ans.ID, ans.Version)
	}
	if ans.Server {
		fmt.Fprintln(stdout, "It was a Nomad server: a successor plan gives its seat to another node now (status shows the new epoch).")
	}
	if ans.Nomad != "" {
		fmt.Fprintf(stdout, "Its Nomad node: %s.\n", ans.Nomad)
	}
	fmt.Fprintln(stdout, strings.TrimSpace(`
The CA refuses it from now on; the certificates it holds expire at their lifetime.
If the machine was compromised, also rotate the client token, which it still holds:
  nomad-bootstrapd token rotate -client -grace 0`))
	return exitOK
}
