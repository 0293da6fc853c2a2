// Command nomad-bootstrapd turns a set of machines into a production Nomad
// cluster: see `nomad-bootstrapd -help`.
package main

import (
	"os"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:], os.Stdout, os.Stderr))
}
