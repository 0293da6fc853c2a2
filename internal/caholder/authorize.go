package caholder

import (
	"errors"
	"fmt"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// Authorize decides what a requesting node is certified as under p, the
// committed plan (nil before the commit): its role comes from p and its
// address from gossip, never from the request. The node must be an alive
// member whose gossiped ID is the one it asks for, and only p's servers get
// server and CLI certificates.
func Authorize(p *plan.Plan, members []gossip.Member, req *certs.SignRequest) (certs.Identity, error) {
	if p == nil {
		return certs.Identity{}, errors.New("no plan is committed yet")
	}
	var member *gossip.Member
	for _, m := range members {
		if m.Name == req.NodeName && m.State == gossip.StateAlive && m.MetaErr == nil && m.Meta.ID == req.NodeID {
			member = &m
			break
		}
	}
	if member == nil {
		return certs.Identity{}, fmt.Errorf("node %s (%s) is not an alive member of this cluster", req.NodeName, req.NodeID)
	}
	switch req.Role {
	case certs.RoleServer, certs.RoleCLI:
		if !p.IsServer(req.NodeID) {
			return certs.Identity{}, fmt.Errorf("node %s is a client in plan epoch %d, not a server", req.NodeName, p.Epoch)
		}
	case certs.RoleClient:
	default:
		return certs.Identity{}, fmt.Errorf("unknown role %q", req.Role)
	}
	return certs.Identity{NodeID: req.NodeID, NodeName: req.NodeName, Region: p.Region, Address: member.Address, Role: req.Role}, nil
}

// Candidates returns p's servers in the order a node asks them for a
// certificate: the CA holder first, then the servers that may have taken
// over, in the plan's order.
func Candidates(p plan.Plan) []plan.Server {
	out := make([]plan.Server, 0, len(p.Servers))
	for _, s := range p.Servers {
		if s.ID == p.CAHolder {
			out = append([]plan.Server{s}, out...)
		} else {
			out = append(out, s)
		}
	}
	return out
}

// TakesOver reports whether the server self of p is the one to sign in
// place of p's CA holder: the first server after the holder, in the plan's
// order, that alive (the names of the alive members) holds. The caller
// decides whether the holder has been down long enough.
func TakesOver(p plan.Plan, self string, alive map[string]bool) bool {
	if p.CAHolder == self || !p.IsServer(self) {
		return false
	}
	for _, s := range p.Servers {
		switch {
		case s.ID == p.CAHolder:
		case s.ID == self:
			return true
		case alive[s.Name]:
			return false // an earlier server in the plan takes over
		}
	}
	return false
}
