package agent

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/acl"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agree"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/caholder"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/casvc"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// caStore is this node's CA directory.
func (a *Agent) caStore() caholder.Store {
	return caholder.Store{Dir: a.paths.CADir(), Identity: a.idKey, Now: a.now}
}

// caPort is the CA endpoint's port: the gossip port + 1 (4651 by default).
func (a *Agent) caPort() int { return a.cfg.Port + 1 }

// proposalCA returns the CA a coordinator pins in its proposal: the one on
// disk from an earlier proposal, else the one made for an earlier attempt,
// else a new one (persisted only if the plan is committed).
func (a *Agent) proposalCA() (*certs.CA, error) {
	if ca, err := a.loadCA(); err != nil || ca != nil {
		return ca, err
	}
	if a.cfg.CA.Set() {
		return a.operatorCA()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ca == nil {
		ca, err := certs.NewCA(rand.Reader, a.cred.ClusterIDString(), a.now(), 0)
		if err != nil {
			return nil, err
		}
		a.ca = ca
	}
	return a.ca, nil
}

// operatorCA loads the intermediate CA of the operator's offline root and
// verifies its chain up to the root.
func (a *Agent) operatorCA() (*certs.CA, error) { return caholder.Operator(a.cfg.CA, a.now()) }

// loadCA reads the CA from disk; nil when there is none.
func (a *Agent) loadCA() (*certs.CA, error) { return a.caStore().Load() }

// saveCA persists the CA before the plan pinning it is committed, so that a
// crash never leaves a committed plan whose CA key is lost.
func (a *Agent) saveCA(ca *certs.CA) error { return a.caStore().Save(ca) }

// startCA serves certificate requests on the CA holder.
func (a *Agent) startCA(ctx context.Context, p plan.Plan) error {
	ca, err := a.ownCA(p)
	if err != nil {
		return err
	}
	if err := a.serveCA(ctx, p, ca); err != nil {
		return err
	}
	a.escrowCA(ca, p)
	return nil
}

// escrowedCA opens the CA escrowed to this server, which must be the CA
// that signs (caSigning).
func (a *Agent) escrowedCA(p plan.Plan) (*certs.CA, error) {
	return a.caStore().Escrowed(a.caSigning(p))
}

// caHolderDown returns how long the plan's CA holder has been down, as this
// node saw it; 0 while it is alive.
func (a *Agent) caHolderDown(p plan.Plan) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	since, ok := a.downSince[p.CAHolderName()]
	if !ok {
		return 0
	}
	return a.now().Sub(since)
}

// maybeTakeOverCA makes this server sign for the cluster CA when the CA
// holder has been down for ca_failover_after and this is the first live
// server after it in the plan's order.
func (a *Agent) maybeTakeOverCA(ctx context.Context, p plan.Plan) {
	a.mu.Lock()
	serving := a.caSrv != nil
	a.mu.Unlock()
	down := a.caHolderDown(p)
	if serving || p.CAHolder == a.id || !p.IsServer(a.id) || down < a.cfg.CAFailoverAfter {
		return
	}
	if !caholder.TakesOver(p, a.id, a.aliveNames()) {
		return // an earlier server in the plan takes over
	}
	ca, err := a.escrowedCA(p)
	if err != nil {
		a.warn("ca-failover", fmt.Sprintf("the CA holder %s has been down for %s, but this server cannot take over: %v", p.CAHolderName(), down.Round(time.Second), err))
		return
	}
	if err := a.serveCA(ctx, p, ca); err != nil {
		a.warn("ca-failover", fmt.Sprintf("taking over the CA: %v", err))
		return
	}
	a.warn("ca-failover", fmt.Sprintf("the CA holder %s has been down for %s: this server now signs certificates with the escrowed CA key", p.CAHolderName(), down.Round(time.Second)))
}

// aliveNames returns the names of the members alive in gossip.
func (a *Agent) aliveNames() map[string]bool { return aliveIn(a.tr.Members()) }

// aliveIn returns the names of the alive members among members.
func aliveIn(members []gossip.Member) map[string]bool {
	alive := map[string]bool{}
	for _, m := range members {
		if m.State == gossip.StateAlive {
			alive[m.Name] = true
		}
	}
	return alive
}

// serveCA runs the CA endpoint with ca on this node, in place of the
// endpoint that answered for the gossip keys only.
func (a *Agent) serveCA(ctx context.Context, p plan.Plan, ca *certs.CA) error {
	a.mu.Lock()
	a.ca = ca
	keySrv := a.keySrv
	a.keySrv = nil
	a.mu.Unlock()
	if keySrv != nil {
		keySrv.Close()
	}
	srv, l, err := a.listenCA(p, ca, "")
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.caSrv, a.caCtx = srv, ctx
	a.mu.Unlock()
	go srv.Serve(l)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	a.log.Info("CA endpoint listening", "address", l.Addr().String(), "fingerprint", ca.Fingerprint())
	return nil
}

