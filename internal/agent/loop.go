package agent

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agree"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/planfile"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// The agent's event loop.
//
// Memberlist delivers messages, push/pull states and membership changes on
// its own goroutines; the gossip handler only decodes them and queues an
// event. Run's loop is the one goroutine that runs events and ticks the
// agreement protocol (agree.Node), and after each it publishes what the
// rest of the agent reads under a.mu: the committed plan, the servers that
// are down, the phase and the reason. The protocol's messages leave through
// a pool of senders, so that a slow peer never holds the loop.

// maxQueuedEvents bounds the events waiting for the loop; beyond it
// messages are dropped (a flood from the network), never membership
// changes, which are coalesced.
const maxQueuedEvents = 4096

// Senders of the protocol's messages.
const (
	sendWorkers = 16 // concurrent direct sends
	sendQueue   = 4096
)

// events is the loop's queue.
type events struct {
	mu      sync.Mutex
	q       []func()
	members bool // a membership change is queued
	kick    chan struct{}
}

func newEvents() *events { return &events{kick: make(chan struct{}, 1)} }

// post queues fn for the loop; it reports false when the queue is full.
func (e *events) post(fn func()) bool {
	e.mu.Lock()
	if len(e.q) >= maxQueuedEvents {
		e.mu.Unlock()
		return false
	}
	e.q = append(e.q, fn)
	e.mu.Unlock()
	e.wake()
	return true
}

// membersChanged queues one membership change, however many happen before
// the loop runs it.
func (e *events) membersChanged(fn func()) {
	e.mu.Lock()
	if !e.members {
		e.members = true
		e.q = append(e.q, func() {
			e.mu.Lock()
			e.members = false
			e.mu.Unlock()
			fn()
		})
	}
	e.mu.Unlock()
	e.wake()
}

func (e *events) wake() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// take returns the queued events.
func (e *events) take() []func() {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.q
	e.q = nil
	return q
}

// outgoing is one protocol message for the senders.
type outgoing struct {
	to  string
	m   agree.Message
	buf []byte
}

// protoTransport is the protocol's transport: direct sends are queued for
// the senders, broadcasts go to gossip's own queue.
type protoTransport struct{ a *Agent }

func (t protoTransport) Send(to string, m agree.Message) { t.a.send(to, m) }

func (t protoTransport) Broadcast(m agree.Message) error { return t.a.tr.Broadcast(m.Encode()) }

// send queues m for the named node. A proposal that cannot be sent is
// reported to the protocol, which counts it as refused.
func (a *Agent) send(to string, m agree.Message) {
	o := outgoing{to: to, m: m, buf: m.Encode()}
	select {
	case a.sendq <- o:
	default:
		a.log.Warn("dropping a protocol message: the send queue is full", "to", to, "type", m.Type)
		a.undeliverable(o, fmt.Errorf("the send queue is full"))
	}
}

// senders sends queued messages until ctx ends.
func (a *Agent) senders(ctx context.Context) {
	var wg sync.WaitGroup
	for range sendWorkers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case o := <-a.sendq:
					if err := a.tr.SendTo(o.to, o.buf); err != nil {
						a.log.Debug("message not sent", "to", o.to, "type", o.m.Type, "error", err)
						a.undeliverable(o, err)
					}
				}
			}
		})
	}
	wg.Wait()
}

func (a *Agent) undeliverable(o outgoing, err error) {
	if o.m.Type == agree.MsgPropose || o.m.Type == agree.MsgPrepare {
		a.ev.post(func() { a.proto.Undeliverable(a.now(), o.to, o.m.ID, err) })
	}
}

// onMessage runs a decoded message on the loop.
func (a *Agent) onMessage(from string, m agree.Message) {
	switch m.Type {
	case agree.MsgEscrow:
		// The CA holder escrows its key as soon as it holds the plan,
		// which may be before this node has heard of the commit: keep
		// the escrow until then.
		if m.Hash != a.proto.PlanHash() {
			a.early = &earlyEscrow{from: from, m: m}
			return
		}
		a.handleEscrow(from, m)
	case agree.MsgWantCA:
		a.handleWantCA(from, m)
	case agree.MsgState:
		a.adoptClusterState(from, m.Cluster)
	default:
		a.proto.Receive(a.now(), from, m)
	}
}

