package status

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/fingerprint"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/planfile"
)

// Persisted is what status shows while no agent answers: the node's
// identity, the committed plan and the certificates, read from the files
// the agent left, without the join token. Agent.Running is false, the phase
// is PhaseStopped and the reason says how to start the agent; whatever
// cannot be read is a warning, never a guess.
func Persisted(p paths.Paths, cfg config.Config, startHint string) Status {
	s := Status{
		Node: NodeStatus{
			Name: cfg.Name, Role: cfg.Role, Pool: cfg.Pool, Zone: cfg.Zone,
			Datacenter: cfg.Datacenter, Region: cfg.Region,
		},
		Phase:   PhaseStopped,
		Reason:  "the agent is not running; start it with: " + startHint,
		Members: []MemberStatus{},
	}
	if s.Node.Name == "" {
		if h, err := os.Hostname(); err == nil {
			s.Node.Name = fingerprint.SanitizeHostname(h)
		}
	}
	if b, err := os.ReadFile(p.NodeIDFile()); err == nil {
		s.Node.ID = strings.TrimSpace(string(b))
	} else if !errors.Is(err, fs.ErrNotExist) {
		s.Warnings = append(s.Warnings, fmt.Sprintf("reading the node ID: %v", err))
	}
	saved, err := planfile.Read(p.PlanFile())
	switch {
	case err != nil:
		s.Warnings = append(s.Warnings, err.Error())
	case saved != nil:
		pl := saved.Plan
		s.Plan = PlanOf(&pl)
		if s.Node.ID == "" {
			s.Node.ID = saved.NodeID
		}
		if self, ok := planMember(pl, s.Node.ID); ok {
			s.Node.Name, s.Node.Address = self.Name, self.Address
		}
		s.Node.Role = RoleIn(&pl, s.Node.ID)
		s.Certs = CertsOf(p, CertRoles(pl, s.Node.ID))
	}
	return s
}

// planMember finds the node with id among p's members, if p names it.
func planMember(p plan.Plan, id string) (plan.Server, bool) {
	for _, s := range p.Servers {
		if s.ID == id {
			return s, true
		}
	}
	return plan.Server{}, false
}

// PlanOf shows p with node names.
func PlanOf(p *plan.Plan) *PlanStatus {
	addrs := make([]string, len(p.Servers))
	for i, s := range p.Servers {
		addrs[i] = s.Address
	}
	return &PlanStatus{Epoch: p.Epoch, Servers: p.ServerNames(), ServerAddresses: addrs, CAHolder: p.CAHolderName(),
		Expect: p.Expect, Region: p.Region, CAFingerprint: p.CAFingerprint}
}

// RoleIn returns the role node id has under p: server or client.
func RoleIn(p *plan.Plan, id string) string {
	if p.IsServer(id) {
		return string(plan.RoleServer)
	}
	return string(plan.RoleClient)
}

// CertRoles returns the certificates node id holds under p, its main one
// first: a server certificate and the operator's CLI certificate on
// servers, a client certificate on clients.
func CertRoles(p plan.Plan, id string) []certs.Role {
	if p.IsServer(id) {
		return []certs.Role{certs.RoleServer, certs.RoleCLI}
	}
	return []certs.Role{certs.RoleClient}
}

// CertsOf describes the certificates of roles and the cluster CA under
// p's TLS directory, skipping those that are missing or unreadable. Its
// NotBefore and NotAfter are the first role's, the node's main
// certificate; nil when that one cannot be read.
func CertsOf(p paths.Paths, roles []certs.Role) *CertStatus {
	files := certs.TLSFiles{Dir: p.NomadTLSDir()}
	var cs CertStatus
	for i, r := range roles {
		c, err := files.LoadCert(r)
		if err != nil {
			if i == 0 {
				return nil
			}
			continue
		}
		if i == 0 {
			cs.NotBefore, cs.NotAfter = c.NotBefore.UTC(), c.NotAfter.UTC()
		}
		cs.Files = append(cs.Files, CertFileStatus{Role: string(r), Path: files.CertPath(r), NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC()})
	}
	if b, err := os.ReadFile(files.CAPath()); err == nil {
		if c, err := certs.ParseCertPEM(b); err == nil {
			cs.Files = append(cs.Files, CertFileStatus{Role: "ca", Path: files.CAPath(), NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC()})
		}
	}
	return &cs
}
