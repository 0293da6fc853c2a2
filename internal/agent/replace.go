package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// Server replacement (DESIGN §4).
//
// When servers of the committed plan have been down for server_replace_after,
// the first live server in plan order coordinates a successor: plan.Replace
// puts the best eligible live non-server in each dead server's place and
// raises the epoch by one. It proposes the successor to the other live
// servers of the current plan; each acknowledges only when the successor is
// valid (plan.CheckSuccessor), it too has seen the replaced servers down for
// server_replace_after and the new servers alive, and it has promised no
// other plan. With acknowledgements from a majority of the current plan's
// servers, the coordinator commits the successor like a first plan: sends it
// to the servers, persists it and pushes it to every member. Nodes adopt a
// higher epoch only as a valid successor of the plan they hold; a node whose
// role changes restarts its pipeline with the new plan.

// maybeReplaceLocked starts a replacement when this node coordinates one.
// a.mu is held and a.plan is set.
func (a *Agent) maybeReplaceLocked(ctx context.Context, members []gossip.Member) {
	if a.proposing || a.now().Sub(a.lastProposal) < proposalBackoff {
		return
	}
	cur := a.plan.Clone()
	alive := aliveIn(members)
	var dead, deadNames []string
	coord := ""
	for _, s := range cur.Servers {
		since, down := a.downSince[s.Name]
		switch {
		case alive[s.Name]:
			if coord == "" {
				coord = s.ID
			}
		case down && a.now().Sub(since) >= a.cfg.ServerReplaceAfter:
			dead = append(dead, s.ID)
			deadNames = append(deadNames, s.Name)
		}
	}
	if len(dead) == 0 || coord != a.id {
		return
	}
	next, err := plan.Replace(cur, dead, a.liveMembersLocked(members))
	if err != nil {
		var ne *plan.NotEnoughError
		if errors.As(err, &ne) {
			err = fmt.Errorf("no live node is eligible to take its place")
		}
		a.warnLocked("replace", fmt.Sprintf("server %s has been down for more than %s, but it cannot be replaced: %v",
			strings.Join(deadNames, ", "), a.cfg.ServerReplaceAfter, strings.TrimPrefix(err.Error(), "plan: ")))
		return
	}
	delete(a.warnings, "replace")
	a.proposing = true
	a.bg.Go(func() { a.proposeSuccessor(ctx, cur, next) })
}

// liveMembersLocked returns the alive members with readable metadata and
// this node's cluster settings, as election members.
func (a *Agent) liveMembersLocked(members []gossip.Member) []plan.Member {
	var out []plan.Member
	for _, m := range members {
		if m.State != gossip.StateAlive || m.MetaErr != nil || m.Meta.Region != a.cfg.Region || m.Meta.Expect != a.cfg.Expect {
			continue
		}
		role, _ := plan.ParseRole(m.Meta.Role)
		out = append(out, plan.Member{
			ID: m.Meta.ID, Name: m.Name, Address: m.Address, Role: role, Pool: m.Meta.Pool,
			Zone: m.Meta.Zone, Datacenter: m.Meta.Datacenter, CPUCores: m.Meta.CPUCores, MemoryMB: m.Meta.MemoryMB,
		})
	}
	return out
}

// proposeSuccessor runs one replacement proposal as coordinator.
func (a *Agent) proposeSuccessor(ctx context.Context, cur, next plan.Plan) {
	defer func() {
		a.mu.Lock()
		a.proposing = false
		a.lastProposal = a.now()
		a.mu.Unlock()
		a.poke()
	}()
	hash := next.Hash()
	if !a.promiseOwn(hash) {
		return
	}
	replaced := plan.Replaced(cur, next)
	var voters []string
	for _, s := range cur.Servers {
		if s.ID != a.id && !slices.Contains(replaced, s.ID) {
			voters = append(voters, s.Name)
		}
	}
	a.log.Info("proposing a server replacement", "epoch", next.Epoch, "servers", strings.Join(next.ServerNames(), ","))
	acked, refusals := a.canvass(ctx, next, voters, "holds another plan")
	if need := len(cur.Servers)/2 + 1; 1+len(acked) < need {
		a.mu.Lock()
		a.releaseLocked(hash)
		a.reason = fmt.Sprintf("server replacement not agreed by %d of the %d servers (%s); retrying",
			need, len(cur.Servers), strings.Join(refusals, "; "))
		a.mu.Unlock()
		a.log.Info("server replacement not agreed; retrying", "refusals", strings.Join(refusals, "; "))
		a.sendRelease(hash, acked)
		return
	}
	sent := slices.Clone(acked)
	for _, s := range next.Servers {
		if !cur.IsServer(s.ID) {
			sent = append(sent, s.Name)
		}
	}
	commit := message{Type: msgCommit, Plan: &next}.encode()
	for _, name := range sent {
		if err := a.tr.SendTo(name, commit); err != nil {
			a.log.Warn("sending the replacement commit", "to", name, "error", err)
		}
	}
	a.adopt(next, a.name)
	a.pushCommit(next, sent)
}

