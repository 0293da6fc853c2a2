package cli

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agent"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadconf"
)

const tokenHelp = `Usage: nomad-bootstrapd token create
       nomad-bootstrapd token client -token-file SERVER_TOKEN [-ttl DURATION] [-generation N]
       nomad-bootstrapd token rotate -client [-grace DURATION] [-ttl DURATION] [-root DIR]

token create prints a new server token on standard output: it names a new
cluster and holds its secret, from which the cluster's shared keys are
derived (gossip, Nomad's gossip encryption, the cluster signing key). A node
holding it may be elected a Nomad server, hold the CA and receive the
escrowed CA key and the ACL management token, which are sealed to each
server's own identity key. Keep it like a root password, on the machines that
may be servers.

token client prints a client token of the cluster whose server token is in
-token-file. A node holding it joins as a Nomad client only, whatever its
role: it is never elected, never holds the CA and can derive none of the
servers' secrets, so a compromised client machine is not the cluster's root.
With -ttl it admits new nodes only until then; nodes it admitted before keep
working. Give it to the machines that run workloads.

token rotate -client, run as root on a Nomad server of the cluster where the
agent runs, replaces the client token: it prints a new one, and the cluster
stops admitting new nodes with the one before once -grace (default 1h) has
passed. Nodes admitted before keep working: they renew with the admission
the CA gave them. The change is kept in the cluster state in Nomad and sent
to every node. token client makes tokens of the generation -generation; after
a rotation, give it the generation status shows, or use the printed token.
Rotating the server token is not available yet.

Either token goes where a token goes: -token, -token-file, NOMAD_BOOTSTRAPD_TOKEN,
token or token_file in the configuration file, and nomad-bootstrapd join.
`

const tokenExamples = `  nomad-bootstrapd token create > /etc/nomad-bootstrapd/token && chmod 600 /etc/nomad-bootstrapd/token
  nomad-bootstrapd token client -token-file /etc/nomad-bootstrapd/token > client-token
  nomad-bootstrapd token client -token-file /etc/nomad-bootstrapd/token -ttl 24h
  nomad-bootstrapd token rotate -client -grace 30m | tail -n1 > client-token`

func runToken(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "client" {
		return runTokenClient(args[1:], stdout, stderr, time.Now)
	}
	if len(args) > 0 && args[0] == "rotate" {
		return runTokenRotate(args[1:], stdout, stderr, time.Now)
	}
	rest, code := subcommand(args, "create", tokenHelp, tokenExamples, stdout, stderr)
	if code >= 0 {
		return code
	}
	fs := newFlagSet("token create", tokenHelp, tokenExamples, stderr)
	if code := parseFlags(fs, rest); code >= 0 {
		return code
	}
	t, err := certs.NewToken(rand.Reader)
	if err != nil {
		fmt.Fprintf(stderr, "nomad-bootstrapd: %v\n", err)
		return exitError
	}
	fmt.Fprintln(stdout, t.Encode())
	fmt.Fprintf(stderr, "Created the server token of cluster %s. Keep it secret: anyone holding it can become a server of the cluster. For machines that only run workloads, make a client token with `nomad-bootstrapd token client`.\n", t.ClusterIDString())
	return exitOK
}

// tokenClientFlags registers token client's flags.
func tokenClientFlags(fs *flag.FlagSet) (tokenFile *string, ttl *time.Duration, gen *uint) {
	tokenFile = fs.String("token-file", "", "`file` holding the cluster's server token")
	ttl = ttlFlag(fs)
	gen = fs.Uint("generation", 0, "client token generation the cluster admits (status shows it; 0 until the first token rotate -client)")
	return tokenFile, ttl, gen
}

func ttlFlag(fs *flag.FlagSet) *time.Duration {
	return fs.Duration("ttl", 0, "admit new nodes for this long only (`duration`, such as 24h; 0: until the token is rotated)")
}

