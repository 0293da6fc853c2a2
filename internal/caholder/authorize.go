package caholder

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/casvc"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// Trust is what Authorize checks a request against besides the plan and
// the members.
type Trust struct {
	// Server is the CA holder's server token: it checks the admissions of
	// client-token nodes and makes new ones.
	Server certs.Token
	// Eligible reports whether a member holds the server token (its
	// endorsement checks out).
	Eligible func(gossip.Meta) bool
	// BehindNAT skips the check that a request comes from the requesting
	// member's address, for nodes that reach the CA holder through NAT.
	BehindNAT bool
	// Now is the time client tokens' expiries are checked at.
	Now time.Time
	// Evicted reports whether the cluster evicted the node with this ID or
	// identity key; nil evicts none.
	Evicted func(id string, key []byte) bool
	// Clients is which generations of client tokens admit new nodes.
	Clients certs.ClientPolicy
}

// Authorize decides what a requesting node is certified as under p, the
// committed plan (nil before the commit), for a request that came from
// remote and that the verifier checked (MAC, signature, freshness). Its
// role comes from p and its address from gossip, never from the request.
// The node must be an alive member whose gossiped ID and identity key are
// the ones it signed with, at the address the request comes from (unless
// BehindNAT). Only p's servers get server and CLI certificates, and only
// with the identity key p records for them; a node that holds only a client
// token gets a client certificate when it shows an unexpired client token
// of this cluster or an earlier admission, and a new admission with it.
func Authorize(p *plan.Plan, members []gossip.Member, req *certs.SignRequest, remote netip.Addr, tr Trust) (casvc.Grant, error) {
	if p == nil {
		return casvc.Grant{}, errors.New("no plan is committed yet")
	}
	if tr.Evicted != nil && tr.Evicted(req.NodeID, req.Identity) {
		return casvc.Grant{}, fmt.Errorf("node %s (%s) was evicted from the cluster", req.NodeName, req.NodeID)
	}
	var member *gossip.Member
	for _, m := range members {
		if m.Name == req.NodeName && m.State == gossip.StateAlive && m.MetaErr == nil && m.Meta.ID == req.NodeID {
			member = &m
			break
		}
	}
	if member == nil {
		return casvc.Grant{}, fmt.Errorf("node %s (%s) is not an alive member of this cluster", req.NodeName, req.NodeID)
	}
	if !bytes.Equal(member.Meta.Identity, req.Identity) {
		return casvc.Grant{}, fmt.Errorf("node %s announces another identity key than the one that signed the request", req.NodeName)
	}
	if !tr.BehindNAT {
		addr, err := netip.ParseAddr(member.Address)
		if err != nil || addr.Unmap() != remote.Unmap() {
			return casvc.Grant{}, fmt.Errorf("the request comes from %s, not from node %s's address %s; if nodes reach the CA through NAT, set behind_nat = true on the servers",
				remote, req.NodeName, member.Address)
		}
	}
	holder := tr.Eligible != nil && tr.Eligible(member.Meta)
	grant := casvc.Grant{Identity: certs.Identity{NodeID: req.NodeID, NodeName: req.NodeName, Region: p.Region, Address: member.Address, Role: req.Role}}
	switch req.Role {
	case certs.RoleServer, certs.RoleCLI:
		i := slices.IndexFunc(p.Servers, func(s plan.Server) bool { return s.ID == req.NodeID })
		switch {
		case i < 0:
			return casvc.Grant{}, fmt.Errorf("node %s is a client in plan epoch %d, not a server", req.NodeName, p.Epoch)
		case p.Servers[i].Key != base64.StdEncoding.EncodeToString(req.Identity):
			return casvc.Grant{}, fmt.Errorf("node %s signs with another identity key than plan epoch %d records for it", req.NodeName, p.Epoch)
		case !holder:
			return casvc.Grant{}, fmt.Errorf("node %s does not hold the server token", req.NodeName)
		}
	case certs.RoleClient:
		if holder {
			break
		}
		if err := tr.Server.CheckAdmissionUnder(req.Admission, req.NodeID, req.Identity, tr.Now, tr.Clients); err != nil {
			return casvc.Grant{}, fmt.Errorf("node %s: %w", req.NodeName, err)
		}
		grant.Admission = tr.Server.Admit(req.NodeID, req.Identity)
	default:
		return casvc.Grant{}, fmt.Errorf("unknown role %q", req.Role)
	}
	return grant, nil
}

// AuthorizeKeys decides whether a node may have the agents' gossip keys,
// for a request that the verifier checked (MAC, signature, freshness). An
// alive member gets them when it would get a certificate of the role it
// asks for (Authorize). A node that is no alive member — one that was away
// while the cluster rotated the key, or new, and cannot join without it —
// gets them when p records it as a server with the identity key it signed
// with, or when its request shows, in place of an admission, the server
// token's endorsement of its ID and key (a server-token holder), an
// admission or an admitting client token. An evicted node never does. The
// keys go sealed to the key the request was signed with, so an address
// check adds nothing for a node that is not a member.
func AuthorizeKeys(p *plan.Plan, members []gossip.Member, req *certs.SignRequest, remote netip.Addr, tr Trust) error {
	if p == nil {
		return errors.New("no plan is committed yet")
	}
	if tr.Evicted != nil && tr.Evicted(req.NodeID, req.Identity) {
		return fmt.Errorf("node %s (%s) was evicted from the cluster", req.NodeName, req.NodeID)
	}
	if slices.ContainsFunc(members, func(m gossip.Member) bool {
		return m.Name == req.NodeName && m.State == gossip.StateAlive && m.MetaErr == nil && m.Meta.ID == req.NodeID
	}) {
		_, err := Authorize(p, members, req, remote, tr)
		return err
	}
	if i := slices.IndexFunc(p.Servers, func(s plan.Server) bool { return s.ID == req.NodeID }); i >= 0 {
		if p.Servers[i].Key == base64.StdEncoding.EncodeToString(req.Identity) {
			return nil
		}
		return fmt.Errorf("node %s signs with another identity key than plan epoch %d records for it", req.NodeName, p.Epoch)
	}
	if tr.Eligible != nil && tr.Eligible(gossip.Meta{ID: req.NodeID, Identity: req.Identity, Endorsement: req.Admission}) {
		return nil
	}
	if err := tr.Server.CheckAdmissionUnder(req.Admission, req.NodeID, req.Identity, tr.Now, tr.Clients); err != nil {
		return fmt.Errorf("node %s is not a member and not admitted: %w", req.NodeName, err)
	}
	return nil
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
