package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/caholder"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/casvc"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/clusterstate"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossipkeys"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// The agents' own gossip key (internal/gossipkeys): memberlist's key,
// which generation 0 derives from the tokens and every rotation replaces
// with a random one, in the phases the cluster state records.
//
// A server rotates it (keys rotate; the CA holder on schedule and to finish
// a rotation cut short): it adds the new key to its ring and to the servers'
// Nomad Variable, records phase install, waits until every alive member
// announces the key in its gossip meta, records phase use, waits until
// every member encrypts with it, and records done. Every node follows the
// phase it holds (keyLoop): a server that lacks the key reads it from the
// Variable, any node asks the CA endpoint, which hands it over sealed to
// the node's identity key. A node that is alone (it was away through a
// rotation, or is new to a cluster that rotated) asks the CA endpoint of
// its plan, or port+1 of its seeds, and takes the key the cluster uses.

// Timings of the agents' gossip key.
const (
	// keyLoopEvery is how often a node checks that it follows the
	// rotation, and whether it is alone.
	keyLoopEvery = 5 * time.Second
	// aloneAfter is how long a node with seeds or a plan must be without
	// another alive member before it asks for the cluster's keys.
	aloneAfter = 20 * time.Second
	// aloneFetchMax bounds the back-off of those requests.
	aloneFetchMax = 5 * time.Minute
	// keyPoll is how often a rotation looks at the members' meta.
	keyPoll = 250 * time.Millisecond
)

// kickKeys wakes the key loop.
func (a *Agent) kickKeys() {
	select {
	case a.keyKick <- struct{}{}:
	default:
	}
}

// currentRing returns the agents' gossip keys this node holds.
func (a *Agent) currentRing() gossipkeys.Ring {
	a.ringMu.Lock()
	defer a.ringMu.Unlock()
	return a.ring
}

// setRing makes r this node's ring: kept on disk (0600), given to
// memberlist, and announced in the meta.
func (a *Agent) setRing(r gossipkeys.Ring) error {
	a.ringMu.Lock()
	defer a.ringMu.Unlock()
	if r.Equal(a.ring) {
		return nil
	}
	if _, err := gossipkeys.Save(a.paths.GossipKeysFile(), r); err != nil {
		return err
	}
	if err := a.node.SetKeys(r.Primary(), r.All()); err != nil {
		return err
	}
	a.ring = r
	gens := make([]string, len(r.Keys))
	for i, k := range r.Keys {
		gens[i] = strconv.FormatUint(uint64(k.Generation), 10)
	}
	a.log.Info("the agents' gossip keys changed", "generations", strings.Join(gens, ","), "in_use", r.InUse)
	if a.meta.KeyNewest != r.Newest() || a.meta.KeyOldest != r.Oldest() || a.meta.KeyInUse != r.InUse {
		a.meta.KeyNewest, a.meta.KeyOldest, a.meta.KeyInUse = r.Newest(), r.Oldest(), r.InUse
		if err := a.node.UpdateMeta(a.meta); err != nil {
			a.log.Debug("announcing the gossip key generations", "error", err)
		}
	}
	return nil
}

// keyLoop keeps this node's ring in step with the cluster's rotation, asks
// for the cluster's keys while the node is alone, and on the CA holder
// runs the scheduled rotations.
func (a *Agent) keyLoop(ctx context.Context) {
	var aloneSince, nextAsk time.Time
	backoff := aloneAfter
	t := time.NewTicker(keyLoopEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.keyKick:
		}
		a.followAgentKey(ctx)
		now := a.now()
		switch {
		case !a.alone():
			aloneSince, nextAsk, backoff = time.Time{}, time.Time{}, aloneAfter
			a.gossipRefused.Store(false)
		case aloneSince.IsZero():
			aloneSince = now
		}
		if !aloneSince.IsZero() && (now.Sub(aloneSince) >= aloneAfter || a.gossipRefused.Load()) && !now.Before(nextAsk) {
			a.askWhenAlone(ctx)
			nextAsk, backoff = now.Add(backoff), min(2*backoff, aloneFetchMax)
		}
		a.scheduleAgentKey(ctx)
		a.scheduleCA(ctx)
	}
}

