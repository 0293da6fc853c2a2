package agent

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/nomad/api"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agree"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/atomicfile"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/clusterstate"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/eviction"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/identity"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadrun"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/systemd"
)

// The cluster state (internal/clusterstate): what the cluster decided after
// its bootstrap, for now the nodes it evicted.
//
// A server changes it in Nomad (a Nomad Variable, check-and-set), signs
// what Nomad holds with its identity key and sends it to every member;
// members pass it on in push/pull syncs. Every server also reads it from
// Nomad every Timings.ClusterSync, so a change made on another server, or
// while this one was down, reaches it and its peers. A node keeps the
// highest version it verified, on disk and in cstate, and applies it:
// gossip drops the evicted nodes, the CA endpoint refuses them, the servers
// drain and purge their Nomad nodes, and an evicted node leaves.

// heldState is the cluster state this node verified, with the signed form
// it came in.
type heldState struct {
	st     clusterstate.State
	signed []byte
}

// ErrEvicted is wrapped by the error of New and Run on a node the cluster
// evicted.
var ErrEvicted = errors.New("agent: the cluster evicted this node")

// clusterState returns the cluster state this node holds, or nil.
func (a *Agent) clusterState() *clusterstate.State {
	if h := a.cstate.Load(); h != nil {
		return &h.st
	}
	return nil
}

// verifyClusterState checks a signed cluster state from the network or
// disk.
func (a *Agent) verifyClusterState(b []byte) (clusterstate.State, error) {
	st, _, err := a.verifySigned(b)
	return st, err
}

// verifySigned is verifyClusterState that also returns who signed.
func (a *Agent) verifySigned(b []byte) (clusterstate.State, clusterstate.Signed, error) {
	sg, err := clusterstate.Decode(b)
	if err != nil {
		return clusterstate.State{}, sg, err
	}
	st, err := sg.Verify(a.cred.ClusterIDString(), a.endorsed.check)
	return st, sg, err
}

// loadClusterState reads the cluster state this node kept; it refuses to
// start a node that the state evicts.
func (a *Agent) loadClusterState() error {
	path := a.paths.ClusterStateFile()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("agent: reading the cluster state: %w", err)
	}
	st, err := a.verifyClusterState(b)
	if err != nil {
		return fmt.Errorf("agent: %s is not the cluster's state (%v): remove it, and the node receives the state from its peers",
			path, strings.TrimPrefix(err.Error(), "clusterstate: "))
	}
	if e, ok := st.Eviction(a.id); ok || st.Refuses(a.id, identity.Public(a.idKey)) {
		return a.evictedError(e)
	}
	a.cstate.Store(&heldState{st: st, signed: b})
	return nil
}

