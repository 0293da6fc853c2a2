package agree

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// maybePropose proposes the candidate plan when this node coordinates it.
func (n *Node) maybePropose(now time.Time) {
	if n.prop != nil {
		return
	}
	cand, reason := n.candidate(now)
	if reason != "" {
		n.reason = reason
		return
	}
	coord := cand.Servers[0]
	if coord.ID != n.cfg.ID {
		n.reason = fmt.Sprintf("waiting for %s to propose servers %s", coord.Name, strings.Join(cand.ServerNames(), ", "))
		return
	}
	if now.Sub(n.lastProposal) < n.t.ProposalBackoff {
		return
	}
	n.reason = fmt.Sprintf("proposing servers %s", strings.Join(cand.ServerNames(), ", "))
	fp, err := n.ca.ProposalCA()
	if err != nil {
		n.lastProposal = now
		n.obs.Degraded(fmt.Sprintf("cannot create the cluster CA: %v", err))
		return
	}
	cand.Epoch = 1
	cand.CAFingerprint = fp
	cand.CAPort = n.cfg.CAPort
	var voters []string
	for _, s := range cand.Servers {
		if s.ID != n.cfg.ID {
			voters = append(voters, s.Name)
		}
	}
	n.start(now, cand, nil, voters, witnesses(cand, n.liveMembers(), n.cfg.MinMembers), voters)
}

// witnesses returns the members other than p's servers that a first plan's
// coordinator asks too, so that MinMembers members in all promise the
// plan: two plans then need two groups of MinMembers, which share a member
// when MinMembers is a majority, and that member promises only one. It asks
// twice as many as it needs, at most, in name order.
func witnesses(p plan.Plan, eligible []plan.Member, minMembers int) []string {
	need := minMembers - len(p.Servers)
	if need <= 0 {
		return nil
	}
	var out []string
	for _, m := range eligible {
		if !p.IsServer(m.ID) {
			out = append(out, m.Name)
		}
	}
	slices.Sort(out)
	return out[:min(len(out), 2*need)]
}

// candidate computes the plan this node would propose now, or the reason why
// there is none yet. The election over the members is computed once per
// membership change; only the settle time depends on now.
func (n *Node) candidate(now time.Time) (plan.Plan, string) {
	if n.cand == nil {
		n.cand = n.elect()
	}
	c := n.cand
	if c.reason != "" {
		return plan.Plan{}, c.reason
	}
	// Every machine of a known bootstrap is here: nothing better can come
	// by waiting.
	complete := n.cfg.BootstrapSize > 0 && c.eligible >= n.cfg.BootstrapSize
	if stable := now.Sub(n.lastChange); stable < n.cfg.Settle && !complete {
		return plan.Plan{}, fmt.Sprintf("membership changed %s ago; electing once it has been stable for %s",
			stable.Round(100*time.Millisecond), n.cfg.Settle)
	}
	return c.plan.Clone(), ""
}

// election is the outcome of the election over the members of one view.
type election struct {
	plan     plan.Plan
	eligible int    // members it elected from
	reason   string // why there is no plan
}

// elect runs the election over the alive members with this node's settings.
func (n *Node) elect() *election {
	var eligible []plan.Member
	holders := 0 // of them, those holding the server token
	for _, m := range n.members {
		if m.State != gossip.StateAlive {
			continue
		}
		if m.MetaErr != nil {
			n.obs.Warn("meta:"+m.Name, fmt.Sprintf("node %s sends metadata this version cannot read (%v); it is left out of the election", m.Name, m.MetaErr))
			continue
		}
		if m.Meta.Region != n.cfg.Region || m.Meta.Expect != n.cfg.Expect {
			n.obs.Warn("settings:"+m.Name, fmt.Sprintf(
				"node %s has region=%s expect=%d but this node has region=%s expect=%d; it is left out of the election until its configuration matches",
				m.Name, m.Meta.Region, m.Meta.Expect, n.cfg.Region, n.cfg.Expect))
			continue
		}
		n.obs.ClearWarning("settings:" + m.Name)
		n.obs.ClearWarning("meta:" + m.Name)
		holds := n.serverEligible(m.Meta)
		eligible = append(eligible, toElectionMember(m, holds))
		if holds {
			holders++
		}
	}
	if want := n.cfg.MinMembers; len(eligible) < want {
		return &election{reason: fmt.Sprintf("waiting for %d members with matching settings to be alive, have %d", want, len(eligible))}
	}
	if holders < n.cfg.Expect {
		return &election{reason: fmt.Sprintf("waiting for %d members holding the server token to be alive, have %d; a node that joined with a client token is never a server",
			n.cfg.Expect, holders)}
	}
	p, err := plan.Elect(eligible, plan.Settings{Expect: n.cfg.Expect, Region: n.cfg.Region})
	if err != nil {
		return &election{reason: strings.TrimPrefix(err.Error(), "plan: ")}
	}
	return &election{plan: p, eligible: len(eligible)}
}

// electionMember returns m as the election sees it: a member that does not
// hold the server token takes part as a client, whatever role it asks for.
func (n *Node) electionMember(m gossip.Member) plan.Member {
	return toElectionMember(m, n.serverEligible(m.Meta))
}

// toElectionMember is m as the election sees it; holdsServerToken says
// whether it may be a server.
func toElectionMember(m gossip.Member, holdsServerToken bool) plan.Member {
	role, _ := plan.ParseRole(m.Meta.Role)
	if !holdsServerToken {
		role = plan.RoleClient
	}
	return plan.Member{
		ID: m.Meta.ID, Name: m.Name, Address: m.Address, Role: role, Pool: m.Meta.Pool,
		Zone: m.Meta.Zone, Datacenter: m.Meta.Datacenter, CPUCores: m.Meta.CPUCores, MemoryMB: m.Meta.MemoryMB,
		Key: memberKey(m.Meta), Endorsement: b64(m.Meta.Endorsement),
	}
}

// serverEligible reports whether a member with this meta may be a server.
func (n *Node) serverEligible(m gossip.Meta) bool {
	return n.cfg.Eligible == nil || n.cfg.Eligible(m)
}

// memberKey returns the identity key a member announces as a plan records
// it, "" for none.
func memberKey(m gossip.Meta) string { return b64(m.Identity) }

// b64 returns b in standard base64, "" for none.
func b64(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b)
}

// checkServers returns why this node refuses a proposal naming servers, or
// "": each of them that it sees alive must hold the server token and
// announce the identity key the proposal records.
func (n *Node) checkServers(servers []plan.Server) string {
	for _, s := range servers {
		m, ok := n.aliveMember(s.Name)
		if !ok || m.Meta.ID != s.ID {
			continue
		}
		if !n.serverEligible(m.Meta) {
			return fmt.Sprintf("%s does not hold the server token, so it cannot be a server", s.Name)
		}
		if memberKey(m.Meta) != s.Key {
			return fmt.Sprintf("the proposal records another identity key for %s than it announces", s.Name)
		}
	}
	return ""
}