// checkTTL refuses a -ttl that is negative or too short to join with.
func checkTTL(ttl time.Duration, stderr io.Writer) bool {
	if ttl < 0 {
		fmt.Fprintf(stderr, "nomad-bootstrapd: -ttl %s is negative; give a positive duration, or 0 for none\n", nomadconf.FormatDuration(ttl))
		return false
	}
	if ttl > 0 && ttl < time.Minute {
		fmt.Fprintf(stderr, "nomad-bootstrapd: -ttl %s is shorter than a minute; a node could not join in time\n", nomadconf.FormatDuration(ttl))
		return false
	}
	return true
}

// runTokenClient prints a client token made from the server token.
func runTokenClient(args []string, stdout, stderr io.Writer, now func() time.Time) int {
	fs := newFlagSet("token client", tokenHelp, tokenExamples, stderr)
	tokenFile, ttl, gen := tokenClientFlags(fs)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if *tokenFile == "" {
		fmt.Fprintln(stderr, "nomad-bootstrapd: token client needs -token-file with the cluster's server token")
		return exitUsage
	}
	if !checkTTL(*ttl, stderr) {
		return exitUsage
	}
	if *gen > math.MaxUint32 {
		fmt.Fprintf(stderr, "nomad-bootstrapd: -generation %d is out of range\n", *gen)
		return exitUsage
	}
	cfg := config.Config{TokenFile: *tokenFile}
	text, err := cfg.ResolveToken(func(w string) { fmt.Fprintf(stderr, "nomad-bootstrapd: warning: %s\n", w) })
	if err != nil {
		fmt.Fprintf(stderr, "nomad-bootstrapd: %v\n", err)
		return exitError
	}
	t, err := certs.ParseToken(text)
	if err != nil {
		fmt.Fprintf(stderr, "nomad-bootstrapd: %s: %v\n", *tokenFile, err)
		return exitError
	}
	var expires time.Time
	if *ttl > 0 {
		expires = now().Add(*ttl).Truncate(time.Second)
	}
	c := t.ClientOf(uint32(*gen), expires)
	fmt.Fprintln(stdout, c.Encode())
	until := "it does not expire"
	if !expires.IsZero() {
		until = "it admits new nodes until " + expires.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(stderr, "Created a client token of cluster %s; %s. Nodes holding it join as Nomad clients only.\n", t.ClusterIDString(), until)
	return exitOK
}

// tokenRotateFlags registers token rotate's flags.
func tokenRotateFlags(fs *flag.FlagSet) (client *bool, grace, ttl *time.Duration, root *string) {
	client = fs.Bool("client", false, "rotate the client token (required: the server token cannot be rotated yet)")
	grace = fs.Duration("grace", time.Hour, "how long the previous client token still admits new nodes (`duration`)")
	ttl = ttlFlag(fs)
	root = fs.String("root", "/", "`dir`ectory every path is relative to")
	return client, grace, ttl, root
}

// runTokenRotate asks the local server's agent to rotate the client token
// and prints the new one on the last line.
func runTokenRotate(args []string, stdout, stderr io.Writer, now func() time.Time) int {
	fs := newFlagSet("token rotate", tokenHelp, tokenExamples, stderr)
	client, grace, ttl, root := tokenRotateFlags(fs)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if !*client {
		fmt.Fprintln(stderr, "nomad-bootstrapd: token rotate rotates the client token with -client; rotating the server token is not available yet")
		return exitUsage
	}
	if *grace < 0 {
		fmt.Fprintf(stderr, "nomad-bootstrapd: -grace %s is negative; give 0 to refuse the previous client token at once\n", nomadconf.FormatDuration(*grace))
		return exitUsage
	}
	if !checkTTL(*ttl, stderr) {
		return exitUsage
	}
	req := agent.RotateRequest{Grace: *grace}
	if *ttl > 0 {
		req.Expires = now().Add(*ttl).Truncate(time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var ans agent.RotateAnswer
	if code := callAgent(ctx, paths.New(*root), "token rotate", agent.RotateRoute, req, &ans, stderr); code >= 0 {
		return code
	}
	fmt.Fprintf(stderr, "Rotated the client token to generation %d (cluster state version %d). The previous one admits new nodes until %s; nodes admitted before keep working. Keep the new token secret:\n",
		ans.Generation, ans.Version, ans.PreviousUntil.UTC().Format(time.RFC3339))
	fmt.Fprintln(stdout, ans.Token)
	return exitOK
}