// evictedError explains to the operator of an evicted node what happened.
func (a *Agent) evictedError(e clusterstate.Eviction) error {
	when := ""
	if !e.At.IsZero() {
		when = " at " + e.At.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	return fmt.Errorf("%w: node %s (%s) was evicted%s and cannot rejoin with this identity; to use this machine in the cluster again, remove %s, %s and %s and start it as a new node",
		ErrEvicted, a.name, a.id, when, a.paths.NodeIDFile(), a.paths.IdentityKeyFile(), a.paths.ClusterStateFile())
}

// refuses reports whether the cluster state this node holds evicts the
// member with meta m (gossip.Node.SetRefused).
func (a *Agent) refuses(m gossip.Meta) bool {
	st := a.clusterState()
	return st != nil && st.Refuses(m.ID, m.Identity)
}

// adoptClusterState keeps b, a signed cluster state that from sent, when
// it verifies and is newer than the one this node holds, and applies it.
// It runs on the loop and reports whether it adopted b.
func (a *Agent) adoptClusterState(from string, b []byte) bool {
	old := a.cstate.Load()
	st, sg, err := a.verifySigned(b)
	if err == nil {
		var held clusterstate.CA
		if old != nil {
			held = old.st.CA
		}
		a.mu.Lock()
		p := a.plan
		a.mu.Unlock()
		err = caChangeSigner(p, held, st.CA, sg)
	}
	if err != nil {
		if a.noteNewer(from, err) {
			return false
		}
		if !a.refusedStates[from] {
			if len(a.refusedStates) >= 1024 || a.refusedStates == nil {
				a.refusedStates = map[string]bool{}
			}
			a.refusedStates[from] = true
			a.log.Warn("ignoring a cluster state", "from", from, "reason", err)
		}
		return false
	}
	if old != nil && st.Version <= old.st.Version {
		return false
	}
	if err := atomicfile.WriteFile(a.paths.ClusterStateFile(), b, 0o644); err != nil {
		a.log.Error("cannot keep the cluster state; it applies until the agent restarts", "error", err)
	}
	a.cstate.Store(&heldState{st: st, signed: b})
	for _, e := range st.Evicted {
		if old == nil || !old.st.Refuses(e.ID, nil) {
			a.log.Warn("the cluster evicted a node", "node", e.Name, "id", e.ID, "version", st.Version)
		}
	}
	if a.node != nil {
		a.node.SetRefused(a.refuses)
	}
	if old == nil || old.st.AgentGossipKey != st.AgentGossipKey {
		a.kickKeys()
	}
	if st.Refuses(a.id, identity.Public(a.idKey)) {
		e, _ := st.Eviction(a.id)
		err := a.evictedError(e)
		a.log.Error("this node was evicted; it stops Nomad and leaves the cluster", "error", err)
		if a.stopRun != nil {
			a.stopRun(err)
		}
	}
	return true
}

// distributeClusterState sends the cluster state this node holds to every
// member it knows, evicted ones too, so that they learn of it.
func (a *Agent) distributeClusterState() {
	h := a.cstate.Load()
	if h == nil {
		return
	}
	m := agree.Message{Type: agree.MsgState, Cluster: h.signed}
	for _, mem := range a.tr.Members() {
		if mem.Name != a.name && (mem.State == gossip.StateAlive || mem.State == gossip.StateEvicted) {
			a.send(mem.Name, m)
		}
	}
}

// signClusterState signs st, read from Nomad, with this server's identity.
func (a *Agent) signClusterState(st clusterstate.State) ([]byte, error) {
	sg, err := clusterstate.Sign(st, a.id, a.idKey, a.endorsement)
	if err != nil {
		return nil, err
	}
	return sg.Encode(), nil
}

// publishClusterState signs st, adopts it on the loop and sends it to every
// member when it is newer than the state held; the empty state of a
// cluster that decided nothing yet is not published. It is called off the
// loop.
func (a *Agent) publishClusterState(ctx context.Context, st clusterstate.State) error {
	if st.Version == 0 {
		return nil // nothing decided yet
	}
	if h := a.cstate.Load(); h != nil && st.Version <= h.st.Version {
		return nil
	}
	b, err := a.signClusterState(st)
	if err != nil {
		return err
	}
	done := make(chan struct{})
	if !a.ev.post(func() {
		defer close(done)
		if a.adoptClusterState(a.name, b) {
			a.distributeClusterState()
		}
	}) {
		return errors.New("the agent is too busy to take the cluster state; try again")
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the agent did not take the cluster state: %w", context.Cause(ctx))
	}
}

// restore replaces *s, a state read from Nomad, with the one this node
// holds when that is newer (Nomad lost it: a snapshot restored, the
// Variable deleted), raised by one so that every node takes what is written
// next. It reports whether it replaced *s.
func (a *Agent) restore(s *clusterstate.State) bool {
	held := a.clusterState()
	if held == nil || held.Version <= s.Version {
		return false
	}
	*s = *held
	s.Version++
	return true
}

// target is a node that an operator names for eviction.
type target struct {
	id, name string
	key      []byte
	server   bool
}

// findTarget resolves an operator's NAME or ID to a node this server knows:
// a member (also one that died or left) or a server of p. An ID that no
// member has is taken as it is.
func (a *Agent) findTarget(p plan.Plan, given string) (target, error) {
	given = strings.TrimSpace(given)
	if given == "" {
		return target{}, errors.New("name the node to evict, by its name or node ID")
	}
	var found []target
	for _, m := range a.tr.Members() {
		if m.MetaErr == nil && (m.Name == given || m.Meta.ID == given) {
			found = append(found, target{id: m.Meta.ID, name: m.Name, key: m.Meta.Identity, server: p.IsServer(m.Meta.ID)})
		}
	}
	for _, s := range p.Servers {
		if (s.Name == given || s.ID == given) && !slices.ContainsFunc(found, func(t target) bool { return t.id == s.ID }) {
			key, _ := s.PublicKey()
			found = append(found, target{id: s.ID, name: s.Name, key: key, server: true})
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) > 1:
		return target{}, fmt.Errorf("%q names more than one node; give its node ID (nomad-bootstrapd status -json lists them)", given)
	}
	if u, err := uuid.Parse(given); err == nil && u.String() == given {
		return target{id: given}, nil
	}
	return target{}, fmt.Errorf("no node named %q is known to this server; give its node ID (nomad-bootstrapd status -json lists the members)", given)
}

// EvictAnswer is what node evict reports.
type EvictAnswer struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	Version uint64 `json:"version"` // of the cluster state that evicts it
	Already bool   `json:"already"` // it was evicted before
	Nomad   string `json:"nomad"`   // what was done to its Nomad node
	Server  bool   `json:"server"`  // it was a Nomad server, which a successor plan replaces
}