// alone reports whether this node, which has somewhere to join (seeds or a
// plan), sees no other alive member.
func (a *Agent) alone() bool {
	a.mu.Lock()
	p := a.plan
	a.mu.Unlock()
	if len(a.cfg.Join) == 0 && (p == nil || len(p.Servers) < 2) {
		return false
	}
	return a.node.NumAlive() <= 1 // itself; a count, every keyLoopEvery on every node
}

// followAgentKey brings this node's ring to the phase of the rotation the
// cluster state records, getting the key when it lacks it.
func (a *Agent) followAgentKey(ctx context.Context) {
	a.followMu.Lock()
	defer a.followMu.Unlock()
	st := a.clusterState()
	if st == nil || st.AgentGossipKey.Generation == 0 {
		return
	}
	k := st.AgentGossipKey
	r := a.currentRing()
	next, ok := r.Follow(k)
	if !ok {
		// Asked every keyLoopEvery at first, then less often: a node the
		// servers refuse does not keep knocking.
		if k.Generation != a.follow.gen {
			a.follow = followBackoff{gen: k.Generation}
		}
		if a.now().Before(a.follow.next) {
			return
		}
		got, from, err := a.getKeys(ctx)
		if err != nil {
			a.follow.wait = min(max(2*a.follow.wait, keyLoopEvery), aloneFetchMax)
			a.follow.next = a.now().Add(a.follow.wait)
			a.warn("gossip-key", fmt.Sprintf("this node lacks generation %d of the agents' gossip key and cannot get it yet: %v", k.Generation, err))
			return
		}
		if next, ok = r.Merge(got).Follow(k); !ok {
			a.log.Debug("the server asked does not hold the agents' new gossip key yet", "from", from, "generation", k.Generation)
			return
		}
		a.log.Info("got the agents' new gossip key", "from", from, "generation", k.Generation)
	}
	if err := a.setRing(next); err != nil {
		a.warn("gossip-key", fmt.Sprintf("cannot take generation %d of the agents' gossip key: %v", k.Generation, err))
		return
	}
	a.clearWarning("gossip-key")
}

// followBackoff spaces out the requests of a node that lacks the key of
// generation gen.
type followBackoff struct {
	gen  uint32
	wait time.Duration
	next time.Time
}

// getKeys returns the ring of the cluster: on a server from Nomad's
// Variable, else (or when that fails) from the CA endpoint.
func (a *Agent) getKeys(ctx context.Context) (gossipkeys.Ring, string, error) {
	a.mu.Lock()
	p := a.plan
	a.mu.Unlock()
	var errs []error
	if p != nil && p.IsServer(a.id) && a.cred.IsServer() {
		r, err := a.keysFromNomad(ctx, *p)
		if err == nil {
			return r, "Nomad Variable " + gossipkeys.VarPath, nil
		}
		errs = append(errs, err)
	}
	r, from, err := a.fetchKeys(ctx, p)
	if err == nil {
		return r, from, nil
	}
	return gossipkeys.Ring{}, "", errors.Join(append(errs, err)...)
}

// keysFromNomad reads the ring the servers keep in Nomad.
func (a *Agent) keysFromNomad(ctx context.Context, p plan.Plan) (gossipkeys.Ring, error) {
	vars, closeVars, err := a.nomadVars(p)
	if err != nil {
		return gossipkeys.Ring{}, err
	}
	defer closeVars()
	rctx, cancel := context.WithTimeout(ctx, a.tm.ACLAttempt)
	defer cancel()
	r, _, ok, err := gossipkeys.LoadVar(rctx, vars)
	if err == nil && !ok {
		err = fmt.Errorf("no Nomad Variable %s yet", gossipkeys.VarPath)
	}
	return r, err
}

// keySource is an endpoint that may hand over the keys.
type keySource struct {
	addr, fingerprint string // fingerprint "" for a seed's, not pinned
}

