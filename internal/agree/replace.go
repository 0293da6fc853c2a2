package agree

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// trackServers records since when each of the plan's servers has not been
// alive; a server this node never saw counts from the first look. A server
// the cluster evicted counts as down for ever (the zero time), so that it
// is replaced at once.
func (n *Node) trackServers(now time.Time) {
	for _, s := range n.plan.Servers {
		switch _, ok := n.downSince[s.Name]; {
		case n.aliveID(s.Name) != "":
			delete(n.downSince, s.Name)
		case n.evicted(s):
			n.downSince[s.Name] = time.Time{}
		case !ok:
			n.downSince[s.Name] = now
		}
	}
}

// evicted reports whether gossip lists the server s as evicted.
func (n *Node) evicted(s plan.Server) bool {
	i, found := slices.BinarySearchFunc(n.members, s.Name, func(m gossip.Member, name string) int { return strings.Compare(m.Name, name) })
	return found && n.members[i].State == gossip.StateEvicted && n.members[i].MetaErr == nil && n.members[i].Meta.ID == s.ID
}

// maybeReplace proposes a successor when servers have been down for
// ServerReplaceAfter and this node is the first live server of the plan.
func (n *Node) maybeReplace(now time.Time) {
	if n.prop != nil || now.Sub(n.lastProposal) < n.t.ProposalBackoff {
		return
	}
	cur := n.plan.Clone()
	var dead, deadNames []string
	coord := ""
	for _, s := range cur.Servers {
		since, down := n.downSince[s.Name]
		switch {
		case n.aliveID(s.Name) != "":
			if coord == "" {
				coord = s.ID
			}
		case down && now.Sub(since) >= n.cfg.ServerReplaceAfter:
			dead = append(dead, s.ID)
			deadNames = append(deadNames, s.Name)
		}
	}
	if len(dead) == 0 {
		n.obs.ClearWarning("replace") // replaced, recovered, or back
		if coord == n.cfg.ID {
			n.maybeReaddress(now, cur)
		} else {
			n.obs.ClearWarning("readdress")
		}
		return
	}
	n.obs.ClearWarning("readdress")
	if coord != n.cfg.ID {
		return
	}
	next, err := plan.Replace(cur, dead, n.liveMembers())
	if err != nil {
		var ne *plan.NotEnoughError
		if errors.As(err, &ne) {
			err = errors.New("no live node is eligible to take its place")
			if n.clientTokenSpares(cur) > 0 {
				err = errors.New("no live node holding the server token is left to take its place (nodes that joined with a client token are never servers); the cluster keeps its surviving servers: start a node with the server token to replace it")
			}
		}
		n.obs.Warn("replace", fmt.Sprintf("server %s has been down for more than %s, but it cannot be replaced: %v",
			strings.Join(deadNames, ", "), n.cfg.ServerReplaceAfter, strings.TrimPrefix(err.Error(), "plan: ")))
		return
	}
	n.obs.ClearWarning("replace")
	replaced := plan.Replaced(cur, next)
	var voters []string
	for _, s := range cur.Servers {
		if s.ID != n.cfg.ID && !slices.Contains(replaced, s.ID) {
			voters = append(voters, s.Name)
		}
	}
	n.log.Info("proposing a server replacement", "epoch", next.Epoch, "servers", strings.Join(next.ServerNames(), ","))
	n.start(now, next, &cur, voters, nil, nil)
}

// maybeReaddress proposes a successor of cur that records at their new
// addresses the servers that gossip lists alive elsewhere (plan.Readdress):
// a server's machine that came back on another address. Each moved server
// must promise it, and promises only its own address; every voter checks
// that it sees the server there. Until the successor is committed, nodes
// dial the server at the address of cur: Nomad's retry_join, certificate
// requests to a moved CA holder.
func (n *Node) maybeReaddress(now time.Time, cur plan.Plan) {
	addrs := map[string]string{}
	var names, must, voters []string
	for _, s := range cur.Servers {
		if s.ID != n.cfg.ID {
			voters = append(voters, s.Name)
		}
		if a, ok := n.movedTo(s); ok {
			addrs[s.ID] = a
			names = append(names, s.Name+" at "+a)
			if s.ID != n.cfg.ID {
				must = append(must, s.Name)
			}
		}
	}
	if len(addrs) == 0 {
		n.obs.ClearWarning("readdress")
		return
	}
	next, err := plan.Readdress(cur, addrs)
	if err != nil {
		return
	}
	n.log.Info("proposing to record servers at their new addresses", "epoch", next.Epoch, "servers", strings.Join(names, ", "))
	n.start(now, next, &cur, voters, nil, must)
}

// anyMoved reports whether gossip lists a server of the plan alive at
// another address than the plan's.
func (n *Node) anyMoved() bool {
	return n.plan != nil && slices.ContainsFunc(n.plan.Servers, func(s plan.Server) bool { _, ok := n.movedTo(s); return ok })
}

