package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agree"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/atomicfile"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/casvc"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// File names under paths.CADir.
const (
	caCertFile   = "ca.pem"
	caKeyFile    = "ca-key.pem"
	caEscrowFile = "ca-key.sealed"
)

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
		ca, err := certs.NewCA(rand.Reader, a.token.ClusterIDString(), a.now(), 0)
		if err != nil {
			return nil, err
		}
		a.ca = ca
	}
	return a.ca, nil
}

// operatorCA loads the intermediate CA of the operator's offline root and
// verifies its chain up to the root.
func (a *Agent) operatorCA() (*certs.CA, error) {
	read := func(what, path string) ([]byte, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("agent: the ca block's %s: %w", what, err)
		}
		return b, nil
	}
	certPEM, err := read("cert_file", a.cfg.CA.CertFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := read("key_file", a.cfg.CA.KeyFile)
	if err != nil {
		return nil, err
	}
	chainPEM, err := read("chain_file", a.cfg.CA.ChainFile)
	if err != nil {
		return nil, err
	}
	ca, err := certs.LoadCA(certPEM, keyPEM, chainPEM, a.now())
	if err != nil {
		return nil, fmt.Errorf("agent: the intermediate CA of the ca block cannot be used: %w", err)
	}
	return ca, nil
}

// loadCA reads the CA from disk; nil when there is none.
func (a *Agent) loadCA() (*certs.CA, error) {
	dir := a.paths.CADir()
	certPEM, err := os.ReadFile(filepath.Join(dir, caCertFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: reading the CA: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, caKeyFile))
	if err != nil {
		return nil, fmt.Errorf("agent: reading the CA key: %w", err)
	}
	ca, err := certs.LoadCA(certPEM, keyPEM, nil, a.now())
	if err != nil {
		return nil, fmt.Errorf("agent: the CA in %s cannot be used: %w", dir, err)
	}
	return ca, nil
}

