package agent

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/atomicfile"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadrun"
)

// writeProfile writes the root-only shell profile that points the nomad CLI
// at the local agent over mTLS, so `nomad server members` works on a server.
func (a *Agent) writeProfile() (bool, error) {
	files := certs.TLSFiles{Dir: a.paths.NomadTLSDir()}
	script := fmt.Sprintf(`# Managed by nomad-bootstrapd: changes are overwritten.
# The nomad CLI talks to this server's Nomad agent over mutual TLS. For a token:
#   export NOMAD_TOKEN=$(cat %s)
export NOMAD_ADDR=https://%s
export NOMAD_CACERT=%s
export NOMAD_CLIENT_CERT=%s
export NOMAD_CLIENT_KEY=%s
`, filepath.Join(a.paths.ACLDir(), "ops-admin.token"), net.JoinHostPort(a.advertise, nomadrun.HTTPPort),
		files.CAPath(), files.CertPath(certs.RoleCLI), files.KeyPath(certs.RoleCLI))
	p := a.paths.ProfileScript()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return false, fmt.Errorf("agent: %w", err)
	}
	return atomicfile.WriteFileIfChanged(p, []byte(script), 0o600)
}
