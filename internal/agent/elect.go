package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// The agreement protocol (DESIGN §4).
//
// Every node computes the candidate plan from the live, compatible members.
// Once at least min_members are alive, Expect of them are eligible and
// membership has been stable for the settle time (or bootstrap_size members
// are alive: every machine started together is there), the candidate's first
// server, the coordinator, proposes it to the other chosen servers. Each
// server acknowledges only when it holds no committed plan, sees every
// proposed server alive and has promised no other plan; an acknowledgement
// is a promise not to serve in another plan for promiseLease. With every
// acknowledgement the coordinator sends the commit to the servers, persists
// it and gossips it; every node that learns of it persists it and gossips it
// on. A node with a committed plan never takes part in another election of
// the same epoch: restarted nodes load their plan from disk and late joiners
// receive it in push/pull syncs.

// step advances the node by one tick of the main loop.
func (a *Agent) step(ctx context.Context) {
	members := a.tr.Members()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.plan != nil {
		if a.phase < PhaseCommitted {
			a.phase = PhaseCommitted
		}
		a.trackServersLocked(members)
		a.maybeReplaceLocked(ctx, members)
		if !a.pipeline {
			a.startPipelineLocked(ctx)
		}
		return
	}
	if !a.joined {
		if countAlive(members) < 2 {
			return
		}
		// Another node joined this one: it is part of a cluster now.
		a.joined, a.reason = true, ""
	}
	a.phase = PhaseElecting
	if a.proposing {
		return
	}
	cand, reason := a.candidateLocked(members)
	if reason != "" {
		a.reason = reason
		return
	}
	coord := cand.Servers[0]
	if coord.ID != a.id {
		a.reason = fmt.Sprintf("waiting for %s to propose servers %s", coord.Name, strings.Join(cand.ServerNames(), ", "))
		return
	}
	if a.now().Sub(a.lastProposal) < proposalBackoff {
		return
	}
	a.reason = fmt.Sprintf("proposing servers %s", strings.Join(cand.ServerNames(), ", "))
	a.proposing = true
	a.bg.Go(func() { a.propose(ctx, cand) })
}

// trackServersLocked records since when each of the plan's servers has not
// been alive; a server this node never saw counts from the first look.
func (a *Agent) trackServersLocked(members []gossip.Member) {
	alive := aliveIn(members)
	for _, s := range a.plan.Servers {
		if alive[s.Name] {
			delete(a.downSince, s.Name)
		} else if _, ok := a.downSince[s.Name]; !ok {
			a.downSince[s.Name] = a.now()
		}
	}
}

func countAlive(ms []gossip.Member) int {
	n := 0
	for _, m := range ms {
		if m.State == gossip.StateAlive {
			n++
		}
	}
	return n
}

// candidateLocked computes the plan this node would propose now, or the
// reason why there is none yet.
func (a *Agent) candidateLocked(members []gossip.Member) (plan.Plan, string) {
	var eligible []plan.Member
	for _, m := range members {
		if m.State != gossip.StateAlive {
			continue
		}
		if m.MetaErr != nil {
			a.warnLocked("meta:"+m.Name, fmt.Sprintf("node %s sends metadata this version cannot read (%v); it is left out of the election", m.Name, m.MetaErr))
			continue
		}
		if m.Meta.Region != a.cfg.Region || m.Meta.Expect != a.cfg.Expect {
			a.warnLocked("settings:"+m.Name, fmt.Sprintf(
				"node %s has region=%s expect=%d but this node has region=%s expect=%d; it is left out of the election until its configuration matches",
				m.Name, m.Meta.Region, m.Meta.Expect, a.cfg.Region, a.cfg.Expect))
			continue
		}
		delete(a.warnings, "settings:"+m.Name)
		delete(a.warnings, "meta:"+m.Name)
		role, _ := plan.ParseRole(m.Meta.Role)
		eligible = append(eligible, plan.Member{
			ID: m.Meta.ID, Name: m.Name, Address: m.Address, Role: role, Pool: m.Meta.Pool,
			Zone: m.Meta.Zone, Datacenter: m.Meta.Datacenter, CPUCores: m.Meta.CPUCores, MemoryMB: m.Meta.MemoryMB,
		})
	}
	if want := a.cfg.EffectiveMinMembers(); len(eligible) < want {
		return plan.Plan{}, fmt.Sprintf("waiting for %d members with matching settings to be alive, have %d", want, len(eligible))
	}
	cand, err := plan.Elect(eligible, plan.Settings{Expect: a.cfg.Expect, Region: a.cfg.Region})
	if err != nil {
		return plan.Plan{}, strings.TrimPrefix(err.Error(), "plan: ")
	}
	// Every machine of a known bootstrap is here: nothing better can
	// come by waiting.
	complete := a.cfg.BootstrapSize > 0 && len(eligible) >= a.cfg.BootstrapSize
	if stable := a.now().Sub(a.lastChange); stable < a.cfg.Settle && !complete {
		return plan.Plan{}, fmt.Sprintf("membership changed %s ago; electing once it has been stable for %s",
			stable.Round(100*time.Millisecond), a.cfg.Settle)
	}
	return cand, ""
}