// keySources returns where to ask for the keys: the CA endpoints of p's
// servers (the CA holder first), pinned; without a plan, port+1 of the
// seeds, where every server answers.
func (a *Agent) keySources(p *plan.Plan) []keySource {
	var out []keySource
	if p != nil {
		for _, s := range caholder.Candidates(*p) {
			if s.ID != a.id {
				out = append(out, keySource{net.JoinHostPort(s.Address, strconv.Itoa(p.CAPort)), a.caSigning(*p)})
			}
		}
		return out
	}
	for _, seed := range a.seeds() {
		host, port, err := net.SplitHostPort(seed)
		n, perr := strconv.Atoi(port)
		if err != nil || perr != nil || n >= 65535 {
			continue
		}
		out = append(out, keySource{net.JoinHostPort(host, strconv.Itoa(n+1)), ""})
	}
	return out
}

// fetchKeys asks the CA endpoints for the cluster's ring, with a request
// authenticated like a certificate request, and opens the sealed answer.
func (a *Agent) fetchKeys(ctx context.Context, p *plan.Plan) (gossipkeys.Ring, string, error) {
	sources := a.keySources(p)
	if len(sources) == 0 {
		return gossipkeys.Ring{}, "", errors.New("no server to ask: name one in -join")
	}
	role := certs.RoleClient
	if p != nil && p.IsServer(a.id) {
		role = certs.RoleServer
	}
	adm := a.admission()
	if a.cred.IsServer() {
		adm = a.endorsement // a server-token holder shows its endorsement
	}
	var errs []error
	for _, s := range sources {
		req := &certs.SignRequest{NodeID: a.id, NodeName: a.name, Role: role, CSR: certs.KeysRequestCSR, Admission: adm}
		if err := req.Seal(a.keys.CSR, a.idKey, a.now(), rand.Reader); err != nil {
			return gossipkeys.Ring{}, "", err
		}
		rctx, cancel := context.WithTimeout(ctx, a.tm.CARequest)
		b, err := casvc.RequestKeys(rctx, a.sourceAddr(), s.addr, s.fingerprint, req)
		cancel()
		if err == nil {
			var r gossipkeys.Ring
			if r, err = gossipkeys.Open(b, a.idKey, req.Nonce, a.cred.Client.VerifyEndorsement); err == nil {
				return r, s.addr, nil
			}
		}
		errs = append(errs, err)
	}
	return gossipkeys.Ring{}, "", errors.Join(errs...)
}

// askWhenAlone asks for the cluster's keys on a node that sees no other
// member: when the answer holds a key this node lacks, it takes the keys
// and the one the cluster encrypts with, and joins at once.
func (a *Agent) askWhenAlone(ctx context.Context) {
	a.followMu.Lock()
	defer a.followMu.Unlock()
	a.mu.Lock()
	p := a.plan
	a.mu.Unlock()
	changed, from, err := a.takeClusterKeys(ctx, p)
	if err != nil {
		a.log.Debug("alone: no server handed over the gossip keys", "error", err)
		if p == nil && a.gossipRefused.Load() {
			a.setJoinReason("the seeds refused this node; if the cluster rotated its gossip key (keys rotate), name a Nomad server of the cluster in -join, so that this node can get the key")
		}
		return
	}
	if !changed {
		return
	}
	a.log.Info("this node was alone and lacked the cluster's gossip key; got it from a server", "from", from, "generation", a.currentRing().InUse)
	seeds := a.seeds()
	if p != nil {
		for _, s := range p.Servers {
			if s.ID != a.id {
				seeds = append(seeds, net.JoinHostPort(s.Address, strconv.Itoa(a.cfg.Port)))
			}
		}
	}
	if n, err := a.node.Join(seeds); n > 0 {
		a.log.Info("joined the cluster with its current gossip key")
		if !a.isJoined() {
			a.setJoined()
		}
	} else {
		a.log.Debug("joining with the new gossip key", "error", err)
	}
}