// handleSuccessor answers a proposal of a plan with a higher epoch.
func (a *Agent) handleSuccessor(from string, m message) {
	p := *m.Plan
	nack := func(reason string) {
		a.log.Debug("refusing server replacement", "from", from, "reason", reason)
		a.reply(from, m, message{Type: msgNack, Reason: reason})
	}
	members := a.tr.Members()
	alive := map[string]string{} // name -> ID
	for _, mem := range members {
		if mem.State == gossip.StateAlive && mem.MetaErr == nil {
			alive[mem.Name] = mem.Meta.ID
		}
	}
	a.mu.Lock()
	if a.plan == nil {
		a.mu.Unlock()
		nack(a.name + " holds no committed plan")
		return
	}
	cur := a.plan.Clone()
	if cur.Hash() == p.Hash() {
		a.mu.Unlock()
		a.reply(from, m, message{Type: msgAck})
		return
	}
	if p.Epoch <= cur.Epoch {
		a.mu.Unlock()
		a.reply(from, m, message{Type: msgCommit, Plan: &cur})
		return
	}
	reason := ""
	replaced := plan.Replaced(cur, p)
	switch err := plan.CheckSuccessor(cur, p); {
	case err != nil:
		reason = strings.TrimPrefix(err.Error(), "plan: ")
	case !cur.IsServer(a.id):
		reason = fmt.Sprintf("%s is not a server of epoch %d", a.name, cur.Epoch)
	case !slices.ContainsFunc(cur.Servers, func(s plan.Server) bool { return s.Name == from && !slices.Contains(replaced, s.ID) }):
		reason = fmt.Sprintf("%s is not a surviving server of epoch %d", from, cur.Epoch)
	}
	for _, s := range cur.Servers {
		if reason != "" || !slices.Contains(replaced, s.ID) {
			continue
		}
		since, down := a.downSince[s.Name]
		if alive[s.Name] != "" || !down || a.now().Sub(since) < a.cfg.ServerReplaceAfter {
			reason = fmt.Sprintf("%s has not seen server %s down for %s", a.name, s.Name, a.cfg.ServerReplaceAfter)
		}
	}
	for _, s := range p.Servers {
		if reason == "" && alive[s.Name] != s.ID {
			reason = fmt.Sprintf("%s does not see server %s alive", a.name, s.Name)
		}
	}
	if reason == "" {
		reason = a.promiseLocked(p.Hash(), from)
	}
	a.mu.Unlock()
	if reason != "" {
		nack(reason)
		return
	}
	a.reply(from, m, message{Type: msgAck})
}

// succeedLocked installs p, a valid successor of the current plan: servers
// it replaces are no longer tracked, and when this node's role changes its
// pipeline restarts with p. a.mu is held.
func (a *Agent) succeedLocked(p plan.Plan) {
	cur := a.plan
	for _, id := range plan.Replaced(*cur, p) {
		for _, s := range cur.Servers {
			if s.ID == id {
				delete(a.downSince, s.Name)
			}
		}
	}
	if cur.IsServer(a.id) != p.IsServer(a.id) && a.pipeStop != nil {
		a.pipeStop()
		a.pipeline = false
	}
}

// startPipelineLocked runs the pipeline for the current plan once the
// previous pipeline, if any, has ended. a.mu is held.
func (a *Agent) startPipelineLocked(ctx context.Context) {
	a.pipeline = true
	p := a.plan.Clone()
	pctx, stop := context.WithCancel(ctx)
	prev, done := a.pipeDone, make(chan struct{})
	a.pipeStop, a.pipeDone = stop, done
	a.bg.Go(func() {
		defer close(done)
		if prev != nil {
			select {
			case <-prev:
			case <-time.After(time.Minute):
				a.log.Warn("the previous pipeline did not stop in time; starting the new one anyway")
			}
		}
		if prev != nil {
			// What the previous pipeline reported belongs to the node's
			// previous role.
			a.mu.Lock()
			a.phase = min(a.phase, PhaseCommitted)
			a.nomad, a.aclState = nil, ""
			a.mu.Unlock()
		}
		a.runPipeline(pctx, p)
	})
}
