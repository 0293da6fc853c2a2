package cli

import (
	"crypto/rand"
	"fmt"
	"io"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
)

const tokenHelp = `Usage: nomad-bootstrapd token create

Prints a new join token on standard output. The token names a new cluster
and holds its secret: every key of the cluster (gossip encryption, Nomad's
gossip key, certificate requests) is derived from it. Anyone holding it can
join the cluster, so keep it like a password.
`

const tokenExamples = `  T=$(nomad-bootstrapd token create)
  nomad-bootstrapd token create > /etc/nomad-bootstrapd/token && chmod 600 /etc/nomad-bootstrapd/token`

func runToken(args []string, stdout, stderr io.Writer) int {
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
	fmt.Fprintf(stderr, "Created the join token of cluster %s. Keep it secret: anyone holding it can join the cluster.\n", t.ClusterIDString())
	return exitOK
}
