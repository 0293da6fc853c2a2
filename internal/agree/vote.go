package agree

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// Ballot orders the proposals for one epoch's plan: by round, then by the
// name of the coordinator, so that no two coordinators share one.
type Ballot struct {
	Round uint64 `json:"n"`
	Node  string `json:"c"`
}

// Less reports whether b orders before o.
func (b Ballot) Less(o Ballot) bool {
	if b.Round != o.Round {
		return b.Round < o.Round
	}
	return b.Node < o.Node
}

// IsZero reports whether b is no ballot.
func (b Ballot) IsZero() bool { return b == Ballot{} }

func (b Ballot) String() string { return fmt.Sprintf("%d/%s", b.Round, b.Node) }

// Vote is a node's part in choosing the plan of one epoch: the highest
// ballot it promised to, and the plan it accepted last with that plan's
// ballot. The Store persists it before the node answers, so that a node
// that restarts keeps its promises and what it accepted.
type Vote struct {
	Epoch    uint64     `json:"epoch"`
	Promised Ballot     `json:"promised"`
	Accepted Ballot     `json:"accepted"`
	Plan     *plan.Plan `json:"plan,omitempty"` // accepted at Accepted; nil for none
}

// Encode returns v's stored form.
func (v Vote) Encode() []byte { return encodeJSON(v) }

// DecodeVote parses and checks a stored vote.
func DecodeVote(b []byte) (Vote, error) {
	var v Vote
	if err := json.Unmarshal(b, &v); err != nil {
		return Vote{}, fmt.Errorf("agree: malformed vote: %w", err)
	}
	if err := v.check(); err != nil {
		return Vote{}, err
	}
	return v, nil
}

func (v Vote) check() error {
	switch {
	case v.Epoch == 0:
		return errors.New("agree: vote without an epoch")
	case v.Promised.Less(v.Accepted):
		return errors.New("agree: vote accepted a ballot above the one it promised")
	case (v.Plan == nil) != v.Accepted.IsZero():
		return errors.New("agree: vote has an accepted ballot without a plan, or a plan without a ballot")
	case v.Plan != nil && v.Plan.Epoch != v.Epoch:
		return fmt.Errorf("agree: vote of epoch %d holds a plan of epoch %d", v.Epoch, v.Plan.Epoch)
	}
	if v.Plan != nil {
		if err := v.Plan.Validate(); err != nil {
			return fmt.Errorf("agree: vote: %w", err)
		}
	}
	return nil
}

// nextEpoch is the epoch this node votes on: the one after the plan it
// holds, or the first.
func (n *Node) nextEpoch() uint64 {
	if n.plan == nil {
		return 1
	}
	return n.plan.Epoch + 1
}

// voteFor returns this node's vote on epoch; a vote on another epoch is
// moot and reads as none.
func (n *Node) voteFor(epoch uint64) Vote {
	if n.vote.Epoch == epoch {
		return n.vote
	}
	return Vote{Epoch: epoch}
}

// saveVote persists v and makes it this node's vote; when it cannot, the
// node acts as though the request never came.
func (n *Node) saveVote(v Vote) bool {
	if v == n.vote {
		return true
	}
	if err := n.store.SaveVote(v); err != nil {
		n.obs.Degraded(fmt.Sprintf("cannot persist this node's vote: %v", err))
		n.log.Error("cannot persist this node's vote", "error", err)
		return false
	}
	n.vote = v
	return true
}

// admit runs the checks every request for this node's vote passes: the
// cluster's settings, the epoch against the plan this node holds, and the
// ballot against the one it promised. When m fails them, admit answers it
// and reports false.
func (n *Node) admit(from string, m Message) (Vote, bool) {
	p := m.Plan
	switch {
	case p.Region != n.cfg.Region || p.Expect != n.cfg.Expect:
		n.nack(from, m, fmt.Sprintf("settings differ: proposal has region=%s expect=%d, %s has region=%s expect=%d",
			p.Region, p.Expect, n.cfg.Name, n.cfg.Region, n.cfg.Expect))
		return Vote{}, false
	case n.plan != nil && p.Epoch <= n.plan.Epoch:
		n.reply(from, m, Message{Type: MsgCommit, Plan: n.plan})
		return Vote{}, false
	case n.plan == nil && p.Epoch > 1:
		n.nack(from, m, n.cfg.Name+" holds no committed plan")
		return Vote{}, false
	case p.Epoch != n.nextEpoch():
		n.nack(from, m, fmt.Sprintf("%s holds epoch %d, not epoch %d", n.cfg.Name, n.plan.Epoch, p.Epoch-1))
		return Vote{}, false
	}
	v := n.voteFor(p.Epoch)
	if m.Ballot.Less(v.Promised) {
		n.reply(from, m, Message{Type: MsgNack, Ballot: v.Promised,
			Reason: fmt.Sprintf("%s promised a later proposal, by %s", n.cfg.Name, v.Promised.Node)})
		return Vote{}, false
	}
	return v, true
}

