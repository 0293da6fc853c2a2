package agree

import (
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
	n.start(now, cand, nil, voters, witnesses(cand, n.liveMembers(), n.cfg.MinMembers))
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
		eligible = append(eligible, electionMember(m))
	}
	if want := n.cfg.MinMembers; len(eligible) < want {
		return &election{reason: fmt.Sprintf("waiting for %d members with matching settings to be alive, have %d", want, len(eligible))}
	}
	p, err := plan.Elect(eligible, plan.Settings{Expect: n.cfg.Expect, Region: n.cfg.Region})
	if err != nil {
		return &election{reason: strings.TrimPrefix(err.Error(), "plan: ")}
	}
	return &election{plan: p, eligible: len(eligible)}
}

func electionMember(m gossip.Member) plan.Member {
	role, _ := plan.ParseRole(m.Meta.Role)
	return plan.Member{
		ID: m.Meta.ID, Name: m.Name, Address: m.Address, Role: role, Pool: m.Meta.Pool,
		Zone: m.Meta.Zone, Datacenter: m.Meta.Datacenter, CPUCores: m.Meta.CPUCores, MemoryMB: m.Meta.MemoryMB,
	}
}

// proposal is one proposal this node coordinates.
type proposal struct {
	plan     plan.Plan
	hash     string
	prev     *plan.Plan        // the plan a successor replaces; nil for a first plan
	asked    map[uint64]string // request ID -> server or witness, until it answers
	servers  map[string]bool   // the voters that must all accept
	acked    []string
	refusals []string
	refused  bool // a server refused
	deadline time.Time
}

// refuse records why the named voter did not accept.
func (p *proposal) refuse(name, why string) {
	p.refusals = append(p.refusals, why)
	if p.servers[name] {
		p.refused = true
	}
}

// timeout refuses for every voter that has not answered.
func (p *proposal) timeout() {
	for _, name := range p.asked {
		p.refuse(name, name+": no answer in time")
	}
	clear(p.asked)
}

// start proposes p to voters, which must all accept, and to witnesses, which
// count towards MinMembers; prev is the plan a successor replaces.
func (n *Node) start(now time.Time, p plan.Plan, prev *plan.Plan, voters, witnesses []string) {
	hash := p.Hash()
	if reason := n.promiseTo(now, hash, n.cfg.Name); reason != "" {
		n.log.Debug("not proposing", "hash", hash, "reason", reason)
		n.lastProposal = now
		return
	}
	pr := &proposal{plan: p, hash: hash, prev: prev, asked: map[uint64]string{}, servers: map[string]bool{}, deadline: now.Add(n.t.RequestTimeout)}
	n.prop = pr
	for _, name := range voters {
		pr.servers[name] = true
	}
	for _, name := range slices.Concat(voters, witnesses) {
		n.nextReq++
		pr.asked[n.nextReq] = name
		n.tr.Send(name, Message{Type: MsgPropose, ID: n.nextReq, Plan: &pr.plan})
	}
	if len(pr.asked) == 0 {
		n.decide(now)
	}
}

// answer records a server's answer to this node's proposal.
func (n *Node) answer(now time.Time, from string, m Message) {
	pr := n.prop
	if pr == nil || m.ID == 0 {
		return
	}
	if name, ok := pr.asked[m.ID]; !ok || name != from {
		return
	}
	delete(pr.asked, m.ID)
	switch m.Type {
	case MsgAck:
		pr.acked = append(pr.acked, from)
	case MsgCommit:
		holds := "already holds a committed plan"
		if pr.prev != nil {
			holds = "holds another plan"
		}
		pr.refuse(from, from+" "+holds)
	default:
		pr.refuse(from, from+": "+m.Reason)
	}
	if len(pr.asked) == 0 || n.accepted(pr) || (n.bugs.commitEarly && len(pr.acked) > 0) {
		n.decide(now)
	}
}

// accepted reports whether pr has the answers it needs already: every
// server of a first plan and MinMembers members in all, or a majority of the
// servers a successor follows. The sooner a coordinator commits, the sooner
// its commit reaches the servers whose promises it holds.
func (n *Node) accepted(pr *proposal) bool {
	if pr.refused && pr.prev == nil {
		return false
	}
	if pr.prev != nil {
		return 1+len(pr.acked) >= len(pr.prev.Servers)/2+1
	}
	servers := 0
	for _, name := range pr.acked {
		if pr.servers[name] {
			servers++
		}
	}
	return servers == len(pr.servers) && 1+len(pr.acked) >= n.cfg.MinMembers
}