// joinWithServersKeys, on a new node whose seeds refused it, asks the
// seeds' port+1 for the cluster's gossip keys and, when a server hands them
// over, joins with them. It returns the join's count, or why no keys came.
func (a *Agent) joinWithServersKeys(seeds []string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, from, err := a.takeClusterKeys(ctx, nil)
	if err != nil {
		return 0, err
	}
	a.log.Info("the seeds refused the token's gossip key; joining with the cluster's current key", "from", from, "generation", a.currentRing().InUse)
	n, err := a.node.Join(seeds)
	if n == 0 {
		return 0, fmt.Errorf("joining with the key %s handed over: %w", from, err)
	}
	return n, nil
}

// takeClusterKeys asks the servers of p (the seeds without p) for the
// cluster's keys and takes them (gossipkeys.Ring.Adopt); it reports
// whether this node's ring changed and which server answered.
func (a *Agent) takeClusterKeys(ctx context.Context, p *plan.Plan) (bool, string, error) {
	got, from, err := a.fetchKeys(ctx, p)
	if err != nil {
		return false, "", err
	}
	r := a.currentRing()
	next := r.Adopt(got)
	if next.Equal(r) {
		return false, from, nil
	}
	// The keys came from a server of the cluster: a new node is joining
	// it, and keeps its identity from now on.
	if err := a.persistIdentity(); err != nil {
		return false, from, err
	}
	return true, from, a.setRing(next)
}

// answerKeys hands this server's ring, sealed to the requester, to a node
// that may have it (caholder.AuthorizeKeys): the CA endpoint's Keys.
func (a *Agent) answerKeys(req *certs.SignRequest, remote netip.Addr) ([]byte, error) {
	p, tr := a.caTrust()
	if err := caholder.AuthorizeKeys(p, a.tr.Members(), req, remote, tr); err != nil {
		return nil, err
	}
	return gossipkeys.Seal(a.currentRing(), req.Identity, req.Nonce, a.id, a.idKey, a.endorsement)
}

// AgentKeyAnswer is what keys rotate reports of the agents' gossip key.
type AgentKeyAnswer struct {
	// Generation is the one every member now holds, alone.
	Generation uint32    `json:"generation"`
	RotatedAt  time.Time `json:"rotated_at"`
	// Resumed is true when a rotation cut short was finished instead.
	Resumed bool `json:"resumed"`
	// LeftOut are the alive members that did not get the new key: the
	// servers refused it to them (evicted, or holding a client token
	// rotated out), or they could not reach one yet.
	LeftOut []string `json:"left_out,omitempty"`
}

// RotateAgentKey rotates the agents' gossip key, or finishes a rotation
// that was cut short. It runs on a server of the plan whose Nomad ACLs are
// set up.
func (a *Agent) RotateAgentKey(ctx context.Context) (AgentKeyAnswer, error) {
	p, err := a.serverReady()
	if err != nil {
		return AgentKeyAnswer{}, err
	}
	if err := lockWithin(ctx, &a.agentKeyMu, "this server is rotating the agents' gossip key already; wait for it to finish"); err != nil {
		return AgentKeyAnswer{}, err
	}
	defer a.agentKeyMu.Unlock()
	return a.rotateAgentKey(ctx, p, false)
}

