package agent

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agree"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/install"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadconf"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// What a node does when a successor plan replaces the one its pipeline runs
// (internal/agree agrees on it).
//
// A node whose role changes (the new server, or a replaced server that comes
// back) restarts its pipeline: certificates for its new role, Nomad's
// configuration, and Nomad restarted in that role. Every other node keeps
// its pipeline and its running Nomad, and follows the successor in place:
// it rewrites Nomad's configuration so that a later start of Nomad joins the
// new servers (the running Nomad learns them from its own servers), and the
// CA holder of the successor holds the CA on disk and serves it. Servers that
// lack the escrowed CA key, the new one first, ask the CA holder for it: they
// need it to read the ACL management token and to take over the CA.
//
// The dead server leaves Nomad's raft peers through autopilot
// (cleanup_dead_servers, in every server's configuration): once Nomad's own
// gossip declares it failed, the leader removes it, as long as a majority
// of the voters stays. The agent never removes a raft peer itself: a server
// that is down in this agent's gossip may still be a working Nomad server,
// and autopilot is the one that knows.

// successorOf returns the plan that replaced p on this node, when this
// node's role is the same in both; the pipeline then follows it in place.
// A change of role restarts the pipeline instead (succeedLocked).
func (a *Agent) successorOf(p plan.Plan) (plan.Plan, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.plan == nil || a.plan.Epoch <= p.Epoch || a.plan.IsServer(a.id) != p.IsServer(a.id) {
		return plan.Plan{}, false
	}
	return a.plan.Clone(), true
}

// followSuccessor moves a running pipeline from p to its successor next
// without restarting Nomad. It returns the plan the pipeline runs now: p
// again when Nomad's configuration could not be written, to retry.
func (a *Agent) followSuccessor(ctx context.Context, p, next plan.Plan) plan.Plan {
	changes, err := a.writeNomadConfig(next)
	if err != nil {
		a.warn("follow", fmt.Sprintf("writing Nomad's configuration for plan epoch %d: %v; retrying", next.Epoch, err))
		return p
	}
	a.mu.Lock()
	delete(a.warnings, "follow")
	a.mu.Unlock()
	for _, c := range changes {
		a.log.Info("nomad configuration", "action", c.Action, "path", c.Path, "epoch", next.Epoch)
	}
	a.log.Info("following the successor plan; the running Nomad is left alone", "epoch", next.Epoch)
	if next.CAHolder == a.id {
		if err := a.holdCA(ctx, next); err != nil {
			a.warn("ca-holder", fmt.Sprintf("this server holds the CA in plan epoch %d, but cannot serve it: %v", next.Epoch, err))
		} else {
			a.mu.Lock()
			delete(a.warnings, "ca-holder")
			a.mu.Unlock()
		}
	}
	return next
}

// writeNomadConfig renders Nomad's configuration under p for the Nomad
// the runner uses and writes what changed.
func (a *Agent) writeNomadConfig(p plan.Plan) ([]install.Change, error) {
	files, err := nomadconf.Render(a.nomad.Agent(p))
	if err != nil {
		return nil, err
	}
	return install.Apply(a.paths.NomadConfigDir(), files)
}

// holdCA makes this node the CA holder of p while its pipeline runs: it
// keeps the CA on disk (taking the escrowed key when it has no CA of its
// own), serves it unless it already does (after a CA failover, say) and
// escrows the key to p's other servers.
func (a *Agent) holdCA(ctx context.Context, p plan.Plan) error {
	a.mu.Lock()
	serving := a.caSrv != nil
	a.mu.Unlock()
	if !serving {
		return a.startCA(ctx, p)
	}
	ca, err := a.ownCA(p)
	if err != nil {
		return err
	}
	a.mu.Lock()
	// A failover is over once the plan names this server the CA holder.
	delete(a.warnings, "ca-failover")
	a.mu.Unlock()
	a.escrowCA(ca, p)
	return nil
}

