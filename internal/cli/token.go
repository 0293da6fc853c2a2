package cli

import (
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadconf"
)

const tokenHelp = `Usage: nomad-bootstrapd token create
       nomad-bootstrapd token client -token-file SERVER_TOKEN [-ttl DURATION]

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

Either token goes where a token goes: -token, -token-file, NOMAD_BOOTSTRAPD_TOKEN,
token or token_file in the configuration file, and nomad-bootstrapd join.
`

const tokenExamples = `  nomad-bootstrapd token create > /etc/nomad-bootstrapd/token && chmod 600 /etc/nomad-bootstrapd/token
  nomad-bootstrapd token client -token-file /etc/nomad-bootstrapd/token > client-token
  nomad-bootstrapd token client -token-file /etc/nomad-bootstrapd/token -ttl 24h`

func runToken(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "client" {
		return runTokenClient(args[1:], stdout, stderr, time.Now)
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
func tokenClientFlags(fs *flag.FlagSet) (tokenFile *string, ttl *time.Duration) {
	tokenFile = fs.String("token-file", "", "`file` holding the cluster's server token")
	ttl = fs.Duration("ttl", 0, "admit new nodes for this long only (`duration`, such as 24h; 0: until the server token changes)")
	return tokenFile, ttl
}

// runTokenClient prints a client token made from the server token.
func runTokenClient(args []string, stdout, stderr io.Writer, now func() time.Time) int {
	fs := newFlagSet("token client", tokenHelp, tokenExamples, stderr)
	tokenFile, ttl := tokenClientFlags(fs)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if *tokenFile == "" {
		fmt.Fprintln(stderr, "nomad-bootstrapd: token client needs -token-file with the cluster's server token")
		return exitUsage
	}
	if *ttl < 0 {
		fmt.Fprintf(stderr, "nomad-bootstrapd: -ttl %s is negative; give a positive duration, or 0 for none\n", nomadconf.FormatDuration(*ttl))
		return exitUsage
	}
	if *ttl > 0 && *ttl < time.Minute {
		fmt.Fprintf(stderr, "nomad-bootstrapd: -ttl %s is shorter than a minute; a node could not join in time\n", nomadconf.FormatDuration(*ttl))
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
	c := t.Client(expires)
	fmt.Fprintln(stdout, c.Encode())
	until := "it does not expire"
	if !expires.IsZero() {
		until = "it admits new nodes until " + expires.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(stderr, "Created a client token of cluster %s; %s. Nodes holding it join as Nomad clients only.\n", t.ClusterIDString(), until)
	return exitOK
}