// earlyEscrow is an escrowed CA key for a plan this node does not hold yet.
type earlyEscrow struct {
	from string
	m    agree.Message
}

// replayEscrow handles the escrow that came before its plan, once the plan
// is here.
func (a *Agent) replayEscrow() {
	if e := a.early; e != nil && e.m.Hash == a.proto.PlanHash() {
		a.early = nil
		a.handleEscrow(e.from, e.m)
	}
}

// publish copies what the protocol decided for the rest of the agent and
// moves the phase; it runs on the loop after every event.
func (a *Agent) publish(ctx context.Context) {
	p := a.proto.Plan()
	down := make(map[string]time.Time, len(a.proto.DownSince()))
	for k, v := range a.proto.DownSince() {
		down[k] = v
	}
	a.shared.Store(p)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.plan, a.planHash, a.downSince = p, a.proto.PlanHash(), down
	if p == nil {
		if a.proto.Joined() {
			a.joined = true
		}
		if a.joined {
			a.moveLocked(status.PhaseElecting, a.proto.Reason())
		}
		return
	}
	if a.st.Phase() < status.PhaseCommitted {
		a.moveLocked(status.PhaseCommitted, "")
	}
	if !a.pipeline {
		a.startPipelineLocked(ctx)
	}
}

// protoObserver applies the protocol's decisions to the agent, on the loop.
// What the protocol reports as degraded (the CA could not be made or kept,
// a plan could not be persisted) is one cause, causeProtocol, which the next
// commit clears: a committed plan is persisted, with its CA kept.
type protoObserver struct{ a *Agent }

func (o protoObserver) Committed(p plan.Plan, prev *plan.Plan, source string) {
	a := o.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if prev != nil {
		a.succeedLocked(*prev, p)
	}
	a.recoverLocked(causeProtocol)
	a.moveLocked(max(a.st.Phase(), status.PhaseCommitted), "")
}

func (o protoObserver) Warn(key, msg string)    { o.a.warn(key, msg) }
func (o protoObserver) ClearWarning(key string) { o.a.clearWarning(key) }
func (o protoObserver) Degraded(reason string)  { o.a.degrade(causeProtocol, reason) }

// protoStore persists the committed plan with the node's identity, and
// the node's vote.
type protoStore struct{ a *Agent }

func (s protoStore) SaveVote(v agree.Vote) error {
	if err := s.a.persistIdentity(); err != nil {
		return err
	}
	return planfile.SaveVote(s.a.paths.VoteFile(), v)
}

func (s protoStore) SavePlan(p plan.Plan) error {
	a := s.a
	if err := a.persistIdentity(); err != nil {
		return err
	}
	return planfile.Save(a.paths.PlanFile(), a.cred.ClusterIDString(), a.id, p, a.now())
}

// protoCA is the CA a coordinator pins: the one on disk, the operator's, or
// one made for this election and kept once every server accepted.
type protoCA struct{ a *Agent }

func (c protoCA) ProposalCA() (string, error) {
	ca, err := c.a.proposalCA()
	if err != nil {
		return "", err
	}
	c.a.propCA = ca
	return ca.Fingerprint(), nil
}

func (c protoCA) KeepCA() error {
	if c.a.propCA == nil {
		return fmt.Errorf("agent: no CA was made for the proposal")
	}
	return c.a.saveCA(c.a.propCA)
}

// newProtocol returns this node's side of the agreement protocol.
func (a *Agent) newProtocol() *agree.Node {
	cfg := agree.Config{
		Name: a.name, ID: a.id, Region: a.cfg.Region, Expect: a.cfg.Expect,
		MinMembers: a.cfg.EffectiveMinMembers(), BootstrapSize: a.cfg.BootstrapSize,
		Settle: a.cfg.Settle, ServerReplaceAfter: a.cfg.ServerReplaceAfter,
		CAPort: a.caPort(), Timings: a.tm.Agree, Logger: a.log,
		Eligible: a.endorsed.eligible,
		Sign:     func(hash string) []byte { return ed25519.Sign(a.idKey, plan.AcceptanceMessage(hash)) },
		Verify:   a.endorsed.verifyPlan,
	}
	return agree.New(cfg, agree.Saved{Plan: a.plan, Vote: a.vote}, a.now(), protoTransport{a}, protoStore{a}, protoCA{a}, protoObserver{a})
}