func (a *Agent) warnLocked(key, msg string) {
	if a.warnings[key] != msg {
		a.warnings[key] = msg
		a.log.Warn(msg)
	}
}

// propose runs one proposal as coordinator.
func (a *Agent) propose(ctx context.Context, cand plan.Plan) {
	defer func() {
		a.mu.Lock()
		a.proposing = false
		a.lastProposal = a.now()
		a.mu.Unlock()
		a.poke()
	}()
	ca, err := a.proposalCA()
	if err != nil {
		a.setDegraded(fmt.Sprintf("cannot create the cluster CA: %v", err))
		return
	}
	cand.Epoch = 1
	cand.CAFingerprint = ca.Fingerprint()
	cand.CAPort = a.caPort()
	hash := cand.Hash()
	if !a.promiseOwn(hash) {
		return
	}

	var others []string
	for _, s := range cand.Servers {
		if s.ID != a.id {
			others = append(others, s.Name)
		}
	}
	acked, refusals := a.canvass(ctx, cand, others, "already holds a committed plan")
	if len(refusals) > 0 {
		a.mu.Lock()
		a.releaseLocked(hash)
		a.reason = "proposal not accepted (" + strings.Join(refusals, "; ") + "); retrying"
		a.mu.Unlock()
		a.log.Info("proposal not accepted; retrying", "refusals", strings.Join(refusals, "; "))
		a.sendRelease(hash, acked)
		return
	}
	// Keep the CA key before anyone pins its certificate; then tell the
	// servers: should this node die now, they hold the plan and gossip it,
	// and this node adopts it from them when it returns.
	if err := a.saveCA(ca); err != nil {
		a.mu.Lock()
		a.releaseLocked(hash)
		a.mu.Unlock()
		a.setDegraded(fmt.Sprintf("cannot persist the cluster CA: %v", err))
		return
	}
	commit := message{Type: msgCommit, Plan: &cand}.encode()
	for _, name := range others {
		if err := a.tr.SendTo(name, commit); err != nil {
			a.log.Warn("sending commit", "to", name, "error", err)
		}
	}
	a.adopt(cand, a.name)
	a.pushCommit(cand, others)
}

// promiseOwn makes this node promise its own proposal hash, reporting
// whether it could (it may have promised another proposal already).
func (a *Agent) promiseOwn(hash string) bool {
	a.mu.Lock()
	reason := a.promiseLocked(hash, a.name)
	a.mu.Unlock()
	if reason != "" {
		a.log.Debug("not proposing", "hash", hash, "reason", reason)
		return false
	}
	return true
}

