// Package agree is the agreement protocol of DESIGN §4: the nodes of a
// cluster elect the first plan (its Nomad servers and CA holder), commit it
// and spread it, and replace a server that stays dead by a successor plan of
// the next epoch.
//
// A Node is a state machine with no goroutines, clock or I/O of its own:
// one caller's loop feeds it membership, messages and ticks, each with the
// time, and it acts through the Transport, Store, CA and Observer it is
// given, from that loop only. The daemon runs it over gossip; the tests run
// hundreds of them in one goroutine over a simulated network and clock.
//
// The protocol. Every node computes the candidate plan from the live,
// compatible members. Once at least MinMembers are alive, Expect of them are
// eligible and membership has been stable for Settle (or BootstrapSize
// members are alive: every machine started together is there), the
// candidate's first server, the coordinator, proposes it to the other chosen
// servers, and to as many other members as it takes for MinMembers members
// in all to vote (when MinMembers is a majority, any two such groups share
// a member).
//
// Each plan of an epoch is chosen as in Paxos. A proposal carries a ballot
// (a round and the coordinator's name) above any the coordinator saw. In
// the first phase each voter promises to accept no proposal of a lower
// ballot for the epoch and reports the plan it accepted before, if any; a
// chosen server promises a plan of its own only once it sees every proposed
// server alive. With the promises of every server and MinMembers members in
// all, the coordinator keeps its CA and proposes, in the second phase, the
// plan of the highest ballot reported, or its own when none was: a plan
// that a quorum may have accepted is finished, never replaced. Once
// MinMembers members in all accepted, the plan is chosen: the coordinator
// sends the commit to the servers and to those that accepted, persists it
// and gossips it; every node that learns of it persists it and gossips it
// on. Promises and acceptances are persisted before they are answered
// (Store.SaveVote), so a restarted node keeps them. A node with a committed
// plan never adopts another plan of the same epoch: restarted nodes load
// their plan from disk and late joiners receive it in push/pull syncs.
//
// Server replacement. When servers of the committed plan have been down for
// ServerReplaceAfter, the first live server in plan order coordinates a
// successor: plan.Replace puts the best eligible live non-server in each
// dead server's place and raises the epoch by one. The voters are the
// current plan's servers, and each phase needs a majority of them, the
// coordinator included. A surviving server promises a successor of its own
// only when it is valid (plan.CheckSuccessor), it too has seen the replaced
// servers down for ServerReplaceAfter, and it sees the new servers alive.
// Nodes adopt a higher epoch only as a valid successor of the plan they
// hold.
package agree