// saveCA persists the CA before the plan pinning it is committed, so that a
// crash never leaves a committed plan whose CA key is lost.
func (a *Agent) saveCA(ca *certs.CA) error {
	dir := a.paths.CADir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	if _, err := atomicfile.WriteFileIfChanged(filepath.Join(dir, caKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	// The bundle: an intermediate's chain up to the offline root follows it.
	_, err = atomicfile.WriteFileIfChanged(filepath.Join(dir, caCertFile), ca.BundlePEM(), 0o644)
	return err
}

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

// escrowedCA opens the CA key escrowed to this server and pairs it with the
// pinned CA certificate from the node's CA bundle.
func (a *Agent) escrowedCA(p plan.Plan) (*certs.CA, error) {
	sealed, err := os.ReadFile(filepath.Join(a.paths.CADir(), caEscrowFile))
	if err != nil {
		return nil, fmt.Errorf("agent: no escrowed CA key: %w", err)
	}
	keyPEM, err := certs.OpenCAKey(a.token, sealed)
	if err != nil {
		return nil, err
	}
	bundle, err := os.ReadFile(certs.TLSFiles{Dir: a.paths.NomadTLSDir()}.CAPath())
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	cas, err := certs.ParseCertsPEM(bundle)
	if err != nil {
		return nil, err
	}
	i := certs.PinnedIndex(cas, p.CAFingerprint)
	if i < 0 {
		return nil, fmt.Errorf("agent: the CA bundle does not hold the pinned CA %s", p.CAFingerprint)
	}
	var chain []byte
	for _, c := range cas[i+1:] {
		chain = append(chain, certs.EncodeCertPEM(c.Raw)...)
	}
	return certs.LoadCA(certs.EncodeCertPEM(cas[i].Raw), keyPEM, chain, a.now())
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
	alive := a.aliveNames()
	for _, s := range p.Servers {
		if s.ID == p.CAHolder {
			continue
		}
		if s.ID != a.id && alive[s.Name] {
			return // an earlier server in the plan takes over
		}
		if s.ID == a.id {
			break
		}
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

// serveCA runs the CA endpoint with ca on this node.
func (a *Agent) serveCA(ctx context.Context, p plan.Plan, ca *certs.CA) error {
	a.mu.Lock()
	a.ca = ca
	a.mu.Unlock()

	// The endpoint's own certificate: a server certificate for this
	// address, whose key lives in memory only.
	key, err := certs.NewKey(rand.Reader)
	if err != nil {
		return err
	}
	csrDER, err := certs.CreateCSR(key, a.name)
	if err != nil {
		return err
	}
	csr, err := certs.ParseCSR(csrDER)
	if err != nil {
		return err
	}
	der, err := ca.Sign(csr, certs.Identity{NodeID: a.id, NodeName: a.name, Region: p.Region, Address: a.advertise, Role: certs.RoleServer}, a.now(), 0)
	if err != nil {
		return err
	}
	srv := casvc.NewServer(casvc.Config{
		CA:         ca,
		ServerCert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		Verifier:   certs.NewVerifier(a.keys.CSR, 0, a.now),
		Authority:  casvc.AuthorityFunc(a.authorize),
		Lifetime:   a.cfg.CertLifetime,
		Now:        a.now,
		Logger:     a.log.With("component", "ca"),
	})
	l, err := net.Listen("tcp", net.JoinHostPort(a.bind, strconv.Itoa(p.CAPort)))
	if err != nil {
		return fmt.Errorf("agent: CA endpoint: %w", err)
	}
	a.mu.Lock()
	a.caSrv = srv
	a.mu.Unlock()
	go srv.Serve(l)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	a.log.Info("CA endpoint listening", "address", l.Addr().String(), "fingerprint", p.CAFingerprint)
	return nil
}

// authorize decides what a requesting node is certified as: its role comes
// from the committed plan and its address from gossip, never from the request.
func (a *Agent) authorize(req *certs.SignRequest) (certs.Identity, error) {
	a.mu.Lock()
	p := a.plan
	a.mu.Unlock()
	if p == nil {
		return certs.Identity{}, errors.New("no plan is committed yet")
	}
	var member *gossip.Member
	for _, m := range a.tr.Members() {
		if m.Name == req.NodeName && m.State == gossip.StateAlive && m.MetaErr == nil && m.Meta.ID == req.NodeID {
			member = &m
			break
		}
	}
	if member == nil {
		return certs.Identity{}, fmt.Errorf("node %s (%s) is not an alive member of this cluster", req.NodeName, req.NodeID)
	}
	isServer := p.IsServer(req.NodeID)
	switch req.Role {
	case certs.RoleServer, certs.RoleCLI:
		if !isServer {
			return certs.Identity{}, fmt.Errorf("node %s is a client in plan epoch %d, not a server", req.NodeName, p.Epoch)
		}
	case certs.RoleClient:
	default:
		return certs.Identity{}, fmt.Errorf("unknown role %q", req.Role)
	}
	return certs.Identity{NodeID: req.NodeID, NodeName: req.NodeName, Region: p.Region, Address: member.Address, Role: req.Role}, nil
}

// sealCAKey returns the CA key sealed with a key derived from the join
// token, for escrow; it logs why when it cannot.
func (a *Agent) sealCAKey(ca *certs.CA) ([]byte, bool) {
	keyPEM, err := ca.KeyPEM()
	if err == nil {
		var sealed []byte
		if sealed, err = certs.SealCAKey(a.token, keyPEM, rand.Reader); err == nil {
			return sealed, true
		}
	}
	a.log.Warn("cannot escrow the CA key", "error", err)
	return nil, false
}

// escrowCA sends the CA key, sealed with a key derived from the join token,
// to the other servers, so that another server can sign when this one is
// gone for good.
func (a *Agent) escrowCA(ca *certs.CA, p plan.Plan) {
	sealed, ok := a.sealCAKey(ca)
	if !ok {
		return
	}
	msg := agree.Message{Type: agree.MsgEscrow, Sealed: sealed, Hash: p.Hash()}.Encode()
	for _, s := range p.Servers {
		if s.ID == a.id {
			continue
		}
		if err := a.tr.SendTo(s.Name, msg); err != nil {
			a.log.Warn("cannot escrow the CA key", "to", s.Name, "error", err)
		}
	}
}

// handleEscrow stores an escrowed CA key sent by the plan's CA holder.
func (a *Agent) handleEscrow(from string, m agree.Message) {
	a.mu.Lock()
	p, hash := a.plan, a.planHash
	a.mu.Unlock()
	if p == nil || hash != m.Hash || p.CAHolderName() != from || !p.IsServer(a.id) {
		a.log.Warn("ignoring an escrowed CA key", "from", from)
		return
	}
	key, err := certs.OpenCAKey(a.token, m.Sealed)
	if err != nil {
		a.log.Warn("ignoring an escrowed CA key", "from", from, "error", err)
		return
	}
	path := filepath.Join(a.paths.CADir(), caEscrowFile)
	// Each escrow is sealed anew: keep the file when it holds the same key.
	if old, err := os.ReadFile(path); err == nil {
		if oldKey, err := certs.OpenCAKey(a.token, old); err == nil && bytes.Equal(oldKey, key) {
			return
		}
	}
	if err := os.MkdirAll(a.paths.CADir(), 0o700); err != nil {
		a.log.Warn("cannot store the escrowed CA key", "error", err)
		return
	}
	changed, err := atomicfile.WriteFileIfChanged(path, m.Sealed, 0o600)
	if err != nil {
		a.log.Warn("cannot store the escrowed CA key", "error", err)
		return
	}
	if changed {
		a.log.Info("stored the escrowed CA key", "from", from)
	}
}
