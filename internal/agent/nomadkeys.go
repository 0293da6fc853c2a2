package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/clusterstate"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadconf"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadkeys"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// Nomad's gossip key (internal/nomadkeys): the servers' serf key, which
// generation 0 derives from the server token and every rotation replaces
// with a random one through Nomad's keyring API, Nomad running throughout.
//
// keys rotate runs a rotation on the server it is given to; the CA holder
// also runs one every gossip_key_rotation. Every server, each
// Timings.ClusterSync, takes up a rotation that was cut short (the CA
// holder at once, the others once it is stuck), records the generation in
// the cluster state, and heals its own Nomad when it was away while the
// others rotated (healNomadKeys, whatever its ACL state). Before Nomad
// first starts on a new server, its keyring file is given the current
// keys.

// keyCall bounds one call of Nomad's keyring API: serf asks every server
// and waits for their answers.
const keyCall = 30 * time.Second

// keyPrepare bounds how long a new server waits for the current gossip
// keys before its Nomad starts.
const keyPrepare = time.Minute

// keyRestartEvery bounds how often healNomadKeys restarts Nomad, and
// keyHealFailsToRestart is how many failed checks in a row, keyHealRetry
// apart, come first.
const (
	keyRestartEvery       = 5 * time.Minute
	keyHealFailsToRestart = 3
)

// keyHealRetry is how soon a server checks its Nomad's gossip keys again
// after a check that could not be done.
const keyHealRetry = 10 * time.Second

// nomadKeyAPI returns the keyring API and the Variables of the Nomad agent
// at addr, authenticated with the management token, and a function that
// closes its client.
func (a *Agent) nomadKeyAPI(p plan.Plan, addr string) (nomadkeys.Keyring, clusterstate.Vars, func(), error) {
	secret, err := a.managementSecret()
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := a.nomad.ClientWithin(p, addr, keyCall)
	if err != nil {
		return nil, nil, nil, err
	}
	c.SetSecretID(secret)
	return c.Agent(), clusterstate.NomadVars(c, secret), c.Close, nil
}

// rotation returns the rotation of Nomad's gossip key through kr and vars.
func (a *Agent) rotation(kr nomadkeys.Keyring, vars clusterstate.Vars) nomadkeys.Rotation {
	r := nomadkeys.Rotation{Vars: vars, Keyring: kr, Initial: a.keys.NomadEncrypt, Now: a.now, Poll: time.Second, Wait: a.tm.KeyWait}
	if held := a.clusterState(); held != nil {
		r.After = held.NomadGossipKey.Generation
	}
	return r
}

// recordKeyGeneration records in the cluster state, and sends to every
// member, that Nomad's gossip key reached k's generation.
func (a *Agent) recordKeyGeneration(ctx context.Context, vars clusterstate.Vars, k nomadkeys.Keys) (clusterstate.State, error) {
	st, _, err := clusterstate.Update(ctx, vars, a.cred.ClusterIDString(), func(s clusterstate.State) (clusterstate.State, bool, error) {
		restored := a.restore(&s)
		next, changed := s.RotatedNomadGossipKey(k.Generation, k.RotatedAt)
		return next, changed || restored, nil
	})
	if err != nil {
		return st, err
	}
	return st, a.publishClusterState(ctx, st)
}

// keySeen is how far the rotation of Nomad's gossip key was when this
// server last read the keys: no key material.
type keySeen struct {
	generation uint32
	phase      nomadkeys.Phase
	rotatedAt  time.Time
	caHolder   bool
}

// seeKeys remembers k for status.
func (a *Agent) seeKeys(k nomadkeys.Keys, caHolder bool) {
	a.keySeen.Store(&keySeen{generation: k.Generation, phase: k.Phase, rotatedAt: k.RotatedAt, caHolder: caHolder})
}

// nomadKeyStatus returns the status of Nomad's gossip key: its generation
// by the cluster state, and on servers the rotation under way and, on the
// CA holder, the next scheduled one.
func (a *Agent) nomadKeyStatus(cs clusterstate.State) status.KeyStatus {
	ks := status.KeyStatus{Generation: cs.NomadGossipKey.Generation, RotatedAt: cs.NomadGossipKey.RotatedAt}
	seen := a.keySeen.Load()
	if seen == nil || seen.generation < ks.Generation {
		return ks
	}
	if seen.phase != nomadkeys.PhaseDone {
		ks.Rotating = fmt.Sprintf("%s generation %d", seen.phase, seen.generation)
	}
	if seen.caHolder && a.cfg.GossipKeyRotation > 0 && !seen.rotatedAt.IsZero() {
		ks.NextRotation = seen.rotatedAt.Add(a.cfg.GossipKeyRotation).UTC()
	}
	return ks
}