// decide ends this node's proposal once every server answered or the time
// is up.
func (n *Node) decide(now time.Time) {
	pr := n.prop
	n.prop = nil
	n.lastProposal = now
	slices.Sort(pr.refusals)
	if pr.prev != nil {
		n.decideSuccessor(now, pr)
		return
	}
	failed := pr.refused || 1+len(pr.acked) < n.cfg.MinMembers
	if failed && !(n.bugs.commitEarly && len(pr.acked) > 0) {
		n.release(pr.hash)
		n.reason = "proposal not accepted (" + strings.Join(pr.refusals, "; ") + "); retrying"
		n.log.Info("proposal not accepted; retrying", "refusals", strings.Join(pr.refusals, "; "))
		n.sendRelease(pr.hash, pr.acked)
		return
	}
	if n.plan != nil {
		return // adopted another plan meanwhile (abandon cleared it already)
	}
	// Keep the CA key before anyone pins its certificate; then tell the
	// servers: should this node die now, they hold the plan and gossip it,
	// and this node adopts it from them when it returns.
	if err := n.ca.KeepCA(); err != nil {
		n.release(pr.hash)
		n.obs.Degraded(fmt.Sprintf("cannot persist the cluster CA: %v", err))
		return
	}
	var servers []string
	for _, s := range pr.plan.Servers {
		if s.ID != n.cfg.ID {
			servers = append(servers, s.Name)
		}
	}
	n.commit(now, pr.plan, servers)
}

// commit sends the committed plan p to the servers named, adopts it and
// pushes it to every other member.
//
// The servers are told first: should this node stop before it persists the
// plan, they hold it and spread it, and this node adopts it from them when it
// returns.
func (n *Node) commit(now time.Time, p plan.Plan, servers []string) {
	for _, name := range servers {
		n.tr.Send(name, Message{Type: MsgCommit, Plan: &p})
	}
	if n.adopt(now, p, n.cfg.Name) {
		n.pushCommit(p, servers)
	}
}

// abandon drops this node's proposal once it holds a plan the proposal
// cannot become: the promises it gathered are released.
func (n *Node) abandon(now time.Time) {
	if pr := n.prop; pr != nil {
		n.prop = nil
		n.lastProposal = now
		n.sendRelease(pr.hash, pr.acked)
	}
}

// sendRelease frees the promises that the nodes named in to made for the
// proposal hash.
func (n *Node) sendRelease(hash string, to []string) {
	for _, name := range to {
		n.tr.Send(name, Message{Type: MsgRelease, Hash: hash})
	}
}

// pushCommit sends the committed plan straight to every other live member
// but the servers, which have it already: gossip alone spreads it slowly
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

// waitingProposal is a proposal that waits for this node to see its servers.
type waitingProposal struct {
	from     string
	m        Message
	deadline time.Time
}

// recheckWaiting answers the waiting proposals whose servers are all alive
// now, and refuses those whose time is up.
func (n *Node) recheckWaiting(now time.Time) {
	ws := n.waiting
	n.waiting = nil
	for _, w := range ws {
		n.handlePropose(now, w.from, w.m, w.deadline)
	}
}

// handlePropose answers a coordinator's proposal; until deadline a missing
// server only makes it wait for membership to change.
func (n *Node) handlePropose(now time.Time, from string, m Message, deadline time.Time) {
	p := m.Plan
	nack := func(reason string) {
		n.log.Debug("refusing proposal", "from", from, "reason", reason)
		n.reply(from, m, Message{Type: MsgNack, Reason: reason})
	}
	switch {
	case p.Region != n.cfg.Region || p.Expect != n.cfg.Expect:
		nack(fmt.Sprintf("settings differ: proposal has region=%s expect=%d, %s has region=%s expect=%d",
			p.Region, p.Expect, n.cfg.Name, n.cfg.Region, n.cfg.Expect))
		return
	case p.Epoch > 1:
		n.handleSuccessor(now, from, m)
		return
	case p.Servers[0].Name != from:
		nack(fmt.Sprintf("the proposal comes from %s, not from its first server %s", from, p.Servers[0].Name))
		return
	}
	// A server serves with the others, so it must see them; a witness
	// only promises to take part in no other plan.
	for _, s := range p.Servers {
		if p.IsServer(n.cfg.ID) && n.aliveID(s.Name) != s.ID {
			if now.Before(deadline) {
				n.waiting = append(n.waiting, waitingProposal{from: from, m: m, deadline: deadline})
				return
			}
			nack(fmt.Sprintf("%s does not see server %s alive", n.cfg.Name, s.Name))
			return
		}
	}
	hash := p.Hash()
	if n.plan != nil {
		if n.planHash == hash {
			n.reply(from, m, Message{Type: MsgAck})
		} else {
			n.reply(from, m, Message{Type: MsgCommit, Plan: n.plan})
		}
		return
	}
	if reason := n.promiseTo(now, hash, from); reason != "" {
		nack(reason)
		return
	}
	n.reply(from, m, Message{Type: MsgAck})
}

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
	hash := p.Hash()
	prev := n.plan
	if prev != nil {
		if hash == n.planHash {
			return false
		}
		// A valid successor replaces dead servers; any other plan leaves
		// this node's own in place.
		if err := plan.CheckSuccessor(*prev, p); err != nil && !(n.bugs.adoptSameEpoch && p.Epoch == prev.Epoch) {
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
	n.promise = nil
	n.reason = ""
	if n.prop != nil && n.prop.hash != hash {
		n.abandon(now)
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
