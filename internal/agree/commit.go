package agree

import (
	"fmt"
	"strings"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// adopt takes a committed plan learnt from source (a node name, or this
// node's own name when it coordinated the election), persists it and gossips
// it on. It reports whether the plan was new to this node.
func (n *Node) adopt(now time.Time, p plan.Plan, source string) bool {
	if p.Region != n.cfg.Region || p.Expect != n.cfg.Expect {
		n.obs.Warn("plan-settings:"+source, fmt.Sprintf(
			"ignoring the plan from %s: it has region=%s expect=%d, this node has region=%s expect=%d; fix the configuration of one of them",
			source, p.Region, p.Expect, n.cfg.Region, n.cfg.Expect))
		return false
	}
	if n.cfg.Verify != nil {
		if err := n.cfg.Verify(p); err != nil {
			n.obs.Warn("plan-signatures", fmt.Sprintf("ignoring the plan of epoch %d from %s: %v", p.Epoch, source, strings.TrimPrefix(err.Error(), "plan: ")))
			return false
		}
		n.obs.ClearWarning("plan-signatures")
	}
	hash := p.Hash()
	prev := n.plan
	if prev != nil {
		if hash == n.planHash {
			return false
		}
		// A valid successor replaces dead servers, and a later plan of
		// this node's lineage the epochs it missed; any other plan leaves
		// this node's own in place.
		err := plan.CheckSuccessor(*prev, p)
		if err != nil && p.Recovered && p.Epoch == prev.Epoch+1 {
			err = plan.CheckRecovery(*prev, p)
		}
		if err != nil && p.Epoch > prev.Epoch+1 && plan.CheckDescendant(*prev, p) == nil {
			err = nil
		}
		if err != nil && !(n.bugs.adoptSameEpoch && p.Epoch == prev.Epoch) {
			switch {
			case p.Epoch < prev.Epoch:
			case p.Epoch == prev.Epoch:
				n.obs.Warn("conflict", fmt.Sprintf(
					"node %s holds another committed plan of epoch %d (servers %s); this node keeps its own (servers %s). "+
						"Two groups of nodes elected apart: set min_members to a majority of the cluster's nodes",
					source, p.Epoch, strings.Join(p.ServerNames(), ", "), strings.Join(prev.ServerNames(), ", ")))
			default:
				n.obs.Warn("epoch", fmt.Sprintf("node %s holds plan epoch %d, which is not a valid successor of this node's epoch %d (%v); this node keeps its own",
					source, p.Epoch, prev.Epoch, err))
			}
			return false
		}
	}
	if err := n.store.SavePlan(p); err != nil {
		n.obs.Degraded(fmt.Sprintf("cannot persist the committed plan: %v", err))
		n.log.Error("cannot persist the committed plan", "error", err)
		return false
	}
	if prev != nil {
		for _, id := range plan.Replaced(*prev, p) {
			for _, s := range prev.Servers {
				if s.ID == id {
					delete(n.downSince, s.Name)
				}
			}
		}
	}
	n.plan, n.planHash = &p, hash
	n.seen = Ballot{}
	n.failed = 0
	n.reason = ""
	if n.prop != nil {
		// Whatever this node proposed is moot now.
		n.prop = nil
		n.lastProposal = now
	}
	n.log.Info("plan committed", "epoch", p.Epoch, "servers", strings.Join(p.ServerNames(), ","),
		"ca_holder", p.CAHolderName(), "from", source)
	n.obs.Committed(p, prev, source)
	// Gossip relays broadcasts, so only the coordinator and nodes that learnt
	// the plan in a push/pull sync (after a partition healed, say) start one.
	if source == n.cfg.Name || source == PushPullSource {
		n.gossipPlan(p)
	}
	return true
}

// gossipPlan broadcasts a committed plan, or an announcement of it when the
// plan does not fit a packet; nodes that miss it fetch it from the sender.
func (n *Node) gossipPlan(p plan.Plan) {
	if err := n.tr.Broadcast(Message{Type: MsgCommit, Plan: &p}); err == nil {
		return
	}
	if err := n.tr.Broadcast(Message{Type: MsgAnnounce, Hash: n.planHash, Epoch: p.Epoch}); err != nil {
		n.log.Warn("cannot gossip the plan", "error", err)
	}
}

// pushCommit sends the committed plan straight to every other live member
// but those in done, which have it already: gossip alone spreads it slowly
// while a large cluster's membership is still converging. Gossip relays and
// push/pull syncs remain the fallback for anything this misses.
func (n *Node) pushCommit(p plan.Plan, done []string) {
	skip := map[string]bool{n.cfg.Name: true}
	for _, name := range done {
		skip[name] = true
	}
	for _, m := range n.members {
		if m.State == gossip.StateAlive && !skip[m.Name] {
			n.tr.Send(m.Name, Message{Type: MsgCommit, Plan: &p})
		}
	}
}
