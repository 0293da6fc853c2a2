package agree

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// phase is how far a proposal has come.
type phase int

const (
	phasePrepare phase = iota // gathering promises
	phaseAccept               // gathering acceptances
)

// proposal is one proposal this node coordinates.
type proposal struct {
	phase  phase
	ballot Ballot
	cand   plan.Plan  // this node's candidate, sent with the prepare
	prev   *plan.Plan // the plan a successor replaces; nil for a first plan
	// prevHash is prev's hash; "" for a first plan.
	prevHash string
	// learnt is the plan of the highest ballot that the promises report
	// accepted: the accept phase proposes it over the candidate, since it
	// may have been chosen already.
	learnt   *plan.Plan
	learntAt Ballot
	plan     plan.Plan // what the accept phase proposes
	hash     string
	asked    map[uint64]string // request ID -> voter, until it answers
	voters   []string          // every voter asked
	servers  map[string]bool   // the voters that must all promise the candidate
	promised []string
	acked    []string
	signed   plan.Plan // plan with the signatures its servers sent so far
	refusals []string
	deadline time.Time
}

// learn records a plan a voter accepted at ballot b.
func (pr *proposal) learn(b Ballot, p plan.Plan) {
	if pr.learnt == nil || pr.learntAt.Less(b) {
		pr.learnt, pr.learntAt = &p, b
	}
}

// refuse records why the named voter did not answer yes.
func (pr *proposal) refuse(why string) { pr.refusals = append(pr.refusals, why) }

// timeout refuses for every voter that has not answered.
func (pr *proposal) timeout() {
	for _, name := range pr.asked {
		pr.refuse(name + ": no answer in time")
	}
	clear(pr.asked)
}

// start proposes cand to voters and witnesses, in two phases: first every
// one promises to accept no proposal of a lower ballot and tells the plan
// it accepted earlier, if any; then they accept the plan of the highest
// ballot so told, or cand when none was. A first plan needs the promises
// of all its servers (the voters) and MinMembers members in all; a
// successor of prev needs a majority of prev's servers at each phase. The
// voters named in must are asked like the others, but the candidate goes on
// to the accept phase only with each one's promise: the servers of a first
// plan, and a server that a successor records at a new address, which
// promises only an address that is its own.
func (n *Node) start(now time.Time, cand plan.Plan, prev *plan.Plan, voters, witnesses, must []string) {
	v := n.voteFor(cand.Epoch)
	b := Ballot{Round: max(v.Promised.Round, n.seen.Round) + 1, Node: n.cfg.Name}
	v.Promised = b
	if !n.saveVote(v) {
		n.lastProposal = now
		return
	}
	cand.Signatures = nil // signatures come with the acceptances
	pr := &proposal{ballot: b, cand: cand, prev: prev, asked: map[uint64]string{}, servers: map[string]bool{}}
	if prev != nil {
		pr.prevHash = prev.Hash()
	}
	for _, name := range must {
		pr.servers[name] = true
	}
	if v.Plan != nil {
		pr.learn(v.Accepted, v.Plan.Clone())
	}
	n.prop = pr
	pr.voters = slices.Concat(voters, witnesses)
	n.ask(now, pr, MsgPrepare, &pr.cand, pr.voters)
	n.progress(now)
}

// ask sends the request of type t with plan p to each named voter. Each
// proposal that failed in a row, on a slow network say, doubles the time
// the next one waits for answers, up to four times RequestTimeout.
func (n *Node) ask(now time.Time, pr *proposal, t string, p *plan.Plan, names []string) {
	pr.deadline = now.Add(n.t.RequestTimeout << min(n.failed, 2))
	for _, name := range names {
		n.nextReq++
		pr.asked[n.nextReq] = name
		n.tr.Send(name, Message{Type: t, ID: n.nextReq, Ballot: pr.ballot, Plan: p})
	}
}

// quorum is how many votes, this node's included, each phase of pr needs.
func (n *Node) quorum(pr *proposal) int {
	if pr.prev == nil {
		return n.cfg.MinMembers
	}
	if pr.cand.Recovered {
		// The survivors are too few to agree: the recovery's own servers
		// do, and sign it.
		return len(pr.cand.Servers)/2 + 1
	}
	if n.bugs.minorityQuorum {
		return len(pr.prev.Servers) / 2
	}
	return len(pr.prev.Servers)/2 + 1
}

