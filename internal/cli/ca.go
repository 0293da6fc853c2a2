package cli

import (
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/atomicfile"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
)

const caHelp = `Usage: nomad-bootstrapd ca csr -dir DIR [-token-file FILE | -token T]
       nomad-bootstrapd ca rotate [-json] [-root DIR]

ca rotate replaces the cluster CA with a new one, Nomad running; see
'nomad-bootstrapd ca rotate -help'.

ca csr: for a cluster whose root CA key is kept offline: makes the key of an
intermediate CA (DIR/intermediate-key.pem, 0600) and a certificate request
for it (DIR/intermediate.csr). Sign the request with the offline root, then
give the intermediate to every node that may become a server:

  ca {
    cert_file  = "/etc/nomad-bootstrapd/ca/intermediate.pem"
    key_file   = "/etc/nomad-bootstrapd/ca/intermediate-key.pem"
    chain_file = "/etc/nomad-bootstrapd/ca/root.pem"
  }

The CA holder then signs every node's certificate with the intermediate,
whose chain to the root is verified at start and served with every
certificate.
`

const caExamples = `  nomad-bootstrapd ca csr -dir ./ca -token-file token
  openssl x509 -req -in ca/intermediate.csr -CA root.pem -CAkey root-key.pem \
    -days 1825 -sha256 -out ca/intermediate.pem \
    -extfile <(printf "basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign")`

// caFlags registers ca csr's flags.
func caFlags(fs *flag.FlagSet) (dir, token, tokenFile *string) {
	dir = fs.String("dir", "", "`directory` to write the key and the request into")
	token = fs.String("token", "", "join `token` of the cluster (names it in the CA's common name)")
	tokenFile = fs.String("token-file", "", "`file` holding the join token")
	return dir, token, tokenFile
}

func runCA(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "rotate" {
		return runCARotate(args[1:], stdout, stderr)
	}
	rest, code := subcommand(args, "csr", caHelp, caExamples, stdout, stderr)
	if code >= 0 {
		return code
	}
	fs := newFlagSet("ca csr", caHelp, caExamples, stderr)
	dir, tokenFlag, tokenFile := caFlags(fs)
	if code := parseFlags(fs, rest); code >= 0 {
		return code
	}
	if *dir == "" {
		fmt.Fprintln(stderr, "nomad-bootstrapd: ca csr needs -dir")
		return exitUsage
	}
	cfg := config.Merge(config.Env(os.Getenv), config.FlagLayer(fs, config.Config{Token: *tokenFlag, TokenFile: *tokenFile}))
	token, err := loadToken(&cfg, nil)
	if err != nil {
		fmt.Fprintf(stderr, "nomad-bootstrapd: %v\n", err)
		return exitError
	}
	keyPath, csrPath := filepath.Join(*dir, "intermediate-key.pem"), filepath.Join(*dir, "intermediate.csr")
	for _, p := range []string{keyPath, csrPath} {
		if _, err := os.Stat(p); err == nil {
			fmt.Fprintf(stderr, "nomad-bootstrapd: %s exists; not overwriting it\n", p)
			return exitError
		}
	}
	keyPEM, csrPEM, err := certs.NewIntermediateCSR(rand.Reader, token.ClusterIDString())
	if err != nil {
		fmt.Fprintf(stderr, "nomad-bootstrapd: %v\n", err)
		return exitError
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		fmt.Fprintf(stderr, "nomad-bootstrapd: %v\n", err)
		return exitError
	}
	if err := atomicfile.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		fmt.Fprintf(stderr, "nomad-bootstrapd: %v\n", err)
		return exitError
	}
	if err := atomicfile.WriteFile(csrPath, csrPEM, 0o644); err != nil {
		fmt.Fprintf(stderr, "nomad-bootstrapd: %v\n", err)
		return exitError
	}
	fmt.Fprintf(stdout, "wrote %s (keep it secret) and %s; sign the request with the offline root:\n%s\n", keyPath, csrPath, caExamples[len("  nomad-bootstrapd ca csr -dir ./ca -token-file token\n"):])
	return exitOK
}