// KeysAnswer is what keys rotate reports.
type KeysAnswer struct {
	// Generation is the generation of Nomad's gossip key the servers now
	// hold, alone.
	Generation uint32    `json:"generation"`
	RotatedAt  time.Time `json:"rotated_at"`
	// Resumed is true when the command finished a rotation that was cut
	// short instead of starting another.
	Resumed bool `json:"resumed"`
	// Version is the cluster state's that records the generation.
	Version uint64 `json:"version"`
	// Agents is the rotation of the agents' own gossip key.
	Agents AgentKeyAnswer `json:"agents"`
}

// RotateKeys rotates Nomad's gossip key, then the agents' own.
func (a *Agent) RotateKeys(ctx context.Context) (KeysAnswer, error) {
	ans, err := a.RotateNomadKey(ctx)
	if err != nil {
		return ans, err
	}
	if ans.Agents, err = a.RotateAgentKey(ctx); err != nil {
		return ans, fmt.Errorf("the gossip key of Nomad is at generation %d; the agents' gossip key: %w", ans.Generation, err)
	}
	if st := a.clusterState(); st != nil {
		ans.Version = st.Version
	}
	return ans, nil
}

// RotateNomadKey rotates Nomad's gossip key on every server, or finishes a
// rotation that was cut short. It runs on a server of the plan, with
// Nomad's ACLs bootstrapped.
func (a *Agent) RotateNomadKey(ctx context.Context) (KeysAnswer, error) {
	p, err := a.serverReady()
	if err != nil {
		return KeysAnswer{}, err
	}
	// The checks of syncNomadKeys and healNomadKeys take seconds; another
	// keys rotate on this server, minutes.
	if err := lockWithin(ctx, &a.keyMu, "this server is rotating Nomad's gossip key already; wait for it to finish"); err != nil {
		return KeysAnswer{}, err
	}
	defer a.keyMu.Unlock()
	kr, vars, closeAPI, err := a.nomadKeyAPI(p, a.advertise)
	if err != nil {
		return KeysAnswer{}, err
	}
	defer closeAPI()
	before, _, _, err := nomadkeys.Load(ctx, vars)
	if err != nil {
		return KeysAnswer{}, err
	}
	k, err := a.rotation(kr, vars).Run(ctx)
	if err != nil {
		if k, _, _, lerr := nomadkeys.Load(ctx, vars); lerr == nil {
			a.seeKeys(k, p.CAHolder == a.id)
		}
		return KeysAnswer{}, fmt.Errorf("%w; run keys rotate again to finish it (the servers keep gossiping with the key they use meanwhile)", err)
	}
	st, err := a.recordKeyGeneration(ctx, vars, k)
	if err != nil {
		return KeysAnswer{}, fmt.Errorf("the gossip key of Nomad is at generation %d, but recording it in the cluster state failed: %w", k.Generation, err)
	}
	a.seeKeys(k, p.CAHolder == a.id)
	a.log.Info("rotated Nomad's gossip key", "generation", k.Generation, "version", st.Version)
	resumed := before.Phase != nomadkeys.PhaseDone && before.Generation == k.Generation
	return KeysAnswer{Generation: k.Generation, RotatedAt: k.RotatedAt, Resumed: resumed, Version: st.Version}, nil
}