// prepared reports whether pr has the promises it needs.
func (n *Node) prepared(pr *proposal) bool {
	if n.bugs.commitEarly {
		return len(pr.promised) > 0 || len(pr.asked) == 0
	}
	if 1+len(pr.promised) < n.quorum(pr) {
		return false
	}
	if pr.learnt != nil {
		return true
	}
	servers := 0
	for _, name := range pr.promised {
		if pr.servers[name] {
			servers++
		}
	}
	return servers == len(pr.servers)
}

// chosen reports whether pr's plan has the acceptances it needs: a
// quorum, and with signing the signatures of a majority of its servers,
// which every node checks before it adopts the plan.
func (n *Node) chosen(pr *proposal) bool {
	if n.bugs.commitEarly {
		return len(pr.acked) > 0 || len(pr.asked) == 0
	}
	if n.cfg.Sign != nil && len(pr.signed.Signatures) <= len(pr.plan.Servers)/2 {
		return false
	}
	return 1+len(pr.acked) >= n.quorum(pr)
}

// keepSignature adds sig, the acceptance the named voter sent, to pr's
// signed plan when the voter is one of its servers and sig verifies.
func (n *Node) keepSignature(pr *proposal, from string, sig []byte) {
	if n.cfg.Sign == nil || len(sig) == 0 {
		return
	}
	i := slices.IndexFunc(pr.plan.Servers, func(s plan.Server) bool { return s.Name == from })
	if i < 0 {
		return // a witness: its acceptance counts, its signature does not
	}
	q := pr.signed.Clone()
	q.Sign(pr.plan.Servers[i].ID, sig)
	// Keep the signature only if it is that server's: a bad one would
	// count towards the majority that every node's check then refuses.
	if !q.SignedBy(pr.plan.Servers[i].ID) {
		n.log.Warn("dropping an acceptance whose signature does not verify", "from", from)
		return
	}
	pr.signed = q
}

// progress moves this node's proposal on as far as its answers allow: to
// the accept phase, to the commit, or to giving up once every voter
// answered.
func (n *Node) progress(now time.Time) {
	pr := n.prop
	switch {
	case pr == nil:
	case pr.phase == phasePrepare && n.prepared(pr):
		n.acceptPhase(now)
	case pr.phase == phaseAccept && n.chosen(pr):
		n.decide(now)
	case len(pr.asked) == 0:
		n.fail(now, "")
	}
}

// acceptPhase proposes the plan the promises allow to every voter: those
// whose promise is late or was refused may still accept.
func (n *Node) acceptPhase(now time.Time) {
	pr := n.prop
	pr.phase = phaseAccept
	pr.plan = pr.cand
	if pr.learnt != nil {
		pr.plan = *pr.learnt
	}
	pr.hash = pr.plan.Hash()
	// Keep the CA key before anyone accepts a plan that pins it: once a
	// quorum accepted, the plan is chosen, whatever becomes of this node.
	if pr.prev == nil && pr.plan.CAHolder == n.cfg.ID && pr.plan.CAFingerprint == pr.cand.CAFingerprint {
		if err := n.ca.KeepCA(); err != nil {
			n.obs.Degraded(fmt.Sprintf("cannot persist the cluster CA: %v", err))
			n.fail(now, "cannot persist the cluster CA")
			return
		}
	}
	v := n.voteFor(pr.plan.Epoch)
	if v.Promised != pr.ballot {
		n.fail(now, n.cfg.Name+" promised a later proposal, by "+v.Promised.Node)
		return
	}
	v.Accepted, v.Plan = pr.ballot, new(pr.plan.Clone())
	if !n.saveVote(v) {
		n.fail(now, "cannot persist this node's vote")
		return
	}
	pr.signed = pr.plan.Clone()
	pr.signed.Signatures = nil
	if n.cfg.Sign != nil && pr.plan.IsServer(n.cfg.ID) {
		pr.signed.Sign(n.cfg.ID, n.cfg.Sign(pr.hash))
	}
	clear(pr.asked)
	n.ask(now, pr, MsgPropose, &pr.plan, pr.voters)
	n.progress(now)
}