// movedTo returns the address at which gossip lists the server s alive,
// with the ID and identity key the plan records for it, when that is an IP
// address other than the plan's.
func (n *Node) movedTo(s plan.Server) (string, bool) {
	m, ok := n.aliveMember(s.Name)
	if !ok || m.Meta.ID != s.ID || memberKey(m.Meta) != s.Key || m.Address == s.Address || !plan.ValidAddress(m.Address) {
		return "", false
	}
	return m.Address, true
}

// Recover proposes, on a server of the committed plan that an operator
// confirmed the other servers named by dead are lost for good, a successor
// that replaces them although they are a majority (plan.Recover): the
// survivors are too few to agree on it, so its own servers, the new ones
// with this one, do, each checking as for a replacement that it saw the
// lost servers down for ServerReplaceAfter. The plan is committed, or not,
// through the usual rounds; Plan shows it.
func (n *Node) Recover(now time.Time, dead []string) error {
	if n.prop != nil {
		return errors.New("a proposal is under way; try again once it ends")
	}
	next, err := n.RecoveryOf(dead)
	if err != nil {
		return err
	}
	cur := n.plan.Clone()
	var voters []string
	for _, s := range next.Servers {
		if s.ID != n.cfg.ID {
			voters = append(voters, s.Name)
		}
	}
	n.log.Warn("proposing a recovery that replaces a majority of the servers, as the operator confirmed", "epoch", next.Epoch, "servers", strings.Join(next.ServerNames(), ","))
	n.start(now, next, &cur, voters, nil, nil)
	return nil
}

// RecoveryOf returns the recovery Recover would propose for the servers
// named by dead, or why there is none.
func (n *Node) RecoveryOf(dead []string) (plan.Plan, error) {
	switch {
	case n.plan == nil:
		return plan.Plan{}, errors.New("no plan is committed yet")
	case !n.plan.IsServer(n.cfg.ID):
		return plan.Plan{}, fmt.Errorf("%s is not a server of plan epoch %d", n.cfg.Name, n.plan.Epoch)
	case slices.Contains(dead, n.cfg.ID):
		return plan.Plan{}, errors.New("this server cannot recover the cluster without itself")
	}
	next, err := plan.Recover(n.plan.Clone(), dead, n.liveMembers())
	if err != nil {
		var ne *plan.NotEnoughError
		if errors.As(err, &ne) {
			return plan.Plan{}, fmt.Errorf("%d servers are lost, but only %d live nodes holding the server token can take their seats: start more", ne.Expect, ne.Eligible)
		}
		return plan.Plan{}, errors.New(strings.TrimPrefix(err.Error(), "plan: "))
	}
	return next, nil
}

// liveMembers returns the alive members with readable metadata and this
// node's cluster settings, as election members.
func (n *Node) liveMembers() []plan.Member {
	var out []plan.Member
	for _, m := range n.members {
		if m.State != gossip.StateAlive || m.MetaErr != nil || m.Meta.Region != n.cfg.Region || m.Meta.Expect != n.cfg.Expect {
			continue
		}
		out = append(out, n.electionMember(m))
	}
	return out
}

// clientTokenSpares counts the live members outside cur that ask to be or
// may be servers but hold only a client token.
func (n *Node) clientTokenSpares(cur plan.Plan) int {
	count := 0
	for _, m := range n.members {
		if m.State == gossip.StateAlive && m.MetaErr == nil && !cur.IsServer(m.Meta.ID) &&
			m.Meta.Role != string(plan.RoleClient) && !n.serverEligible(m.Meta) {
			count++
		}
	}
	return count
}

// checkSuccessor returns why this node does not promise p, a successor
// proposed by from, or "": besides what successorVoter checks, this node
// too must have seen each replaced server down for ServerReplaceAfter, and,
// for a replacement, every server of p alive; each server p records at a
// new address alive there.
func (n *Node) checkSuccessor(now time.Time, from string, p plan.Plan) string {
	if reason := n.successorVoter(from, p); reason != "" {
		return reason
	}
	cur := n.plan
	replaced := plan.Replaced(*cur, p)
	for _, s := range cur.Servers {
		if !slices.Contains(replaced, s.ID) {
			continue
		}
		since, down := n.downSince[s.Name]
		if n.aliveID(s.Name) != "" || !down || now.Sub(since) < n.cfg.ServerReplaceAfter {
			return fmt.Sprintf("%s has not seen server %s down for %s", n.cfg.Name, s.Name, n.cfg.ServerReplaceAfter)
		}
	}
	// A successor that only records new addresses changes nothing about
	// the servers that did not move: they need not be alive.
	for _, s := range p.Servers {
		if len(replaced) > 0 && n.aliveID(s.Name) != s.ID {
			return fmt.Sprintf("%s does not see server %s alive", n.cfg.Name, s.Name)
		}
	}
	for _, id := range plan.Moved(*cur, p) {
		i := slices.IndexFunc(cur.Servers, func(s plan.Server) bool { return s.ID == id })
		if a, ok := n.movedTo(cur.Servers[i]); !ok || a != p.Servers[i].Address {
			return fmt.Sprintf("%s does not see server %s alive at %s", n.cfg.Name, p.Servers[i].Name, p.Servers[i].Address)
		}
	}
	return n.checkServers(p.Servers)
}
