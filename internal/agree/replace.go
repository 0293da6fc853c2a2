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
// alive; a server this node never saw counts from the first look.
func (n *Node) trackServers(now time.Time) {
	for _, s := range n.plan.Servers {
		if n.aliveID(s.Name) != "" {
			delete(n.downSince, s.Name)
		} else if _, ok := n.downSince[s.Name]; !ok {
			n.downSince[s.Name] = now
		}
	}
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
	if len(dead) == 0 || coord != n.cfg.ID {
		return
	}
	next, err := plan.Replace(cur, dead, n.liveMembers())
	if err != nil {
		var ne *plan.NotEnoughError
		if errors.As(err, &ne) {
			err = fmt.Errorf("no live node is eligible to take its place")
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
	n.start(now, next, &cur, voters, nil)
}

// liveMembers returns the alive members with readable metadata and this
// node's cluster settings, as election members.
func (n *Node) liveMembers() []plan.Member {
	var out []plan.Member
	for _, m := range n.members {
		if m.State != gossip.StateAlive || m.MetaErr != nil || m.Meta.Region != n.cfg.Region || m.Meta.Expect != n.cfg.Expect {
			continue
		}
		out = append(out, electionMember(m))
	}
	return out
}

// decideSuccessor commits a successor accepted by a majority of the current
// plan's servers, or gives it up.
func (n *Node) decideSuccessor(now time.Time, pr *proposal) {
	cur := *pr.prev
	need := len(cur.Servers)/2 + 1
	if n.bugs.minorityQuorum {
		need = len(cur.Servers) / 2
	}
	if 1+len(pr.acked) < need || n.planHash != cur.Hash() {
		n.release(pr.hash)
		if n.planHash == cur.Hash() {
			n.reason = fmt.Sprintf("server replacement not agreed by %d of the %d servers (%s); retrying",
				need, len(cur.Servers), strings.Join(pr.refusals, "; "))
			n.log.Info("server replacement not agreed; retrying", "refusals", strings.Join(pr.refusals, "; "))
		}
		n.sendRelease(pr.hash, pr.acked)
		return
	}
	sent := slices.Clone(pr.acked)
	for _, s := range pr.plan.Servers {
		if !cur.IsServer(s.ID) {
			sent = append(sent, s.Name)
		}
	}
	n.commit(now, pr.plan, sent)
}

// handleSuccessor answers a proposal of a plan with a higher epoch.
func (n *Node) handleSuccessor(now time.Time, from string, m Message) {
	p := m.Plan
	nack := func(reason string) {
		n.log.Debug("refusing server replacement", "from", from, "reason", reason)
		n.reply(from, m, Message{Type: MsgNack, Reason: reason})
	}
	if n.plan == nil {
		nack(n.cfg.Name + " holds no committed plan")
		return
	}
	cur := n.plan
	hash := p.Hash()
	if n.planHash == hash {
		n.reply(from, m, Message{Type: MsgAck})
		return
	}
	if p.Epoch <= cur.Epoch {
		n.reply(from, m, Message{Type: MsgCommit, Plan: cur})
		return
	}
	reason := ""
	replaced := plan.Replaced(*cur, *p)
	switch err := plan.CheckSuccessor(*cur, *p); {
	case err != nil:
		reason = strings.TrimPrefix(err.Error(), "plan: ")
	case !cur.IsServer(n.cfg.ID):
		reason = fmt.Sprintf("%s is not a server of epoch %d", n.cfg.Name, cur.Epoch)
	case !slices.ContainsFunc(cur.Servers, func(s plan.Server) bool { return s.Name == from && !slices.Contains(replaced, s.ID) }):
		reason = fmt.Sprintf("%s is not a surviving server of epoch %d", from, cur.Epoch)
	}
	for _, s := range cur.Servers {
		if reason != "" || !slices.Contains(replaced, s.ID) {
			continue
		}
		since, down := n.downSince[s.Name]
		if n.aliveID(s.Name) != "" || !down || now.Sub(since) < n.cfg.ServerReplaceAfter {
			reason = fmt.Sprintf("%s has not seen server %s down for %s", n.cfg.Name, s.Name, n.cfg.ServerReplaceAfter)
		}
	}
	for _, s := range p.Servers {
		if reason == "" && n.aliveID(s.Name) != s.ID {
			reason = fmt.Sprintf("%s does not see server %s alive", n.cfg.Name, s.Name)
		}
	}
	if reason == "" {
		reason = n.promiseTo(now, hash, from)
	}
	if reason != "" {
		nack(reason)
		return
	}
	n.reply(from, m, Message{Type: MsgAck})
}