// ownCA returns the cluster CA this node holds on disk; a server that holds
// only the escrowed key takes it, with the pinned CA certificate, as its own
// CA and persists it, so that it stays the CA holder across restarts.
func (a *Agent) ownCA(p plan.Plan) (*certs.CA, error) {
	store, want := a.caStore(), a.caSigning(p)
	cur, err := store.Load()
	if err != nil {
		return nil, err
	}
	if next, _ := store.LoadNext(); cur == nil && next == nil {
		ca, err := a.escrowedCA(p)
		if err != nil {
			return nil, fmt.Errorf("agent: this node holds the CA of plan epoch %d, but %s holds neither the CA nor its escrowed key (%v); restore them from a backup",
				p.Epoch, a.paths.CADir(), err)
		}
		if err := a.saveCA(ca); err != nil {
			return nil, err
		}
		a.log.Info("holding the cluster CA from its escrowed key", "epoch", p.Epoch, "dir", a.paths.CADir())
	}
	// The CA that signs; after a rotation, the new CA that it kept beside
	// the old one until it signed.
	ca, err := store.Signing(want)
	if err != nil {
		return nil, fmt.Errorf("agent: this node holds the CA of the plan, but %w", err)
	}
	return ca, nil
}

// maybeWantCA asks p's CA holder for the escrowed CA key when this node is
// another server of p and has none yet; hash is p's hash and last is when
// it last asked.
func (a *Agent) maybeWantCA(p plan.Plan, hash string, last *time.Time) {
	if !p.IsServer(a.id) || p.CAHolder == a.id || a.now().Sub(*last) < a.tm.WantCA {
		return
	}
	if a.caStore().HasEscrow() {
		return
	}
	*last = a.now()
	if err := a.tr.SendTo(p.CAHolderName(), agree.Message{Type: agree.MsgWantCA, Hash: hash}.Encode()); err != nil {
		a.log.Debug("asking for the escrowed CA key", "to", p.CAHolderName(), "error", err)
	}
}

// handleWantCA answers a server of this node's plan that asks the CA holder
// for the escrowed CA key.
func (a *Agent) handleWantCA(from string, m agree.Message) {
	a.mu.Lock()
	p, hash, ca := a.plan, a.planHash, a.ca
	a.mu.Unlock()
	i := -1
	if p != nil {
		i = slices.IndexFunc(p.Servers, func(s plan.Server) bool { return s.Name == from && s.ID != a.id })
	}
	if i < 0 || ca == nil || p.CAHolder != a.id || hash != m.Hash {
		a.log.Debug("not sending the escrowed CA key", "to", from)
		return
	}
	// Sealed to the key the plan records: whoever sent the request, only
	// that server opens the answer.
	if sealed, ok := a.sealEscrow(ca, p.Servers[i]); ok {
		a.send(from, agree.Message{Type: agree.MsgEscrow, ID: m.ID, Sealed: sealed, Hash: m.Hash})
	}
}

// succeedLocked follows p, a successor of prev: when this node's role
// changes its pipeline stops, and the loop starts it anew with p; so it does
// when p makes this node the CA holder before its pipeline got its
// certificates, since that pipeline waits for prev's CA holder and only a
// pipeline of p starts the CA. a.mu is held.
func (a *Agent) succeedLocked(prev, p plan.Plan) {
	newHolder := p.CAHolder == a.id && prev.CAHolder != a.id && a.st.Phase() == status.PhaseCommitted
	if (prev.IsServer(a.id) != p.IsServer(a.id) || newHolder) && a.pipeStop != nil {
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
			case <-time.After(a.tm.PipelineHandover):
				a.log.Warn("the previous pipeline did not stop in time; starting the new one anyway")
			}
		}
		if prev != nil {
			// What the previous pipeline reported belongs to the node's
			// previous role, and so do the degraded causes of the steps
			// the new role does not take; the steps it takes clear
			// their own.
			role := "client"
			if p.IsServer(a.id) {
				role = "server"
			}
			a.mu.Lock()
			a.moveLocked(status.PhaseCommitted, fmt.Sprintf("this node is now a %s of plan epoch %d", role, p.Epoch))
			a.nomadSt, a.aclState = nil, ""
			if p.CAHolder != a.id {
				a.recoverLocked(causeCA)
			}
			if !p.IsServer(a.id) {
				a.recoverLocked(causeProfile)
				a.recoverLocked(causeACL)
			}
			a.mu.Unlock()
		}
		a.runPipeline(pctx, p)
	})
}