// replaceable reports why evicting t, a server of p, would leave the
// cluster short: the other servers must hold a majority of p's seats
// alive, to agree on its successor and keep Nomad's quorum, and a live node
// holding the server token must be there to take its seat.
func (a *Agent) replaceable(p plan.Plan, t target) error {
	alive, spare := 0, false
	for _, m := range a.tr.Members() {
		switch {
		case m.State != gossip.StateAlive || m.MetaErr != nil || m.Meta.ID == t.id:
		case p.IsServer(m.Meta.ID):
			alive++
		case m.Meta.Role != "client" && a.endorsed.eligible(m.Meta):
			spare = true
		}
	}
	if need := len(p.Servers)/2 + 1; alive < need {
		return fmt.Errorf("%s is a Nomad server of plan epoch %d, and only %d of the other servers are alive: evicting it needs %d of them to agree on its successor and keep Nomad's quorum; bring them back first",
			t.name, p.Epoch, alive, need)
	}
	if !spare {
		return fmt.Errorf("%s is a Nomad server of plan epoch %d, and no live node holding the server token is left to take its seat: start one (nodes that joined with a client token are never servers), then evict it",
			t.name, p.Epoch)
	}
	return nil
}

// raftCanLose reports why Nomad's raft could not lose t, a server of p,
// without losing its quorum: t is a healthy voter and autopilot counts no
// failure tolerance (another server is down, unhealthy or not yet a voter,
// as a server that just came back is for a while). Evicting a server that
// is down already costs no quorum.
func (a *Agent) raftCanLose(ctx context.Context, p plan.Plan, t target) error {
	addr := ""
	for _, s := range p.Servers {
		if s.ID == t.id {
			addr = s.Address
		}
	}
	c, secret, err := a.nomadClient(p)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	h, err := nomadrun.AutopilotHealth(c, (&api.QueryOptions{AuthToken: secret}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("cannot read the health of Nomad's raft, to check that it can lose %s: %w", t.name, err)
	}
	for _, s := range h.Servers {
		host, _, _ := net.SplitHostPort(s.Address)
		if host == addr && s.Healthy && s.Voter && h.FailureTolerance < 1 {
			return fmt.Errorf("%s is a healthy voter of Nomad's raft, and the raft can lose no server now (autopilot's failure tolerance is %d: another server is down, unhealthy or not yet a voter): evicting it would cost Nomad its quorum; wait until `nomad operator autopilot health` shows every server healthy",
				t.name, h.FailureTolerance)
		}
	}
	return nil
}

// Evict evicts the node named given: it adds it to the cluster state in
// Nomad, sends the signed state to every member, and drains its Nomad node
// and marks it ineligible; the servers purge it once it is down. It runs
// on a server of the plan, with Nomad's ACLs bootstrapped.
func (a *Agent) Evict(ctx context.Context, given string) (EvictAnswer, error) {
	p, err := a.serverReady()
	if err != nil {
		return EvictAnswer{}, err
	}
	t, err := a.findTarget(p, given)
	if err != nil {
		return EvictAnswer{}, err
	}
	switch {
	case t.id == a.id:
		return EvictAnswer{}, fmt.Errorf("%s is the node this command runs on; run it on another server", a.name)
	case t.server:
		if err := a.replaceable(p, t); err != nil {
			return EvictAnswer{}, err
		}
		if err := a.raftCanLose(ctx, p, t); err != nil {
			return EvictAnswer{}, err
		}
	}
	e := clusterstate.Eviction{ID: t.id, Name: t.name, At: a.now().UTC()}
	if len(t.key) == 32 {
		e.Key = base64.StdEncoding.EncodeToString(t.key)
	}
	vars, closeVars, err := a.nomadVars(p)
	if err != nil {
		return EvictAnswer{}, err
	}
	defer closeVars()
	already := false
	st, _, err := clusterstate.Update(ctx, vars, a.cred.ClusterIDString(), func(s clusterstate.State) (clusterstate.State, bool, error) {
		restored := a.restore(&s)
		next, changed, err := s.Evict(e)
		already = !changed
		return next, changed || restored, err
	})
	if err != nil {
		return EvictAnswer{}, err
	}
	if err := a.publishClusterState(ctx, st); err != nil {
		return EvictAnswer{}, err
	}
	held, _ := st.Eviction(t.id)
	a.log.Info("evicted a node", "node", held.Name, "id", held.ID, "version", st.Version, "already", already)
	ans := EvictAnswer{Name: held.Name, ID: held.ID, Version: st.Version, Already: already, Server: t.server}
	ans.Nomad = a.evictFromNomad(ctx, p, st)[held.ID]
	return ans, nil
}

// nomadClient returns a client of the local Nomad agent's API with this
// server's CLI certificate, and the management token's secret.
func (a *Agent) nomadClient(p plan.Plan) (*api.Client, string, error) {
	secret, err := a.managementSecret()
	if err != nil {
		return nil, "", err
	}
	c, err := a.nomad.Client(p, a.advertise)
	if err != nil {
		return nil, "", err
	}
	return c, secret, nil
}

// nomadVars returns the Variables the cluster state is kept in, and a
// function that closes its client.
func (a *Agent) nomadVars(p plan.Plan) (clusterstate.Vars, func(), error) {
	c, secret, err := a.nomadClient(p)
	if err != nil {
		return nil, nil, err
	}
	return clusterstate.NomadVars(c, secret), c.Close, nil
}

// nomadEvictionWindow is how long after an eviction the servers look for
// the evicted node's Nomad node: by then its certificates expired long ago,
// so Nomad saw it down and it was purged. Older evictions cost no Nomad
// request.
const nomadEvictionWindow = 7 * 24 * time.Hour

// evictFromNomad carries out the evictions of st made within
// nomadEvictionWindow on Nomad's nodes and returns what it did, by node ID.
func (a *Agent) evictFromNomad(ctx context.Context, p plan.Plan, st clusterstate.State) map[string]string {
	var evicted []eviction.Evicted
	for _, e := range st.Evicted {
		if a.now().Sub(e.At) < nomadEvictionWindow {
			evicted = append(evicted, eviction.Evicted{ID: e.ID, Name: e.Name})
		}
	}
	if len(evicted) == 0 {
		return nil
	}
	c, secret, err := a.nomadClient(p)
	if err != nil {
		a.log.Warn("cannot carry out evictions on Nomad yet", "error", err)
		return nil
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, a.tm.ACLAttempt)
	defer cancel()
	done, err := eviction.Apply(ctx, eviction.NomadNodes(c, secret, nomadrun.NodeIDMeta), evicted)
	if err != nil {
		a.log.Warn("carrying out evictions on Nomad; retrying", "error", err)
	}
	for id, what := range done {
		if what != eviction.NotFound {
			a.log.Info("evicted node's Nomad node", "id", id, "state", what)
		}
	}
	return done
}

// syncClusterState, on a server whose ACLs are set up, reads the cluster
// state from Nomad every Timings.ClusterSync, publishes it when it is
// newer than the one held, and carries out its evictions on Nomad. It runs
// on the pipeline's goroutine.
func (a *Agent) syncClusterState(ctx context.Context, p plan.Plan) {
	if !p.IsServer(a.id) || a.now().Sub(a.lastSync) < a.tm.ClusterSync {
		return
	}
	a.lastSync = a.now()
	vars, closeVars, err := a.nomadVars(p)
	if err != nil {
		a.log.Debug("cannot read the cluster state from Nomad yet", "error", err)
		return
	}
	defer closeVars()
	rctx, cancel := context.WithTimeout(ctx, a.tm.ACLAttempt)
	st, _, err := clusterstate.Load(rctx, vars, a.cred.ClusterIDString())
	cancel()
	if err != nil {
		a.log.Warn("reading the cluster state from Nomad", "error", err)
		return
	}
	if held := a.clusterState(); held != nil && held.Version > st.Version {
		// Nomad lost the state (a restore, a deleted Variable): put back
		// the one every node holds.
		rctx, cancel := context.WithTimeout(ctx, a.tm.ACLAttempt)
		_, _, err := clusterstate.Update(rctx, vars, a.cred.ClusterIDString(), func(s clusterstate.State) (clusterstate.State, bool, error) {
			return s, a.restore(&s), nil
		})
		cancel()
		if err != nil {
			a.log.Warn("putting the cluster state back into Nomad", "error", err)
		} else {
			a.log.Warn("Nomad held an older cluster state than this server; put back the one the cluster holds", "version", held.Version)
		}
	}
	if err := a.publishClusterState(ctx, st); err != nil {
		a.log.Warn("publishing the cluster state", "error", err)
	}
	if held := a.clusterState(); held != nil {
		a.evictFromNomad(ctx, p, *held)
	}
	a.syncNomadKeys(ctx, p)
}

// leaveEvicted stops this node's Nomad and leaves gossip, once the cluster
// evicted it. Nomad run as the agent's child stops with the agent; the
// nomad.service unit is stopped and disabled.
func (a *Agent) leaveEvicted() {
	if a.cfg.Supervise == config.SuperviseSystemd {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if m, err := systemd.Connect(ctx); err != nil {
			a.log.Error("cannot stop nomad.service", "error", err)
		} else {
			defer m.Close()
			if err := m.Stop(ctx, systemd.NomadService); err != nil {
				a.log.Error("stopping nomad.service", "error", err)
			}
			if err := m.Disable(ctx, systemd.NomadService); err != nil {
				a.log.Error("disabling nomad.service", "error", err)
			}
		}
	}
	if err := a.node.Leave(5 * time.Second); err != nil {
		a.log.Warn("leaving the gossip pool", "error", err)
	}
}

// clientPolicy returns which client tokens admit new nodes, by the cluster
// state this node holds.
func (a *Agent) clientPolicy() certs.ClientPolicy {
	st := a.clusterState()
	if st == nil {
		return certs.ClientPolicy{}
	}
	return certs.ClientPolicy{Generation: st.ClientToken.Generation, PreviousUntil: st.ClientToken.PreviousUntil}
}

// serverReady returns the committed plan when this node is one of its
// servers with Nomad's ACLs set up, which the commands that change the
// cluster state need.
func (a *Agent) serverReady() (plan.Plan, error) {
	a.mu.Lock()
	p, aclState := a.plan, a.aclState
	a.mu.Unlock()
	switch {
	case p == nil:
		return plan.Plan{}, errors.New("no plan is committed yet: the cluster does not exist yet")
	case !p.IsServer(a.id) || !a.cred.IsServer():
		return plan.Plan{}, fmt.Errorf("this command runs on a Nomad server of the cluster; %s is a client in plan epoch %d (servers: %s)",
			a.name, p.Epoch, strings.Join(p.ServerNames(), ", "))
	case aclState != aclReady:
		return plan.Plan{}, errors.New("this server's Nomad ACLs are not set up yet; wait until status shows it running")
	}
	return *p, nil
}

// RotateAnswer is what token rotate -client reports.
type RotateAnswer struct {
	Token         string    `json:"token"` // the new client token; secret
	Generation    uint32    `json:"generation"`
	Version       uint64    `json:"version"` // of the cluster state
	PreviousUntil time.Time `json:"previous_until"`
}

// RotateClientToken makes the next generation of client tokens the one
// that admits new nodes, the previous one still admitting for grace, and
// returns a new client token of it that admits until expires (never when
// zero). Nodes admitted before keep their admissions.
func (a *Agent) RotateClientToken(ctx context.Context, grace time.Duration, expires time.Time) (RotateAnswer, error) {
	p, err := a.serverReady()
	if err != nil {
		return RotateAnswer{}, err
	}
	if grace < 0 {
		return RotateAnswer{}, fmt.Errorf("-grace %s is negative", grace)
	}
	vars, closeVars, err := a.nomadVars(p)
	if err != nil {
		return RotateAnswer{}, err
	}
	defer closeVars()
	now := a.now()
	st, _, err := clusterstate.Update(ctx, vars, a.cred.ClusterIDString(), func(s clusterstate.State) (clusterstate.State, bool, error) {
		a.restore(&s)
		next, err := s.RotateClientToken(now, grace)
		return next, err == nil, err
	})
	if err != nil {
		return RotateAnswer{}, err
	}
	if err := a.publishClusterState(ctx, st); err != nil {
		return RotateAnswer{}, err
	}
	ct := st.ClientToken
	a.log.Info("rotated the client token", "generation", ct.Generation, "previous_until", ct.PreviousUntil, "version", st.Version)
	return RotateAnswer{
		Token: a.serverToken.ClientOf(ct.Generation, expires).Encode(), Generation: ct.Generation,
		Version: st.Version, PreviousUntil: ct.PreviousUntil,
	}, nil
}

// RotateRoute is the control socket's route of token rotate -client.
const RotateRoute = "/v1/token/rotate-client"

// RotateRequest is what token rotate -client sends to the agent.
type RotateRequest struct {
	Grace   time.Duration `json:"grace"`
	Expires time.Time     `json:"expires,omitzero"` // the new token's; zero: never
}

// KeysRotateRoute is the control socket's route of keys rotate.
const KeysRotateRoute = "/v1/keys/rotate"

// KeysRotateTimeout bounds keys rotate on the agent: two waits of
// Timings.KeyWait for Nomad's key, three for the agents', and the calls.
const KeysRotateTimeout = 6 * time.Minute

// KeysRotateRequest is what keys rotate sends to the agent: nothing yet.
type KeysRotateRequest struct{}

// EvictRoute is the control socket's route of node evict.
const EvictRoute = "/v1/evict"

// EvictRequest is what node evict sends to the agent.
type EvictRequest struct {
	Node string `json:"node"` // a node's name or ID
}

// commands are the control socket's routes of the commands that change the
// cluster state.
func (a *Agent) commands() []status.Route {
	return []status.Route{
		{Pattern: "POST " + EvictRoute, Handler: status.Command(func(ctx context.Context, req EvictRequest) (EvictAnswer, error) {
			return a.Evict(ctx, req.Node)
		})},
		{Pattern: "POST " + KeysRotateRoute, Handler: status.CommandWithin(KeysRotateTimeout, func(ctx context.Context, _ KeysRotateRequest) (KeysAnswer, error) {
			return a.RotateKeys(ctx)
		})},
		{Pattern: "POST " + CARotateRoute, Handler: status.CommandWithin(CARotateTimeout, func(ctx context.Context, req CARotateRequest) (CAAnswer, error) {
			return a.RotateCA(ctx, req)
		})},
		{Pattern: "POST " + RecoverRoute, Handler: status.CommandWithin(RecoverTimeout, func(ctx context.Context, req RecoverRequest) (RecoverAnswer, error) {
			return a.Recover(ctx, req.Confirm)
		})},
		{Pattern: "POST " + SnapshotRoute, Handler: status.CommandWithin(SnapshotTimeout, func(ctx context.Context, req SnapshotRequest) (SnapshotAnswer, error) {
			return a.SaveSnapshot(ctx, req.File)
		})},
		{Pattern: "POST " + SnapshotRestoreRoute, Handler: status.CommandWithin(SnapshotTimeout, func(ctx context.Context, req SnapshotRequest) (SnapshotAnswer, error) {
			return a.RestoreSnapshot(ctx, req.File, req.OtherCluster)
		})},
		{Pattern: "POST " + UpgradeRoute, Handler: status.CommandWithin(UpgradeTimeout, func(ctx context.Context, req UpgradeRequest) (UpgradeAnswer, error) {
			return a.StartUpgrade(ctx, req)
		})},
		{Pattern: "POST " + UpgradeStatusRoute, Handler: status.CommandWithin(UpgradeTimeout, func(ctx context.Context, _ struct{}) (UpgradeAnswer, error) {
			return a.UpgradeStatus(ctx)
		})},
		{Pattern: "POST " + RotateRoute, Handler: status.Command(func(ctx context.Context, req RotateRequest) (RotateAnswer, error) {
			return a.RotateClientToken(ctx, req.Grace, req.Expires)
		})},
	}
}