// rotateAgentKey runs or resumes a rotation; resumeOnly leaves a finished
// rotation alone. The caller holds agentKeyMu.
func (a *Agent) rotateAgentKey(ctx context.Context, p plan.Plan, resumeOnly bool) (AgentKeyAnswer, error) {
	vars, closeVars, err := a.nomadVars(p)
	if err != nil {
		return AgentKeyAnswer{}, err
	}
	defer closeVars()
	var k clusterstate.AgentKey
	if st := a.clusterState(); st != nil {
		k = st.AgentGossipKey
	}
	resumed := k.Phase == clusterstate.KeyInstall || k.Phase == clusterstate.KeyUse
	if resumed {
		if _, ok := a.currentRing().Get(k.Generation); !ok {
			if r, err := a.keysFromNomad(ctx, p); err == nil {
				if err := a.setRing(a.currentRing().Merge(r)); err != nil {
					return AgentKeyAnswer{}, err
				}
			}
		}
		if _, ok := a.currentRing().Get(k.Generation); !ok {
			a.log.Warn("no server holds the key of the rotation cut short; rotating to a new one", "generation", k.Generation)
			resumed = false
		}
	}
	if !resumed {
		if resumeOnly {
			return AgentKeyAnswer{}, nil
		}
		next, err := a.currentRing().Add(k.Generation)
		if err != nil {
			return AgentKeyAnswer{}, err
		}
		// The servers' copy first: a server that lacks the key reads it
		// there once the cluster state announces it.
		wctx, cancel := context.WithTimeout(ctx, a.tm.ACLAttempt)
		err = gossipkeys.StoreVar(wctx, vars, next)
		cancel()
		if err != nil {
			return AgentKeyAnswer{}, err
		}
		if err := a.setRing(next); err != nil {
			return AgentKeyAnswer{}, err
		}
		k = clusterstate.AgentKey{Generation: next.Newest(), Phase: clusterstate.KeyInstall, StartedAt: a.now().UTC()}
		if err := a.recordAgentKey(ctx, vars, k); err != nil {
			return AgentKeyAnswer{}, err
		}
		a.log.Info("rotating the agents' gossip key", "generation", k.Generation)
	} else {
		a.log.Warn("finishing a rotation of the agents' gossip key that was cut short", "generation", k.Generation, "phase", k.Phase)
	}
	// A member that has not taken a step within Timings.KeyWait does not
	// hold the rotation up: one that the servers refuse the key (evicted,
	// or holding a client token rotated out) never will, and is to be cut
	// off; one that could not reach a server gets the key when it finds
	// itself alone and asks again.
	has := func(m gossip.Meta) bool { return m.KeyNewest >= k.Generation }
	if k.Phase == clusterstate.KeyInstall {
		if err := a.waitMembers(ctx, has); err != nil {
			return AgentKeyAnswer{}, err
		}
		k.Phase = clusterstate.KeyUse
		if err := a.recordAgentKey(ctx, vars, k); err != nil {
			return AgentKeyAnswer{}, err
		}
	}
	// Who lacks the key is told now, while every member still holds the
	// old one: once the old key is removed, a member without the new one
	// soon shows as failed rather than alive.
	missing := a.membersWithout(has)
	if err := a.waitMembers(ctx, func(m gossip.Meta) bool { return !has(m) || m.KeyInUse >= k.Generation }); err != nil {
		return AgentKeyAnswer{}, err
	}
	k.Phase, k.RotatedAt = clusterstate.KeyDone, a.now().UTC()
	if err := a.recordAgentKey(ctx, vars, k); err != nil {
		return AgentKeyAnswer{}, err
	}
	if err := a.waitMembers(ctx, func(m gossip.Meta) bool { return !has(m) || m.KeyOldest >= k.Generation }); err != nil {
		return AgentKeyAnswer{}, err
	}
	// Left out: whoever lacked the key at the switch and has not got it
	// since, and any alive member still without it.
	got := map[string]bool{}
	for _, m := range a.tr.Members() {
		if m.MetaErr == nil && has(m.Meta) {
			got[m.Name] = true
		}
	}
	leftOut := slices.DeleteFunc(append(missing, a.membersWithout(has)...), func(n string) bool { return got[n] })
	slices.Sort(leftOut)
	leftOut = slices.Compact(leftOut)
	if len(leftOut) > 0 {
		a.log.Warn("members without the agents' new gossip key no longer gossip with the cluster until they get it", "generation", k.Generation, "members", strings.Join(leftOut, ","))
	}
	// The servers' copy keeps the key in use and the one before.
	if r, ok := a.currentRing().Follow(k); ok {
		wctx, cancel := context.WithTimeout(ctx, a.tm.ACLAttempt)
		if err := gossipkeys.StoreVar(wctx, vars, r); err != nil {
			a.log.Warn("keeping the agents' gossip key in Nomad", "error", err)
		}
		cancel()
	}
	a.log.Info("rotated the agents' gossip key", "generation", k.Generation)
	return AgentKeyAnswer{Generation: k.Generation, RotatedAt: k.RotatedAt, Resumed: resumed, LeftOut: leftOut}, nil
}