import (
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// Config configures a Node.
type Config struct {
	Name   string // this node's gossip name
	ID     string // this node's ID
	Region string // the cluster's region: members and plans of another are left out
	Expect int    // the cluster's number of servers
	// MinMembers is how many members with matching settings must be alive
	// before an election (at least 1).
	MinMembers int
	// BootstrapSize, when set, elects at once when that many members are
	// alive, without waiting for Settle.
	BootstrapSize int
	// Settle is how long membership must be stable before an election.
	Settle time.Duration
	// ServerReplaceAfter is how long a server of the plan must be down
	// before a successor replaces it.
	ServerReplaceAfter time.Duration
	// CAPort is the CA endpoint's port, written into proposals.
	CAPort int
	// Eligible reports whether a member holds the server token (its
	// endorsement checks out): only such a member is elected, whatever
	// role it asks for, and a proposal naming another is refused. Nil
	// counts every member eligible.
	Eligible func(gossip.Meta) bool
	// Sign signs, with this node's identity key, its acceptance of the plan
	// whose hash is given (plan.AcceptanceMessage); Verify checks that a
	// committed plan carries its servers' signatures (plan.VerifySignatures).
	// With them, a coordinator commits a plan only once a majority of its
	// servers signed it, and a node adopts no plan that fails Verify, from a
	// commit or a push/pull sync. Nil leaves plans unsigned.
	Sign    func(hash string) []byte
	Verify  func(plan.Plan) error
	Timings Timings
	Logger  *slog.Logger // nil discards
}

// Timings are the protocol's timers.
type Timings struct {
	// RequestTimeout is how long a coordinator waits for the answers to
	// each phase of a proposal.
	RequestTimeout time.Duration
	// ProposalBackoff spaces a coordinator's proposals.
	ProposalBackoff time.Duration
	// ProposalWait is how long a server waits to see the proposed servers
	// alive before it refuses for not seeing them: right after machines
	// start together, the coordinator may see every member before gossip
	// has told the others about it. Shorter than RequestTimeout, so that
	// the answer arrives while the coordinator still waits.
	ProposalWait time.Duration
	// MaxWaiting bounds the proposals that wait at once; more are answered
	// at once, so a flood of proposals costs no more than a few entries.
	MaxWaiting int
	// ElectingTick is how often the caller should tick a node without a
	// plan.
	ElectingTick time.Duration
	// CommittedTick is how often it should tick a node with a plan while
	// one of its servers is down or at a new address, or a successor is
	// being agreed.
	CommittedTick time.Duration
	// IdleTick is how often it should tick a node with a plan while every
	// server is alive; membership changes are events of their own.
	IdleTick time.Duration
	// FetchAfter is how long a node that joined a pool waits for a plan,
	// with membership unchanged and no proposal reaching it, before it asks
	// members for theirs, in turn, FetchEvery apart and then twice, four
	// and eight times as far apart. A plan reaches a joining node with its
	// seed's push/pull state; a node whose seed holds none it accepts (a
	// seed that is new itself, or that offers a plan no node accepts) would
	// otherwise wait for the next push/pull sync with another member
	// (30 s). Zero FetchEvery never asks.
	FetchAfter, FetchEvery time.Duration
}

// DefaultTimings returns the timings the daemon runs with.
func DefaultTimings() Timings {
	return Timings{
		RequestTimeout:  3 * time.Second,
		ProposalBackoff: time.Second,
		ProposalWait:    time.Second,
		MaxWaiting:      8,
		ElectingTick:    100 * time.Millisecond,
		CommittedTick:   time.Second,
		IdleTick:        30 * time.Second,
		FetchAfter:      10 * time.Second,
		FetchEvery:      3 * time.Second,
	}
}

// Transport carries messages to other nodes. Its methods are called from the
// Node's loop and must not block.
type Transport interface {
	// Send queues m for the named node. When m is a request (a proposal,
	// with an ID) that cannot be delivered, the caller may report it
	// with Node.Undeliverable; a request nobody answers times out.
	Send(to string, m Message)
	// Broadcast gossips m to every node; it fails when m does not fit a
	// broadcast.
	Broadcast(m Message) error
}

// Store persists the committed plan and the node's vote. It is called from
// the Node's loop.
type Store interface {
	// SavePlan persists p before the Node acts on it; when it fails the
	// Node keeps the plan it had.
	SavePlan(p plan.Plan) error
	// SaveVote persists v before the Node answers on it; when it fails
	// the Node does not answer.
	SaveVote(v Vote) error
}

// Saved is what a Node persisted in an earlier run.
type Saved struct {
	Plan *plan.Plan // the committed plan; nil for none
	Vote *Vote      // the last vote; nil for none
}

// CA is the cluster CA a coordinator pins in its first plan. Its methods are
// called from the Node's loop.
type CA interface {
	// ProposalCA returns the fingerprint of the CA to pin: the one kept
	// earlier, else one made now (and kept only by KeepCA).
	ProposalCA() (fingerprint string, err error)
	// KeepCA persists that CA. It runs once every chosen server
	// promised, before any node accepts the plan, so that no chosen plan
	// pins a CA whose key is lost.
	KeepCA() error
}

// Observer learns what the Node decided. Its methods are called from the
// Node's loop and must not call back into the Node.
type Observer interface {
	// Committed reports that p, a first plan or the successor of prev, is
	// committed and persisted on this node; source names where it came
	// from (a node, PushPullSource, or this node when it coordinated).
	Committed(p plan.Plan, prev *plan.Plan, source string)
	// Warn shows a warning under key until ClearWarning(key).
	Warn(key, msg string)
	// ClearWarning drops the warning of key, once its cause is gone.
	ClearWarning(key string)
	// Degraded reports a failure that needs the operator: the CA or the
	// plan cannot be persisted.
	Degraded(reason string)
}

// PushPullSource names the source of plans learnt in push/pull syncs.
const PushPullSource = "a push/pull sync"

// Node is one node's side of the protocol. It is not safe for concurrent
// use: one loop calls all its methods.
type Node struct {
	cfg   Config
	t     Timings
	tr    Transport
	store Store
	ca    CA
	obs   Observer
	log   *slog.Logger

	members    []gossip.Member
	cand       *election // the election over members; computed on demand
	lastChange time.Time
	joined     bool
	lastFetch  time.Time // when this node last asked a member for its plan
	fetched    int       // how many times it asked
	lastVoted  time.Time // when a proposal last reached this node

	plan     *plan.Plan
	planHash string
	reason   string

	vote         Vote   // what this node promised and accepted
	seen         Ballot // the highest ballot refusals told of
	prop         *proposal
	failed       uint // proposals that failed in a row
	lastProposal time.Time
	waiting      []waitingProposal
	downSince    map[string]time.Time // plan servers not alive, since when
	nextReq      uint64

	bugs bugs
}

// bugs break the protocol on purpose: the simulator's tests set them to show
// that its invariants catch each one. The daemon never sets them.
type bugs struct {
	commitEarly    bool // a coordinator proposes and commits once any one voter answered yes
	adoptSameEpoch bool // a node adopts another plan of the epoch it holds
	minorityQuorum bool // a successor needs only a minority of the servers
}

// New returns a node that holds what it saved earlier, with membership last
// changed at now.
func New(cfg Config, saved Saved, now time.Time, tr Transport, store Store, ca CA, obs Observer) *Node {
	n := &Node{
		cfg: cfg, t: cfg.Timings, tr: tr, store: store, ca: ca, obs: obs, log: cfg.Logger,
		lastChange: now,
		downSince:  map[string]time.Time{},
		// Request IDs start from the clock, so that an answer to a
		// request of an earlier run of this node matches none of this
		// run's.
		nextReq: uint64(now.UnixNano()),
	}
	if n.t == (Timings{}) {
		n.t = DefaultTimings()
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.cfg.MinMembers < 1 {
		n.cfg.MinMembers = 1
	}
	if saved.Plan != nil {
		n.setPlan(saved.Plan.Clone())
	}
	if v := saved.Vote; v != nil && v.check() == nil && v.Epoch >= n.nextEpoch() {
		n.vote = *v
	}
	return n
}

// Plan returns the committed plan this node holds; nil before the commit.
// The caller must not change it.
func (n *Node) Plan() *plan.Plan { return n.plan }

// PlanHash returns the hash of Plan(); "" before the commit.
func (n *Node) PlanHash() string { return n.planHash }

// Reason says why the node waits, while it elects or a replacement is not
// agreed; "" otherwise.
func (n *Node) Reason() string { return n.reason }

// Joined reports whether the node is part of a pool: the caller said so
// (SetJoined) or another member is alive.
func (n *Node) Joined() bool { return n.joined }

// Proposing reports whether this node coordinates a proposal now.
func (n *Node) Proposing() bool { return n.prop != nil }

// DownSince returns since when each server of the plan has not been alive,
// as this node saw it; the caller must not change the map.
func (n *Node) DownSince() map[string]time.Time { return n.downSince }

// SetJoined records that a seed answered this node.
func (n *Node) SetJoined() {
	if !n.joined {
		n.joined, n.reason = true, ""
	}
}

// MembersChanged gives the node the members as gossip sees them now, this
// node included, sorted by name. The caller must not change the slice
// afterwards.
func (n *Node) MembersChanged(now time.Time, members []gossip.Member) {
	n.members = members
	n.cand = nil
	n.lastChange = now
	if n.plan != nil {
		n.trackServers(now)
	}
	n.recheckWaiting(now)
}

// NextTick returns how long the caller may wait before the next Tick when
// nothing else happens.
func (n *Node) NextTick(now time.Time) time.Duration {
	d := n.t.IdleTick
	switch {
	case n.plan == nil:
		d = n.t.ElectingTick
	case len(n.downSince) > 0 || n.prop != nil || n.anyMoved():
		d = n.t.CommittedTick
	}
	until := func(t time.Time) {
		if left := t.Sub(now); left < d {
			d = max(left, time.Millisecond)
		}
	}
	if n.prop != nil {
		until(n.prop.deadline)
	}
	for _, w := range n.waiting {
		until(w.deadline)
	}
	return d
}

// Tick advances the node's timers: elections, proposals that time out,
// servers that stay down.
func (n *Node) Tick(now time.Time) {
	n.recheckWaiting(now)
	if n.prop != nil && !now.Before(n.prop.deadline) {
		n.prop.timeout()
		n.progress(now)
	}
	if n.plan != nil {
		n.trackServers(now)
		n.maybeReplace(now)
		return
	}
	if !n.joined {
		if countAlive(n.members) < 2 {
			return
		}
		// Another node joined this one: it is part of a cluster now.
		n.joined, n.reason = true, ""
	}
	n.maybeFetch(now)
	n.maybePropose(now)
}

// maybeFetch asks one alive member for its committed plan once this
// joined node has seen membership unchanged, and no proposal, for
// FetchAfter, and then again at growing intervals (Timings.FetchEvery); the
// members take turns, from a place that depends on this node's name. A
// member with a plan answers with a commit, checked like any other. While
// a cluster forms, its membership changes and its proposals reach the
// nodes, so that only a node that joined a cluster that has its plan asks.
func (n *Node) maybeFetch(now time.Time) {
	every := n.t.FetchEvery << min(n.fetched, 3)
	if n.t.FetchEvery <= 0 || n.prop != nil || now.Sub(n.lastChange) < n.t.FetchAfter ||
		now.Sub(n.lastVoted) < n.t.FetchAfter || now.Sub(n.lastFetch) < every {
		return
	}
	var others []string
	for _, m := range n.members {
		if m.State == gossip.StateAlive && m.Name != n.cfg.Name {
			others = append(others, m.Name)
		}
	}
	if len(others) == 0 {
		return
	}
	n.lastFetch = now
	h := fnv.New32a()
	h.Write([]byte(n.cfg.Name))
	to := others[(int(h.Sum32()%uint32(len(others)))+n.fetched)%len(others)]
	n.fetched++
	n.tr.Send(to, Message{Type: MsgFetch})
}

// Receive handles a message from the named node. The CA holder's messages
// are the caller's.
func (n *Node) Receive(now time.Time, from string, m Message) {
	switch m.Type {
	case MsgPrepare:
		n.lastVoted = now
		deadline := now
		if len(n.waiting) < n.t.MaxWaiting {
			deadline = now.Add(n.t.ProposalWait)
		}
		n.handlePrepare(now, from, m, deadline)
	case MsgPropose:
		n.lastVoted = now
		n.handleAccept(from, m)
	case MsgPromise, MsgAck, MsgNack:
		n.answer(now, from, m)
	case MsgCommit:
		n.answer(now, from, m)
		n.adopt(now, m.Plan.Clone(), from)
	case MsgAnnounce:
		if n.planHash != m.Hash && from != "" {
			n.tr.Send(from, Message{Type: MsgFetch})
		}
	case MsgFetch:
		if n.plan != nil {
			n.tr.Send(from, Message{Type: MsgCommit, ID: m.ID, Plan: n.plan})
		}
	}
}

// MergeRemote handles the plan a peer holds, learnt in a push/pull sync.
func (n *Node) MergeRemote(now time.Time, p *plan.Plan) {
	if p != nil {
		n.adopt(now, p.Clone(), PushPullSource)
	}
}

// Undeliverable reports that the request with id could not be sent to the
// named node.
func (n *Node) Undeliverable(now time.Time, to string, id uint64, err error) {
	if n.prop == nil {
		return
	}
	if name, ok := n.prop.asked[id]; ok && name == to {
		delete(n.prop.asked, id)
		n.prop.refuse(to + ": " + err.Error())
		n.progress(now)
	}
}

func (n *Node) setPlan(p plan.Plan) {
	n.plan = &p
	n.planHash = p.Hash()
}

// aliveID returns the ID of the named member when it is alive with
// readable meta, else "". Members are sorted by name, as gossip lists them.
func (n *Node) aliveID(name string) string {
	if m, ok := n.aliveMember(name); ok {
		return m.Meta.ID
	}
	return ""
}

// aliveMember returns the named member when it is alive with readable
// meta.
func (n *Node) aliveMember(name string) (gossip.Member, bool) {
	i, found := slices.BinarySearchFunc(n.members, name, func(m gossip.Member, name string) int { return strings.Compare(m.Name, name) })
	if !found {
		return gossip.Member{}, false
	}
	if m := n.members[i]; m.State == gossip.StateAlive && m.MetaErr == nil {
		return m, true
	}
	return gossip.Member{}, false
}

func countAlive(ms []gossip.Member) int {
	c := 0
	for _, m := range ms {
		if m.State == gossip.StateAlive {
			c++
		}
	}
	return c
}