// handlePrepare answers the first phase of a proposal: this node promises
// to accept no proposal of a lower ballot for the epoch, and tells the
// plan it accepted before, which the coordinator must then propose instead
// of its own. Until deadline, a server that does not see all the proposed
// servers only waits for membership to change.
func (n *Node) handlePrepare(now time.Time, from string, m Message, deadline time.Time) {
	v, ok := n.admit(from, m)
	if !ok {
		return
	}
	// Having accepted a plan, this node promises whatever comes: the
	// coordinator learns that plan from the promise.
	if v.Plan == nil {
		var reason string
		if m.Plan.Epoch == 1 {
			reason = n.checkFirst(now, from, m, deadline)
		} else {
			reason = n.checkSuccessor(now, from, *m.Plan)
		}
		switch reason {
		case "":
		case waitReason:
			return
		default:
			n.nack(from, m, reason)
			return
		}
	}
	v.Promised = m.Ballot
	if !n.saveVote(v) {
		return
	}
	n.reply(from, m, Message{Type: MsgPromise, Accepted: v.Accepted, Plan: v.Plan})
}

// waitReason is checkFirst's answer for a proposal it put off.
const waitReason = "wait"

// checkFirst checks a first plan proposed by from: it must come from its
// first server, and a server, which serves with the others, must see them;
// a witness only promises to take part in no other plan.
func (n *Node) checkFirst(now time.Time, from string, m Message, deadline time.Time) string {
	p := m.Plan
	if p.Servers[0].Name != from {
		return fmt.Sprintf("the proposal comes from %s, not from its first server %s", from, p.Servers[0].Name)
	}
	if reason := n.checkServers(p.Servers); reason != "" {
		return reason
	}
	if !p.IsServer(n.cfg.ID) {
		return ""
	}
	for _, s := range p.Servers {
		if n.aliveID(s.Name) == s.ID {
			continue
		}
		if now.Before(deadline) {
			n.waiting = append(n.waiting, waitingProposal{from: from, m: m, deadline: deadline})
			return waitReason
		}
		return fmt.Sprintf("%s does not see server %s alive", n.cfg.Name, s.Name)
	}
	return ""
}

// handleAccept answers the second phase of a proposal: this node accepts
// the plan unless it promised a later ballot.
func (n *Node) handleAccept(from string, m Message) {
	v, ok := n.admit(from, m)
	if !ok {
		return
	}
	p := m.Plan.Clone()
	if p.Epoch > 1 {
		if reason := n.successorVoter(from, p); reason != "" {
			n.nack(from, m, reason)
			return
		}
	}
	if v.Accepted != m.Ballot || v.Plan == nil || !v.Plan.Equal(p) {
		v.Promised, v.Accepted, v.Plan = m.Ballot, m.Ballot, &p
	}
	if !n.saveVote(v) {
		return
	}
	ack := Message{Type: MsgAck}
	if n.cfg.Sign != nil {
		ack.Sig = n.cfg.Sign(p.Hash())
	}
	n.reply(from, m, ack)
}

// successorVoter returns why this node cannot vote on p, a successor
// proposed by from, or "": p must follow the plan it holds, this node must
// be one of that plan's servers, and from one too; for a recovery, from
// must be one that survives.
//
// A successor may replace its own coordinator: a server that was down long
// enough to be replaced, and came back before the replacement was
// committed, learns it from the promises of the servers that accepted it,
// and must propose it, since it may have been chosen. A server that is
// alive proposes no replacement of itself afresh: every voter refuses to
// promise one for a server it sees alive (checkSuccessor).
func (n *Node) successorVoter(from string, p plan.Plan) string {
	cur := n.plan
	replaced := plan.Replaced(*cur, p)
	if p.Recovered {
		switch err := plan.CheckRecovery(*cur, p); {
		case err != nil:
			return strings.TrimPrefix(err.Error(), "plan: ")
		case !p.IsServer(n.cfg.ID):
			return fmt.Sprintf("%s is not a server of the recovery of epoch %d", n.cfg.Name, cur.Epoch)
		case !slices.ContainsFunc(cur.Servers, func(s plan.Server) bool { return s.Name == from && !slices.Contains(replaced, s.ID) }):
			return fmt.Sprintf("%s is not a surviving server of epoch %d", from, cur.Epoch)
		}
		return ""
	}
	switch err := plan.CheckSuccessor(*cur, p); {
	case err != nil:
		return strings.TrimPrefix(err.Error(), "plan: ")
	case !cur.IsServer(n.cfg.ID):
		return fmt.Sprintf("%s is not a server of epoch %d", n.cfg.Name, cur.Epoch)
	case !slices.ContainsFunc(cur.Servers, func(s plan.Server) bool { return s.Name == from }):
		return fmt.Sprintf("%s is not a server of epoch %d", from, cur.Epoch)
	}
	return ""
}

// nack refuses req with reason.
func (n *Node) nack(to string, req Message, reason string) {
	n.log.Debug("refusing proposal", "from", to, "type", req.Type, "reason", reason)
	n.reply(to, req, Message{Type: MsgNack, Reason: reason})
}

// reply answers req.
func (n *Node) reply(to string, req Message, m Message) {
	m.ID = req.ID
	n.tr.Send(to, m)
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
		n.handlePrepare(now, w.from, w.m, w.deadline)
	}
}