// maybeServeKeys, on a server of p that holds the escrowed CA but does not
// sign, runs the endpoint on the CA port for the agents' gossip keys only,
// so that a node finds the keys at any server, also while the CA holder is
// down. Certificate requests get 503 there.
func (a *Agent) maybeServeKeys(ctx context.Context, p plan.Plan) {
	a.mu.Lock()
	signing, keySrv, keyFP := a.caSrv != nil, a.keySrv, a.keySrvFP
	a.mu.Unlock()
	if signing || (keySrv != nil && keyFP == a.caSigning(p)) || p.CAHolder == a.id || !p.IsServer(a.id) || !a.cred.IsServer() {
		return
	}
	ca, err := a.escrowedCA(p)
	if err != nil {
		return // not yet: the escrow comes from the CA holder
	}
	if keySrv != nil {
		// The CA rotated: the endpoint presents the CA that signs now.
		keySrv.Close()
	}
	srv, l, err := a.listenCA(p, ca, fmt.Sprintf("this server does not sign certificates; the CA holder %s does", p.CAHolderName()))
	if err != nil {
		a.log.Debug("cannot answer for the gossip keys yet", "error", err)
		return
	}
	a.mu.Lock()
	a.keySrv, a.keySrvFP = srv, ca.Fingerprint()
	a.mu.Unlock()
	go srv.Serve(l)
	go func() {
		<-ctx.Done() // the pipeline of p ended
		srv.Close()
		a.mu.Lock()
		if a.keySrv == srv {
			a.keySrv = nil
		}
		a.mu.Unlock()
	}()
	a.log.Info("answering for the agents' gossip keys", "address", l.Addr().String())
}

// listenCA listens on the CA port with ca; notSigning makes it answer for
// the gossip keys only.
func (a *Agent) listenCA(p plan.Plan, ca *certs.CA, notSigning string) (*casvc.Server, net.Listener, error) {
	return caholder.Listen(caholder.Endpoint{
		CA:         ca,
		Self:       certs.Identity{NodeID: a.id, NodeName: a.name, Region: p.Region, Address: a.advertise},
		Bind:       a.bind,
		Port:       p.CAPort,
		CSRKey:     a.keys.CSR,
		Authority:  casvc.AuthorityFunc(a.authorize),
		Keys:       casvc.KeysFunc(a.answerKeys),
		Member:     a.node.IsMemberAddr,
		Lifetime:   a.cfg.CertLifetime,
		Now:        a.now,
		Logger:     a.log.With("component", "ca"),
		NotSigning: notSigning,
	})
}

// authorize decides what a requesting node is certified as under the
// committed plan (caholder.Authorize).
func (a *Agent) authorize(req *certs.SignRequest, remote netip.Addr) (casvc.Grant, error) {
	p, tr := a.caTrust()
	return caholder.Authorize(p, a.tr.Members(), req, remote, tr)
}

// caTrust returns the committed plan and what the CA endpoint checks
// requests against besides it, for certificates and for the gossip keys.
func (a *Agent) caTrust() (*plan.Plan, caholder.Trust) {
	a.mu.Lock()
	p := a.plan
	a.mu.Unlock()
	return p, caholder.Trust{
		Server: a.serverToken, Eligible: a.endorsed.eligible, BehindNAT: a.cfg.BehindNAT, Now: a.now(),
		Evicted: a.clusterState().Refuses, Clients: a.clientPolicy(),
	}
}

// sealEscrow returns the escrow of ca and the management token sealed to
// the identity key that the plan records for the server to; it logs why
// when it cannot.
func (a *Agent) sealEscrow(ca *certs.CA, to plan.Server) ([]byte, bool) {
	if !a.cred.IsServer() {
		a.log.Warn("cannot escrow the CA key: this node holds a client token")
		return nil, false
	}
	key, ok := to.PublicKey()
	if !ok {
		a.log.Warn("cannot escrow the CA key: the plan records no identity key for the server", "to", to.Name)
		return nil, false
	}
	mgmt, err := a.managementSecret()
	if err == nil {
		var sealed []byte
		if sealed, err = caholder.Seal(key, ca, mgmt); err == nil {
			return sealed, true
		}
	}
	a.log.Warn("cannot escrow the CA key", "to", to.Name, "error", err)
	return nil, false
}

// escrowCA sends the other servers the escrow, each sealed to its own
// identity key, so that another server can sign, and manage Nomad's ACLs,
// when this one is gone for good.
func (a *Agent) escrowCA(ca *certs.CA, p plan.Plan) {
	hash := p.Hash()
	for _, s := range p.Servers {
		if s.ID == a.id {
			continue
		}
		sealed, ok := a.sealEscrow(ca, s)
		if !ok {
			continue
		}
		msg := agree.Message{Type: agree.MsgEscrow, Sealed: sealed, Hash: hash}.Encode()
		if err := a.tr.SendTo(s.Name, msg); err != nil {
			a.log.Warn("cannot escrow the CA key", "to", s.Name, "error", err)
		}
	}
}

// handleEscrow stores an escrow sent by the plan's CA holder once it opens
// with this node's identity key and holds the pinned CA.
func (a *Agent) handleEscrow(from string, m agree.Message) {
	a.mu.Lock()
	p, hash := a.plan, a.planHash
	a.mu.Unlock()
	if p == nil || hash != m.Hash || p.CAHolderName() != from || !p.IsServer(a.id) || !a.cred.IsServer() {
		a.log.Warn("ignoring an escrowed CA key", "from", from)
		return
	}
	// During a rotation the new CA's escrow may come before the cluster
	// state that makes it sign: any CA the cluster trusts is kept.
	changed, err := a.caStore().KeepEscrow(m.Sealed, a.caTrusted(*p)...)
	if err != nil {
		a.log.Warn("cannot keep the escrowed CA key", "from", from, "error", err)
		return
	}
	if !changed {
		return
	}
	a.log.Info("stored the escrowed CA key", "from", from)
	// The CA holder hands a new management token in the escrow once a
	// snapshot of another cluster replaced Nomad's ACL tokens.
	e, err := a.caStore().Escrow()
	if err != nil {
		return
	}
	if cur, err := acl.LoadToken(a.paths.ACLDir(), acl.ManagementTokenName); err == nil && cur != e.Management {
		if err := a.adoptManagement(e.Management); err != nil {
			a.log.Warn("cannot keep the escrowed management token", "error", err)
		}
	}
}