// lockWithin locks mu, which a rotation holds for minutes and a check for
// seconds, or fails with busy once ctx ends.
func lockWithin(ctx context.Context, mu *sync.Mutex, busy string) error {
	for !mu.TryLock() {
		select {
		case <-ctx.Done():
			return errors.New(busy)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// syncNomadKeys, on a server whose ACLs are set up, records generation 0
// of Nomad's gossip key, finishes or starts the rotations that are due,
// and records the generation in the cluster state. It runs on the pipeline's goroutine, from syncClusterState.
func (a *Agent) syncNomadKeys(ctx context.Context, p plan.Plan) {
	if a.keys.NomadEncrypt == "" || !a.keyMu.TryLock() {
		return
	}
	defer a.keyMu.Unlock()
	kr, vars, closeAPI, err := a.nomadKeyAPI(p, a.advertise)
	if err != nil {
		a.log.Debug("cannot check Nomad's gossip key yet", "error", err)
		return
	}
	defer closeAPI()
	now := a.now()
	var recorded uint32
	if held := a.clusterState(); held != nil {
		recorded = held.NomadGossipKey.Generation
	}
	k, _, ok, err := nomadkeys.Load(ctx, vars)
	if err == nil && !ok && recorded == 0 {
		k, err = nomadkeys.Record(ctx, vars, now)
	}
	if err != nil {
		a.log.Warn("reading Nomad's gossip keys", "error", err)
		return
	}
	holder := p.CAHolder == a.id
	every := a.cfg.GossipKeyRotation
	a.seeKeys(k, holder)
	var rotate func(context.Context) (nomadkeys.Keys, error)
	scheduled := false
	switch nomadkeys.Due(k, now, every, holder, recorded) {
	case nomadkeys.Resume:
		a.log.Warn("finishing a rotation of Nomad's gossip key that was cut short", "generation", k.Generation, "phase", k.Phase)
		rotate = a.rotation(kr, vars).Resume
	case nomadkeys.Rotate:
		if k.Generation < recorded {
			a.log.Warn("Nomad no longer holds the gossip keys its servers use (a deleted Variable, an older snapshot); rotating to a new key", "held", k.Generation, "recorded", recorded)
		} else {
			a.log.Info("rotating Nomad's gossip key on schedule", "generation", k.Generation, "in_use_since", k.RotatedAt, "gossip_key_rotation", every)
			scheduled = true
		}
		rotate = a.rotation(kr, vars).Run
	}
	if rotate != nil {
		if k, err = rotate(ctx); err != nil {
			a.log.Warn("rotating Nomad's gossip key; retrying at the next check", "error", err)
			return
		}
		a.log.Info("rotated Nomad's gossip key", "generation", k.Generation)
		a.seeKeys(k, holder)
		if scheduled {
			a.agentKeyDue.Store(true) // the agents' key keeps the same schedule
			a.kickKeys()
		}
	}
	if held := a.clusterState(); k.Phase == nomadkeys.PhaseDone && (held == nil || held.NomadGossipKey.Generation < k.Generation) {
		if _, err := a.recordKeyGeneration(ctx, vars, k); err != nil {
			a.log.Warn("recording Nomad's gossip key generation in the cluster state", "error", err)
		}
	}
}

// heal brings this server's Nomad up to k (nomadkeys.Heal) and reports
// whether it checked; a Nomad it brought up is asked to join the other
// servers at once, rather than at serf's next reconnect.
func (a *Agent) heal(kr nomadkeys.Keyring, k nomadkeys.Keys, p plan.Plan) bool {
	did, err := nomadkeys.Heal(kr, k, a.keys.NomadEncrypt)
	if err != nil {
		a.log.Warn("bringing this server's Nomad up to the current gossip key", "error", err)
		return false
	}
	if did == "" {
		return true
	}
	a.log.Warn("this server's Nomad lacked the current gossip key", "did", did, "generation", k.Generation)
	if j, ok := kr.(interface{ Join(...string) (int, error) }); ok {
		var peers []string
		for _, s := range a.otherServers(p) {
			peers = append(peers, net.JoinHostPort(s.Address, strconv.Itoa(nomadconf.SerfPort)))
		}
		if _, err := j.Join(peers...); err != nil {
			a.log.Warn("asking Nomad to join the other servers", "error", err)
		}
	}
	return true
}

// healNomadKeys, on a server whose Nomad runs, in a cluster that rotated
// Nomad's gossip key, brings its Nomad up to the current key every
// Timings.ClusterSync, whatever its ACL state: a server that was down
// through a rotation cannot gossip with the others, so it may know no
// leader, and its ACL setup waits for one. Nomad's keyring API resolves
// the management token from the server's own state. The keys are read
// from the local Nomad, else from the other servers'; Nomad's keyring file
// tells whether its keyring needs a change, so that a healthy server costs
// no keyring request (which fails while any server is down). It runs on
// the pipeline's goroutine.
//
// A Nomad that never joined the others (a new server whose keys went stale
// before it joined, a keyring file holding a key no server uses) cannot be
// healed through its API, since it holds no ACL tokens to authorise the
// call; when that fails keyHealFailsToRestart times in a row (a Nomad just
// starting fails too) and it knows no leader, its keyring file is
// rewritten with the current keys and it is restarted (restart), at most
// once every keyRestartEvery.
func (a *Agent) healNomadKeys(ctx context.Context, p plan.Plan, hasLeader bool, restart func() error) {
	st := a.clusterState()
	if !p.IsServer(a.id) || a.keys.NomadEncrypt == "" || st == nil || st.NomadGossipKey.Generation == 0 ||
		a.now().Sub(a.lastKeyHeal) < a.tm.ClusterSync || !a.keyMu.TryLock() {
		return
	}
	defer a.keyMu.Unlock()
	a.lastKeyHeal = a.now()
	self := plan.Server{ID: a.id, Name: a.name, Address: a.advertise}
	k, _, err := a.currentKeys(ctx, p, append([]plan.Server{self}, a.otherServers(p)...), st.NomadGossipKey.Generation)
	if err != nil {
		a.log.Debug("cannot read the current gossip keys from any server to check this server's Nomad", "error", err)
		return
	}
	if nomadkeys.Current(a.paths.NomadDataDir(), k, a.keys.NomadEncrypt) {
		return
	}
	kr, _, closeAPI, err := a.nomadKeyAPI(p, a.advertise)
	if err != nil {
		return
	}
	defer closeAPI()
	if a.heal(kr, k, p) {
		a.keyHealFails = 0
		return
	}
	a.keyHealFails++
	if hasLeader || a.keyHealFails < keyHealFailsToRestart || a.now().Sub(a.lastKeyRestart) < keyRestartEvery {
		// Nomad may be starting: look again soon.
		a.lastKeyHeal = a.now().Add(keyHealRetry - a.tm.ClusterSync)
		return
	}
	a.lastKeyRestart, a.keyHealFails = a.now(), 0
	if err := nomadkeys.Replace(a.paths.NomadDataDir(), k, a.keys.NomadEncrypt); err != nil {
		a.log.Warn("giving Nomad the current gossip keys", "error", err)
		return
	}
	a.log.Warn("this server's Nomad holds no current gossip key, knows no leader and cannot be changed through its API; restarting it with the current keys", "generation", k.Generation)
	if err := restart(); err != nil {
		a.log.Warn("restarting Nomad", "error", err)
	}
}

// otherServers returns the servers of p but this node.
func (a *Agent) otherServers(p plan.Plan) []plan.Server {
	return slices.DeleteFunc(slices.Clone(p.Servers), func(s plan.Server) bool { return s.ID == a.id })
}

// currentKeys reads Nomad's gossip keys through the Nomad API of the first
// of servers that answers with generation want or later, and returns them
// with that server's name.
func (a *Agent) currentKeys(ctx context.Context, p plan.Plan, servers []plan.Server, want uint32) (nomadkeys.Keys, string, error) {
	var errs []error
	for _, s := range servers {
		k, err := a.readNomadKeys(ctx, p, s.Address)
		if err == nil && k.Generation < want {
			err = fmt.Errorf("holds generation %d, older than the cluster state's %d", k.Generation, want)
		}
		if err == nil {
			return k, s.Name, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", s.Name, err))
	}
	return nomadkeys.Keys{}, "", errors.Join(errs...)
}

// prepareNomadKeyring, on a new server of a cluster that rotated Nomad's
// gossip key, gives Nomad's keyring file the current keys before Nomad
// starts: it would start with the key the token derives and could not
// gossip with the other servers. It reads the keys from the other servers'
// Nomad, waiting up to keyPrepare for the management token to arrive in
// the escrow and for a server to answer, then gives up: Nomad starts with
// what it has. A server that ran before has Nomad's own keyring file, and
// if it was away through a rotation healNomadKeys heals it once it runs.
func (a *Agent) prepareNomadKeyring(ctx context.Context, p plan.Plan) {
	st := a.clusterState()
	if !p.IsServer(a.id) || a.keys.NomadEncrypt == "" || st == nil || st.NomadGossipKey.Generation == 0 {
		return
	}
	if _, err := os.Stat(filepath.Join(a.paths.NomadDataDir(), nomadkeys.KeyringFile)); !errors.Is(err, fs.ErrNotExist) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, keyPrepare)
	defer cancel()
	for {
		k, from, err := a.currentKeys(ctx, p, a.otherServers(p), st.NomadGossipKey.Generation)
		if err == nil {
			if _, err := nomadkeys.WriteFile(a.paths.NomadDataDir(), k, a.keys.NomadEncrypt); err != nil {
				a.log.Warn("giving Nomad the current gossip keys", "error", err)
				return
			}
			a.log.Info("gave Nomad's keyring the current gossip keys", "generation", k.Generation, "phase", k.Phase, "from", from)
			return
		}
		select {
		case <-ctx.Done():
			a.log.Warn("cannot read the current gossip keys from any server; Nomad starts with the key the token derives", "error", err)
			return
		case <-time.After(2 * time.Second):
		}
	}
}

// readNomadKeys reads Nomad's gossip keys through the Nomad API at addr.
func (a *Agent) readNomadKeys(ctx context.Context, p plan.Plan, addr string) (nomadkeys.Keys, error) {
	_, vars, closeAPI, err := a.nomadKeyAPI(p, addr)
	if err != nil {
		return nomadkeys.Keys{}, err
	}
	defer closeAPI()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	k, _, ok, err := nomadkeys.Load(ctx, vars)
	if err == nil && !ok {
		err = errors.New("no keys recorded")
	}
	return k, err
}