// canvass proposes p to voters and sorts their answers into those that
// acknowledged and refusals, sorted. A voter that answers with a committed
// plan of its own refuses (holds says how) and this node adopts that plan.
func (a *Agent) canvass(ctx context.Context, p plan.Plan, voters []string, holds string) (acked, refusals []string) {
	type result struct {
		name  string
		reply message
		err   error
	}
	results := make(chan result, len(voters))
	for _, name := range voters {
		go func() {
			r, err := a.request(ctx, name, message{Type: msgPropose, Plan: &p})
			results <- result{name, r, err}
		}()
	}
	for range voters {
		r := <-results
		switch {
		case r.err != nil:
			refusals = append(refusals, fmt.Sprintf("%s: %v", r.name, r.err))
		case r.reply.Type == msgAck:
			acked = append(acked, r.name)
		case r.reply.Type == msgCommit:
			refusals = append(refusals, fmt.Sprintf("%s %s", r.name, holds))
			a.adopt(*r.reply.Plan, r.name)
		default:
			refusals = append(refusals, fmt.Sprintf("%s: %s", r.name, r.reply.Reason))
		}
	}
	slices.Sort(refusals)
	return acked, refusals
}

// sendRelease frees the promises that the nodes named in to made for the
// proposal hash.
func (a *Agent) sendRelease(hash string, to []string) {
	rel := message{Type: msgRelease, Hash: hash}.encode()
	for _, name := range to {
		a.tr.SendTo(name, rel)
	}
}

// pushFanout bounds the coordinator's concurrent direct sends of a commit.
const pushFanout = 16

// pushCommit sends the committed plan straight to every other live member
// but the servers, which have it already: gossip alone spreads it slowly
// while a large cluster's membership is still converging. Gossip relays and
// push/pull syncs remain the fallback for anything this misses.
func (a *Agent) pushCommit(p plan.Plan, done []string) {
	skip := map[string]bool{a.name: true}
	for _, n := range done {
		skip[n] = true
	}
	msg := message{Type: msgCommit, Plan: &p}.encode()
	sem := make(chan struct{}, pushFanout)
	var wg sync.WaitGroup
	for _, m := range a.tr.Members() {
		if m.State != gossip.StateAlive || skip[m.Name] {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := a.tr.SendTo(m.Name, msg); err != nil {
				a.log.Debug("pushing the commit", "to", m.Name, "error", err)
			}
		})
	}
	wg.Wait()
}

// promiseLocked pledges this node to the plan with hash, proposed by from;
// it returns why it cannot, or "".
func (a *Agent) promiseLocked(hash, from string) string {
	now := a.now()
	if p := a.promise; p != nil && p.hash != hash && now.Before(p.expires) {
		return fmt.Sprintf("promised to another plan proposed by %s", p.from)
	}
	a.promise = &promise{hash: hash, from: from, expires: now.Add(promiseLease)}
	return ""
}

func (a *Agent) releaseLocked(hash string) {
	if a.promise != nil && a.promise.hash == hash {
		a.promise = nil
	}
}

// request sends m to the named node and waits for its reply.
func (a *Agent) request(ctx context.Context, to string, m message) (message, error) {
	a.mu.Lock()
	a.nextReq++
	m.ID = a.nextReq
	ch := make(chan message, 1)
	a.pending[m.ID] = ch
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.pending, m.ID)
		a.mu.Unlock()
	}()
	if err := a.tr.SendTo(to, m.encode()); err != nil {
		return message{}, err
	}
	t := time.NewTimer(requestTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r, nil
	case <-t.C:
		return message{}, errors.New("no answer in time")
	case <-ctx.Done():
		return message{}, ctx.Err()
	}
}

// reply answers a request asynchronously: memberlist delivers messages on
// its own goroutines, which must not block on the network.
func (a *Agent) reply(to string, req message, m message) {
	m.ID = req.ID
	go func() {
		if err := a.tr.SendTo(to, m.encode()); err != nil {
			a.log.Debug("reply not sent", "to", to, "type", m.Type, "error", err)
		}
	}()
}