// answer records a voter's answer to this node's proposal.
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
	case MsgPromise:
		if pr.phase != phasePrepare {
			break
		}
		if m.Plan != nil {
			if reason := n.checkLearnt(pr, *m.Plan); reason != "" {
				pr.refuse(from + ": " + reason)
				break
			}
			pr.learn(m.Accepted, m.Plan.Clone())
		}
		pr.promised = append(pr.promised, from)
	case MsgAck:
		if pr.phase == phaseAccept {
			pr.acked = append(pr.acked, from)
			n.keepSignature(pr, from, m.Sig)
		}
	case MsgCommit:
		holds := "already holds a committed plan"
		if pr.prev != nil {
			holds = "holds another plan"
		}
		pr.refuse(from + " " + holds)
	case MsgNack:
		if n.seen.Less(m.Ballot) {
			n.seen = m.Ballot
		}
		pr.refuse(from + ": " + m.Reason)
	}
	n.progress(now)
}

// checkLearnt returns why p, which a voter accepted, cannot be what pr
// proposes, or "".
func (n *Node) checkLearnt(pr *proposal, p plan.Plan) string {
	switch {
	case p.Epoch != pr.cand.Epoch || p.Region != n.cfg.Region || p.Expect != n.cfg.Expect:
		return fmt.Sprintf("reports a plan of epoch %d, region %s, expect %d", p.Epoch, p.Region, p.Expect)
	case pr.prev != nil:
		if err := plan.CheckSuccessor(*pr.prev, p); err != nil {
			return "reports a plan that is no successor: " + strings.TrimPrefix(err.Error(), "plan: ")
		}
	}
	return ""
}

// fail gives this node's proposal up; why, when set, is the reason.
func (n *Node) fail(now time.Time, why string) {
	pr := n.prop
	n.prop = nil
	n.lastProposal = now
	n.failed++
	if why != "" {
		pr.refusals = append(pr.refusals, why)
	}
	slices.Sort(pr.refusals)
	refusals := strings.Join(pr.refusals, "; ")
	if refusals == "" {
		refusals = "too few members to ask"
	}
	if pr.prev == nil {
		n.reason = "proposal not accepted (" + refusals + "); retrying"
		n.log.Info("proposal not accepted; retrying", "refusals", refusals)
		return
	}
	if n.planHash != pr.prevHash {
		return
	}
	if len(plan.Replaced(*pr.prev, pr.cand)) == 0 {
		var moved []string
		ids := plan.Moved(*pr.prev, pr.cand)
		for _, s := range pr.cand.Servers {
			if slices.Contains(ids, s.ID) {
				moved = append(moved, s.Name+" at "+s.Address)
			}
		}
		n.obs.Warn("readdress", fmt.Sprintf("gossip lists server %s, but the servers did not agree to record the new address "+
			"(%s; the server itself must promise it); retrying", strings.Join(moved, ", "), refusals))
		n.log.Info("new server address not agreed; retrying", "refusals", refusals)
		return
	}
	n.reason = fmt.Sprintf("server replacement not agreed by %d of the %d servers (%s); retrying",
		n.quorum(pr), len(pr.prev.Servers), refusals)
	n.log.Info("server replacement not agreed; retrying", "refusals", refusals)
}

// decide commits this node's chosen proposal.
func (n *Node) decide(now time.Time) {
	pr := n.prop
	n.prop = nil
	n.lastProposal = now
	if pr.prev == nil && n.plan != nil || pr.prev != nil && n.planHash != pr.prevHash {
		return // adopted another plan meanwhile
	}
	to := slices.Clone(pr.acked)
	for _, s := range pr.plan.Servers {
		if s.ID != n.cfg.ID && !slices.Contains(to, s.Name) {
			to = append(to, s.Name)
		}
	}
	p := pr.plan
	if n.cfg.Sign != nil {
		p = pr.signed
	}
	n.commit(now, p, to)
}

// commit sends the committed plan p to the nodes named, adopts it and
// pushes it to every other member.
//
// The named nodes are told first: should this node stop before it persists
// the plan, they hold it and spread it, and this node adopts it from them
// when it returns.
func (n *Node) commit(now time.Time, p plan.Plan, to []string) {
	for _, name := range to {
		n.tr.Send(name, Message{Type: MsgCommit, Plan: &p})
	}
	if n.adopt(now, p, n.cfg.Name) {
		n.pushCommit(p, to)
	}
}
