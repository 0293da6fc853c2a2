package agent

import (
	"fmt"
	"strings"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/install"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadconf"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// DryRun describes what the agent would do on this node, and the Nomad
// configuration it would write as a unified diff against what is there. It
// writes nothing.
func (a *Agent) DryRun() (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "node %s (%s), cluster %s, %s, address %s, role %s, pool %s, zone %q\n",
		a.name, a.id, a.cred.ClusterIDString(), a.cred.Kind(), a.advertise, a.cfg.Role, a.cfg.Pool, a.cfg.Zone)
	if !a.cred.IsServer() {
		b.WriteString("it holds a client token: it joins as a Nomad client only, whatever its role\n")
	}
	if a.nomadNote != "" {
		b.WriteString(a.nomadNote + "\n")
	} else {
		fmt.Fprintf(&b, "Nomad %s at %s\n", a.nomad.Features().Version, a.cfg.Nomad)
	}
	a.mu.Lock()
	p := a.plan
	a.mu.Unlock()
	if p == nil {
		fmt.Fprintf(&b, "no plan is committed on this node yet: it would join %s and take part in the election of %d servers;\n"+
			"Nomad's configuration depends on the outcome\n", orSelf(a.cfg.Join), a.cfg.Expect)
		return b.String(), nil
	}
	fmt.Fprintf(&b, "plan epoch %d: servers %s; this node is a %s\n", p.Epoch, strings.Join(p.ServerNames(), ", "), status.RoleIn(p, a.id))
	files := certs.TLSFiles{Dir: a.paths.NomadTLSDir()}
	for _, role := range a.certRoles(*p) {
		if _, err := files.LoadCert(role); err != nil {
			fmt.Fprintf(&b, "would request a %s certificate into %s\n", role, files.CertPath(role))
		}
	}
	rendered, err := nomadconf.Render(a.nomad.Agent(*p))
	if err != nil {
		return "", err
	}
	diff, err := install.Diff(a.paths.NomadConfigDir(), rendered)
	if err != nil {
		return "", err
	}
	if diff == "" {
		b.WriteString("Nomad's configuration is up to date\n")
	} else {
		b.WriteString(diff)
	}
	return b.String(), nil
}

func orSelf(seeds []string) string {
	if len(seeds) == 0 {
		return "no seed (it would wait for others to join it)"
	}
	return strings.Join(seeds, ", ")
}