func (a *Agent) handleMessage(from string, payload []byte) {
	m, err := decodeMessage(payload)
	if err != nil {
		a.log.Warn("dropping malformed message", "from", from, "error", err)
		return
	}
	switch m.Type {
	case msgPropose:
		deadline := time.Now()
		if a.waiting.Load() < maxWaitingProposals {
			deadline = deadline.Add(proposalWait)
		}
		a.handlePropose(from, m, deadline)
	case msgAck, msgNack:
		a.deliver(m)
	case msgCommit:
		a.deliver(m)
		a.adopt(*m.Plan, from)
	case msgRelease:
		a.mu.Lock()
		if a.promise != nil && a.promise.from == from {
			a.releaseLocked(m.Hash)
		}
		a.mu.Unlock()
	case msgAnnounce:
		a.mu.Lock()
		have := a.plan != nil && a.plan.Hash() == m.Hash
		a.mu.Unlock()
		if !have && from != "" {
			a.reply(from, message{}, message{Type: msgFetch})
		}
	case msgEscrow:
		a.handleEscrow(from, m)
	case msgWantCA:
		a.handleWantCA(from, m)
	case msgFetch:
		a.mu.Lock()
		p := a.plan
		a.mu.Unlock()
		if p != nil {
			a.reply(from, m, message{Type: msgCommit, Plan: p})
		}
	}
}

func (a *Agent) deliver(m message) {
	a.mu.Lock()
	ch := a.pending[m.ID]
	a.mu.Unlock()
	if ch != nil {
		select {
		case ch <- m:
		default:
		}
	}
}

// proposalWait is how long a server waits to see the proposed servers alive
// before it refuses a proposal for not seeing them: right after machines
// start together, the coordinator may see every member before gossip has
// told the others about it, and a refusal sent to a node this one does not
// know yet cannot even be delivered, so the coordinator would wait out its
// request timeout and back off. Shorter than requestTimeout, so the answer
// arrives while the coordinator still waits.
const proposalWait = requestTimeout / 3

// proposalRecheck is how often a waiting server looks at membership again.
const proposalRecheck = 50 * time.Millisecond

// maxWaitingProposals bounds the proposals that wait at once; more are
// answered at once, so a flood of proposals costs no more than a few timers.
const maxWaitingProposals = 8

// handlePropose answers a coordinator's proposal; until deadline a missing
// server only makes it look again later (proposalWait).
func (a *Agent) handlePropose(from string, m message, deadline time.Time) {
	p := *m.Plan
	nack := func(reason string) {
		a.log.Debug("refusing proposal", "from", from, "reason", reason)
		a.reply(from, m, message{Type: msgNack, Reason: reason})
	}
	switch {
	case p.Region != a.cfg.Region || p.Expect != a.cfg.Expect:
		nack(fmt.Sprintf("settings differ: proposal has region=%s expect=%d, %s has region=%s expect=%d",
			p.Region, p.Expect, a.name, a.cfg.Region, a.cfg.Expect))
		return
	case p.Epoch > 1:
		a.handleSuccessor(from, m)
		return
	case !p.IsServer(a.id):
		nack(a.name + " is not a server in this plan")
		return
	case p.Servers[0].Name != from:
		nack(fmt.Sprintf("the proposal comes from %s, not from its first server %s", from, p.Servers[0].Name))
		return
	}
	alive := map[string]string{} // name -> ID
	for _, mem := range a.tr.Members() {
		if mem.State == gossip.StateAlive && mem.MetaErr == nil {
			alive[mem.Name] = mem.Meta.ID
		}
	}
	for _, s := range p.Servers {
		if alive[s.Name] != s.ID {
			if time.Now().Before(deadline) {
				// Memberlist delivers on its own goroutine: look again
				// from another one.
				a.waiting.Add(1)
				time.AfterFunc(proposalRecheck, func() {
					a.waiting.Add(-1)
					a.handlePropose(from, m, deadline)
				})
				return
			}
			nack(fmt.Sprintf("%s does not see server %s alive", a.name, s.Name))
			return
		}
	}
	a.mu.Lock()
	if a.plan != nil {
		cur := a.plan
		a.mu.Unlock()
		if cur.Hash() == p.Hash() {
			a.reply(from, m, message{Type: msgAck})
		} else {
			a.reply(from, m, message{Type: msgCommit, Plan: cur})
		}
		return
	}
	reason := a.promiseLocked(p.Hash(), from)
	a.mu.Unlock()
	if reason != "" {
		nack(reason)
		return
	}
	a.reply(from, m, message{Type: msgAck})
}