// recordAgentKey records k in the cluster state and sends it to every
// member.
func (a *Agent) recordAgentKey(ctx context.Context, vars clusterstate.Vars, k clusterstate.AgentKey) error {
	st, _, err := clusterstate.Update(ctx, vars, a.cred.ClusterIDString(), func(s clusterstate.State) (clusterstate.State, bool, error) {
		restored := a.restore(&s)
		next, changed, err := s.WithAgentGossipKey(k)
		return next, changed || restored, err
	})
	if err != nil {
		return fmt.Errorf("recording the agents' gossip key in the cluster state: %w", err)
	}
	if err := a.publishClusterState(ctx, st); err != nil {
		return err
	}
	a.followAgentKey(ctx) // this server's own ring, before it waits for the others
	return nil
}

// membersWithout names the alive members whose meta does not satisfy ok.
func (a *Agent) membersWithout(ok func(gossip.Meta) bool) []string {
	var names []string
	for _, m := range a.tr.Members() {
		if m.State == gossip.StateAlive && m.MetaErr == nil && !ok(m.Meta) {
			names = append(names, m.Name)
		}
	}
	return names
}

// waitMembers waits until every alive member's meta satisfies ok, at most
// Timings.KeyWait; only the end of ctx is an error.
func (a *Agent) waitMembers(ctx context.Context, ok func(gossip.Meta) bool) error {
	deadline := a.now().Add(a.tm.KeyWait)
	for {
		if len(a.membersWithout(ok)) == 0 || !a.now().Before(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(keyPoll):
		}
	}
}

// scheduleAgentKey, on the CA holder every Timings.ClusterSync, finishes a
// rotation cut short, and rotates when gossip_key_rotation has passed since
// the last rotation or, while the key is still the token's, when Nomad's
// key rotated on schedule (syncNomadKeys sets agentKeyDue): both keys keep
// one schedule.
func (a *Agent) scheduleAgentKey(ctx context.Context) {
	if a.now().Sub(a.lastAgentKeyCheck) < a.tm.ClusterSync {
		return
	}
	p, err := a.serverReady()
	if err != nil || p.CAHolder != a.id {
		return
	}
	a.lastAgentKeyCheck = a.now()
	st := a.clusterState()
	if st == nil {
		st = &clusterstate.State{}
	}
	if !a.agentKeyMu.TryLock() {
		return
	}
	defer a.agentKeyMu.Unlock()
	k := st.AgentGossipKey
	every := a.cfg.GossipKeyRotation
	switch {
	case k.Generation > 0 && k.Phase != clusterstate.KeyDone:
		_, err := a.rotateAgentKey(ctx, p, true)
		if err != nil {
			a.log.Warn("finishing a rotation of the agents' gossip key; retrying at the next check", "error", err)
		}
		return
	case every > 0 && (a.agentKeyDue.Load() || (k.Generation > 0 && a.now().Sub(k.RotatedAt) >= every)):
		a.log.Info("rotating the agents' gossip key on schedule", "generation", k.Generation, "in_use_since", k.RotatedAt, "gossip_key_rotation", every)
		if _, err := a.rotateAgentKey(ctx, p, false); err != nil {
			a.log.Warn("rotating the agents' gossip key; retrying at the next check", "error", err)
			return
		}
		a.agentKeyDue.Store(false)
	}
}

// agentKeyStatus returns the status of the agents' gossip key; the CA
// holder, which runs the schedule, knows the next rotation.
func (a *Agent) agentKeyStatus(cs clusterstate.State, caHolder bool) status.KeyStatus {
	k := cs.AgentGossipKey
	ks := status.KeyStatus{Generation: k.Generation, RotatedAt: k.RotatedAt}
	if k.Phase == clusterstate.KeyInstall || k.Phase == clusterstate.KeyUse {
		ks.Rotating = fmt.Sprintf("%s generation %d", k.Phase, k.Generation)
	}
	if caHolder && a.cfg.GossipKeyRotation > 0 && !k.RotatedAt.IsZero() {
		ks.NextRotation = k.RotatedAt.Add(a.cfg.GossipKeyRotation).UTC()
	}
	return ks
}