// adopt takes a committed plan learnt from source (a node name, or this
// node's own name when it coordinated the election), persists it and gossips
// it on. It reports whether the plan was new to this node.
func (a *Agent) adopt(p plan.Plan, source string) bool {
	if p.Region != a.cfg.Region || p.Expect != a.cfg.Expect {
		a.warn("plan-settings:"+source, fmt.Sprintf(
			"ignoring the plan from %s: it has region=%s expect=%d, this node has region=%s expect=%d; fix the configuration of one of them",
			source, p.Region, p.Expect, a.cfg.Region, a.cfg.Expect))
		return false
	}
	hash := p.Hash()
	a.mu.Lock()
	if cur := a.plan; cur != nil {
		curHash, curEpoch := cur.Hash(), cur.Epoch
		// A valid successor replaces dead servers (replace.go); any other
		// plan leaves this node's own in place.
		if succErr := plan.CheckSuccessor(*cur, p); succErr != nil {
			a.mu.Unlock()
			switch {
			case curHash == hash, p.Epoch < curEpoch:
			case p.Epoch == curEpoch:
				a.warn("conflict", fmt.Sprintf(
					"node %s holds another committed plan of epoch %d (servers %s); this node keeps its own (servers %s). "+
						"Two groups of nodes elected apart: set min_members to a majority of the cluster's nodes",
					source, p.Epoch, strings.Join(p.ServerNames(), ", "), strings.Join(cur.ServerNames(), ", ")))
			default:
				a.warn("epoch", fmt.Sprintf("node %s holds plan epoch %d, which is not a valid successor of this node's epoch %d (%v); this node keeps its own",
					source, p.Epoch, curEpoch, succErr))
			}
			return false
		}
	}
	err := a.persistIdentity()
	if err == nil {
		err = savePlan(a.paths.PlanFile(), a.token.ClusterIDString(), a.id, p, a.now())
	}
	if err != nil {
		a.degraded = fmt.Sprintf("cannot persist the committed plan: %v", err)
		a.mu.Unlock()
		a.log.Error("cannot persist the committed plan", "error", err)
		return false
	}
	if a.plan != nil {
		a.succeedLocked(p)
	}
	a.plan = &p
	a.promise = nil
	a.reason = ""
	if a.phase < PhaseCommitted {
		a.phase = PhaseCommitted
	}
	a.mu.Unlock()
	a.log.Info("plan committed", "epoch", p.Epoch, "servers", strings.Join(p.ServerNames(), ","),
		"ca_holder", p.CAHolderName(), "from", source)
	// Gossip relays broadcasts, so only the coordinator and nodes that learnt
	// the plan in a push/pull sync (after a partition healed, say) start one.
	if source == a.name || source == pushPullSource {
		a.gossipPlan(p)
	}
	a.poke()
	return true
}

// gossipPlan broadcasts a committed plan, or an announcement of it when the
// plan does not fit a packet; nodes that miss it fetch it from the sender.
func (a *Agent) gossipPlan(p plan.Plan) {
	if err := a.tr.Broadcast(message{Type: msgCommit, Plan: &p}.encode()); err == nil {
		return
	}
	if err := a.tr.Broadcast(message{Type: msgAnnounce, Hash: p.Hash(), Epoch: p.Epoch}.encode()); err != nil {
		a.log.Warn("cannot gossip the plan", "error", err)
	}
}

func (a *Agent) localState() []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.plan == nil {
		return nil
	}
	return encodeJSON(pushState{Version: 1, Plan: a.plan})
}

// pushPullSource names the source of plans learnt in push/pull syncs.
const pushPullSource = "a push/pull sync"

func (a *Agent) mergeRemoteState(buf []byte) {
	if len(buf) == 0 {
		return
	}
	s, err := decodePushState(buf)
	if err != nil {
		a.log.Warn("dropping malformed push/pull state", "error", err)
		return
	}
	if s.Plan != nil {
		a.adopt(*s.Plan, pushPullSource)
	}
}
