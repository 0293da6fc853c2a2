// Package agent is the nomad-bootstrapd daemon: it fingerprints the node,
// joins the encrypted gossip pool, runs the agreement protocol
// (internal/agree) on its one event loop, and once a plan is committed takes
// the node through certificates (internal/caholder on the CA holder), Nomad
// (internal/nomadrun configures, starts and watches it), ACLs and health,
// answering status queries on its control socket. It is the only writer of
// the node's phase.
package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/memberlist"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agree"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/casvc"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/clusterstate"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/discover"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/fingerprint"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossipkeys"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/identity"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadrun"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/planfile"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/snapshot"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// Options configure an Agent.
type Options struct {
	// Config is the merged configuration; New validates it.
	Config config.Config
	// Credential is the parsed join token: the server token or a client
	// token.
	Credential certs.Credential
	// Root relocates every path ("/" in production).
	Root string
	// Logger receives the agent's logs; nil discards them.
	Logger *slog.Logger
	// Sources are where machine facts come from; the zero value reads this machine.
	Sources fingerprint.Sources
	// Version is reported by status.
	Version string
	// Timings are the agent's intervals and timeouts; nil means
	// DefaultTimings.
	Timings *Timings
	// GossipTuning adjusts memberlist's configuration (tests and benchmarks).
	GossipTuning func(*memberlist.Config)
	// Resolver looks up the seeds given as DNS SRV names; the zero value
	// asks the system's resolver, within Timings.SeedLookup.
	Resolver discover.Resolver
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// DryRun builds an agent only to describe what it would do: a missing
	// Nomad binary is then noted, not refused.
	DryRun bool
}

// transport is what the agreement protocol needs from gossip.
type transport interface {
	SendTo(name string, payload []byte) error
	Broadcast(payload []byte) error
	Members() []gossip.Member
}

// Agent is one node's daemon.
type Agent struct {
	cfg         config.Config
	cred        certs.Credential   // the join token
	serverToken certs.Token        // the server token; zero for a client token
	keys        certs.Keys         // derived from cred once
	idKey       ed25519.PrivateKey // the node's identity key
	endorsed    *endorsements      // the members' checked endorsements
	paths       paths.Paths
	log         *slog.Logger
	now         func() time.Time
	version     string
	tuning      func(*memberlist.Config)
	resolver    discover.Resolver
	mdns        *discover.Announcer // set by Start when a seed is provider=mdns
	seedErrs    string              // under mu: the seeds' last lookup failures, logged when they change
	tm          Timings             // intervals and timeouts (timings.go)
	facts       fingerprint.Facts
	id          string
	idMu        sync.Mutex // guards idFresh and lock
	lock        *os.File   // the state directory's lock, once taken (persistIdentity)
	idFresh     bool       // the node ID is not on disk yet
	keyFresh    bool       // the identity key is not on disk yet
	name        string
	advertise   string
	bind        string
	nomad       *nomadrun.Runner // this node's Nomad agent under the plan
	nomadNote   string           // why the Nomad detected is a fallback, when it is
	vote        *agree.Vote      // the vote persisted by an earlier run, for the protocol

	node *gossip.Node
	tr   transport
	srv  *http.Server
	bg   sync.WaitGroup // goroutines that Run waits for on shutdown

	// Owned by Run's loop (loop.go).
	ev     *events
	proto  *agree.Node
	propCA *certs.CA    // the CA made for this node's first proposal
	early  *earlyEscrow // an escrow that came before its plan
	sendq  chan outgoing
	shared atomic.Pointer[plan.Plan] // the committed plan, for push/pull syncs

	cstate         atomic.Pointer[heldState] // the cluster state this node verified (cluster.go)
	refusedStates  map[string]bool           // senders of refused cluster states, logged once (loop)
	newer          map[string]newerSeen      // senders of a newer protocol or state format (a.mu)
	endorsement    []byte                    // the cluster key's endorsement of this node, for a server-token holder
	stopRun        context.CancelCauseFunc   // ends Run with a cause (eviction)
	lastSync       time.Time                 // when this server last read the cluster state from Nomad (pipeline)
	lastKeyHeal    time.Time                 // when this server last checked its Nomad's gossip keys (pipeline)
	lastKeyRestart time.Time                 // when that check last restarted Nomad (pipeline)
	keyHealFails   int                       // that check's failures in a row (pipeline)

	mgmtMu  sync.Mutex              // held while the management token is read or made (acl.go)
	keyMu   sync.Mutex              // held while Nomad's gossip keys are rotated or healed (nomadkeys.go)
	keySeen atomic.Pointer[keySeen] // Nomad's gossip key as this server last read it (nomadkeys.go)

	ringMu            sync.Mutex      // guards ring and meta (gossipkeys.go)
	ring              gossipkeys.Ring // the agents' gossip keys this node holds
	meta              gossip.Meta     // what this node announces
	followMu          sync.Mutex      // held while the ring follows the cluster's rotation
	follow            followBackoff   // guarded by followMu
	agentKeyMu        sync.Mutex      // held while the agents' gossip key is rotated
	caRotMu           sync.Mutex      // held while the cluster CA is rotated
	lastCACheck       time.Time       // keyLoop's last look at the CA's schedule
	keyKick           chan struct{}   // wakes the gossip key loop
	nomadRestart      chan chan error // asks the pipeline to restart Nomad
	lastAgentKeyCheck time.Time       // when the CA holder last checked the rotation's schedule (key loop)
	gossipRefused     atomic.Bool     // a join was refused: the key may have rotated while this node was away
	agentKeyDue       atomic.Bool     // Nomad's key rotated on schedule: the agents' follows (gossipkeys.go)

	mu        sync.Mutex
	st        status.Tracker // the phase, why the node waits, what degrades it (phase.go)
	joined    bool
	plan      *plan.Plan // the committed plan, as the loop published it
	planHash  string     // its hash; "" without a plan
	warnings  map[string]string
	ca        *certs.CA            // the CA, on the coordinator and the CA holder
	caSrv     *casvc.Server        // the CA endpoint, on the CA holder
	caCtx     context.Context      // the pipeline's, which the CA endpoint lives as long as
	keySrv    *casvc.Server        // the endpoint for the gossip keys only, on the other servers
	keySrvFP  string               // the fingerprint of the CA keySrv presents
	nomadSt   *status.NomadStatus  // the local Nomad agent, once started
	pipeline  bool                 // the post-commit pipeline runs
	pipeStop  context.CancelFunc   // stops the pipeline, to restart it with a successor plan
	pipeDone  chan struct{}        // closed when the pipeline has ended
	downSince map[string]time.Time // plan servers not alive, since when
	aclState  string               // servers: pending, bootstrapped, bootstrapped elsewhere
}

// New checks the configuration, resolves addresses, fingerprints the machine
// and reads persisted state. It writes nothing.
func New(opts Options) (*Agent, error) {
	cfg := opts.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Agent{
		cfg:          cfg,
		cred:         opts.Credential,
		keys:         opts.Credential.Keys(),
		endorsed:     newEndorsements(opts.Credential.Client),
		paths:        paths.New(opts.Root),
		log:          opts.Logger,
		now:          opts.Now,
		tm:           DefaultTimings(),
		version:      opts.Version,
		tuning:       opts.GossipTuning,
		resolver:     opts.Resolver,
		ev:           newEvents(),
		sendq:        make(chan outgoing, sendQueue),
		warnings:     map[string]string{},
		downSince:    map[string]time.Time{},
		keyKick:      make(chan struct{}, 1),
		nomadRestart: make(chan chan error),
	}
	a.serverToken, _ = opts.Credential.Server()
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if opts.Timings != nil {
		a.tm = *opts.Timings
	}
	src := opts.Sources
	if src.Hostname == nil {
		src = fingerprint.DefaultSources()
	}
	feat, note, err := nomadrun.Detect(context.Background(), cfg, opts.DryRun)
	if err != nil {
		return nil, err
	}
	a.nomadNote = note
	if a.facts, err = fingerprint.Collect(src); err != nil {
		return nil, err
	}
	advSpec := cfg.Advertise
	if advSpec == "" {
		advSpec = cfg.Bind
	}
	if a.advertise, err = fingerprint.ResolveAddress(advSpec); err != nil {
		return nil, fmt.Errorf("agent: advertise address: %w", err)
	}
	a.bind = a.advertise
	if cfg.Bind != "" {
		if a.bind, err = fingerprint.ResolveAddress(cfg.Bind); err != nil {
			return nil, fmt.Errorf("agent: bind address: %w", err)
		}
	}
	a.name = cfg.Name
	if a.name == "" {
		a.name = fingerprint.SanitizeHostname(a.facts.Hostname)
	}
	if a.id, a.idFresh, err = fingerprint.LoadNodeID(a.paths.NodeIDFile()); err != nil {
		return nil, err
	}
	if a.idKey, a.keyFresh, err = identity.Load(a.paths.IdentityKeyFile(), rand.Reader); err != nil {
		return nil, err
	}
	a.nomad = nomadrun.New(nomadrun.Options{
		Node:     nomadrun.Node{ID: a.id, Name: a.name, Bind: a.bind, Advertise: a.advertise},
		Config:   cfg,
		Paths:    a.paths,
		Features: feat,
		Encrypt:  a.keys.NomadEncrypt,
		Logger:   a.log,
	})
	if a.plan, err = planfile.Load(a.paths.PlanFile(), a.cred.ClusterIDString(), a.id); err != nil {
		return nil, err
	}
	if a.plan != nil {
		if err := a.endorsed.verifyPlan(*a.plan); err != nil {
			return nil, fmt.Errorf("agent: %s is not the cluster's decision (%v): remove it, and the node adopts the committed plan from its peers when it rejoins",
				a.paths.PlanFile(), strings.TrimPrefix(err.Error(), "plan: "))
		}
	}
	if a.vote, err = planfile.LoadVote(a.paths.VoteFile()); err != nil {
		return nil, err
	}
	if err := a.loadClusterState(); err != nil {
		return nil, err
	}
	if a.ring, err = gossipkeys.Load(a.paths.GossipKeysFile(), a.keys.Gossip); err != nil {
		return nil, err
	}
	if cfg.CA.Set() {
		if _, err := a.operatorCA(); err != nil {
			return nil, err
		}
	}
	built := status.PhaseJoining
	if a.plan != nil {
		a.planHash = a.plan.Hash()
		built = status.PhaseCommitted
	}
	a.move(built, "")
	a.shared.Store(a.plan)
	a.proto = a.newProtocol()
	return a, nil
}

// Name returns the node's name.
func (a *Agent) Name() string { return a.name }

// ID returns the node's ID.
func (a *Agent) ID() string { return a.id }

// GossipAddr returns the address and port peers reach this node's gossip at.
// It is valid after Start.
func (a *Agent) GossipAddr() string {
	return net.JoinHostPort(a.advertise, strconv.Itoa(a.node.Port()))
}

// Start joins the gossip pool, persists the node's identity and opens the
// control socket. When the first join attempt is refused by every seed that
// answered (another cluster's token, a name already taken), Start fails and
// nothing has been written under the root.
func (a *Agent) Start() error {
	meta := gossip.Meta{
		ID: a.id, Role: a.cfg.Role, Pool: a.cfg.Pool, Zone: a.cfg.Zone,
		Datacenter: a.cfg.Datacenter, Region: a.cfg.Region, Expect: a.cfg.Expect,
		CPUCores: a.facts.CPUCores, MemoryMB: a.facts.MemoryMB,
		Identity:  identity.Public(a.idKey),
		KeyNewest: a.ring.Newest(), KeyOldest: a.ring.Oldest(), KeyInUse: a.ring.InUse,
	}
	if a.cred.IsServer() {
		meta.Endorsement = a.serverToken.Endorse(uuid.MustParse(a.id), meta.Identity)
		a.endorsement = meta.Endorsement
	}
	a.meta = meta
	extra := slices.DeleteFunc(a.ring.All(), func(k []byte) bool { return bytes.Equal(k, a.ring.Primary()) })
	node, err := gossip.Start(gossip.Config{
		Name:          a.name,
		BindAddr:      a.bind,
		BindPort:      a.cfg.Port,
		AdvertiseAddr: a.advertise,
		AdvertisePort: a.cfg.Port,
		Key:           a.ring.Primary(),
		ExtraKeys:     extra,
		Label:         a.cred.Client.GossipLabel(),
		Meta:          meta,
		Identity:      a.idKey,
		Handler:       gossipHandler{a},
		Logger:        a.log.With("component", "gossip"),
		Tuning:        a.tuning,
		// A node restarted on a new address takes its name back after this
		// long, instead of memberlist's default of never.
		DeadNodeReclaimTime: a.tm.DeadNodeReclaim,
	})
	if err != nil {
		return fmt.Errorf("agent: starting gossip: %w", err)
	}
	if a.cstate.Load() != nil {
		node.SetRefused(a.refuses) // else set once a cluster state arrives
	}
	a.mu.Lock()
	a.node, a.tr = node, node
	a.mu.Unlock()
	a.log.Info("gossip started", "node", a.name, "id", a.id, "address", a.GossipAddr(), "cluster", a.cred.ClusterIDString(), "token", a.cred.Kind())
	a.warnCredential()
	if a.nomadNote != "" {
		a.log.Info(a.nomadNote)
	} else {
		a.log.Info("nomad detected", "path", a.cfg.Nomad, "version", a.nomad.Features().Version.String())
	}

	if err := a.startMDNS(); err != nil {
		node.Shutdown()
		return err
	}
	seeds, lookupErr := a.seedList()
	switch {
	case len(seeds) == 0 && lookupErr == nil:
		a.setJoined() // no seed but this node itself: it is the first
	case len(seeds) == 0:
		a.setJoinReason(fmt.Sprintf("cannot look the seeds up yet (%v); retrying", lookupErr))
	default:
		n, err := node.Join(seeds)
		switch {
		case n > 0:
			if err != nil {
				a.log.Warn("some seeds could not be joined", "error", err)
			}
			a.setJoined()
		case refused(err, !a.isFresh()) && a.plan == nil:
			// The token may be right and the cluster's gossip key rotated
			// since: a server among the seeds hands it over.
			n, ferr := a.joinWithServersKeys(seeds)
			if n > 0 {
				a.setJoined()
				break
			}
			a.stopMDNS()
			node.Shutdown()
			return fmt.Errorf("agent: cannot join the cluster: %w (nor did a seed hand over the cluster's gossip key: %v)", err, ferr)
		case refused(err, true):
			a.gossipRefused.Store(true)
			// This node holds the cluster's committed plan, so its token
			// is right: the seeds' address now answers for something
			// else. Keep trying them; the operator sees why in status.
			a.setJoinReason(fmt.Sprintf("seeds refused this node: %v; retrying", err))
			a.log.Error("seeds refused this node; retrying", "error", err)
		default:
			a.setJoinReason(fmt.Sprintf("cannot reach any seed yet (%v); retrying", err))
			a.log.Warn("cannot reach any seed yet; retrying", "error", err)
		}
	}

	if err := a.persistIdentity(); err != nil {
		a.stopMDNS()
		node.Shutdown()
		return err
	}
	srv, _, err := status.Listen(a.paths.Socket(), a.Status, a.commands()...)
	if err != nil {
		a.stopMDNS()
		node.Shutdown()
		a.unlockState()
		return err
	}
	a.srv = srv
	return nil
}

// warnCredential tells, in the log and in status, what a client token
// does not allow: this node is never a server, whatever its role, and an
// expired token admits it only if the CA holder admitted it before.
func (a *Agent) warnCredential() {
	if a.cred.IsServer() {
		return
	}
	if a.cfg.Role == string(plan.RoleServer) {
		a.warn("token-role", `role = "server" needs the server token: this node joined with a client token, so it runs as a Nomad client only`)
	}
	if exp := a.cred.Client.ExpiresAt(); !exp.IsZero() && !a.now().Before(exp) {
		a.warn("token-expired", fmt.Sprintf("the client token expired at %s: the CA holder admits no new node with it; make a new one with `nomad-bootstrapd token client`",
			exp.Format(time.RFC3339)))
	}
}

func (a *Agent) isFresh() bool {
	a.idMu.Lock()
	defer a.idMu.Unlock()
	return a.idFresh
}

// persistIdentity creates the state directory and writes the identity key
// and the node ID, once.
// It runs after the first successful join, or earlier when a peer hands this
// node the committed plan during that join.
func (a *Agent) persistIdentity() error {
	a.idMu.Lock()
	defer a.idMu.Unlock()
	if err := os.MkdirAll(a.paths.StateDir(), 0o700); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if err := a.lockStateLocked(); err != nil {
		return err
	}
	if a.keyFresh {
		if err := identity.Save(a.paths.IdentityKeyFile(), a.idKey); err != nil {
			return err
		}
		a.keyFresh = false
	}
	if a.idFresh {
		if err := fingerprint.SaveNodeID(a.paths.NodeIDFile(), a.id); err != nil {
			return err
		}
		a.idFresh = false
	}
	return nil
}

// unlockState releases the state directory's lock.
func (a *Agent) unlockState() {
	a.idMu.Lock()
	defer a.idMu.Unlock()
	if a.lock != nil {
		a.lock.Close()
		a.lock = nil
	}
}

// lockStateLocked takes the lock of the state directory, held until the
// agent stops, before the agent writes anything there: two agents that
// share a -root would overwrite each other's plan and votes. a.idMu is held.
func (a *Agent) lockStateLocked() error {
	if a.lock != nil {
		return nil
	}
	path := a.paths.LockFile()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		// A read-only state directory is no reason to stop: the agent
		// keeps running on the plan it holds. The lock file of an earlier
		// run is still there to lock, read-only; without one, nothing
		// here can be written, by this agent or another.
		ro, rerr := os.Open(path)
		switch {
		case rerr == nil:
			f = ro
		case errors.Is(err, syscall.EROFS):
			a.log.Warn("the state directory is read-only; running without its lock", "path", path)
			return nil
		default:
			return fmt.Errorf("agent: %w", err)
		}
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("agent: another nomad-bootstrapd agent runs with the state directory %s (it holds %s): stop it, or give this agent its own -root", a.paths.StateDir(), path)
		}
		return fmt.Errorf("agent: locking %s: %w", path, err)
	}
	a.lock = f
	return nil
}

// refused reports whether err holds only refusals (no unreachable seeds):
// retrying cannot help, the operator must fix the token or the name. A
// restarted node (known) may see its own old entry as a name conflict until
// the cluster declares it dead, so for it name conflicts are worth retrying.
func refused(err error, known bool) bool {
	if err == nil {
		return false
	}
	errs := gossip.JoinErrors(err)
	for _, e := range errs {
		var je *gossip.JoinError
		if !errors.As(e, &je) || je.Kind == gossip.JoinUnreachable || (known && je.Kind == gossip.JoinNameConflict) {
			return false
		}
	}
	return len(errs) > 0
}

// seeds returns the configured seeds other than this node itself, as
// host:port: a seed given without a port is on this node's gossip port,
// which the nodes of a cluster share; a DNS SRV seed is looked up now, and
// gives the addresses of its records. A lookup that fails is logged when
// the failures change, naming the seed.
func (a *Agent) seeds() []string {
	seeds, _ := a.seedList()
	return seeds
}

// seedList is seeds, with the lookups that failed, nil when none did.
func (a *Agent) seedList() ([]string, error) {
	self := map[string]bool{
		net.JoinHostPort(a.advertise, strconv.Itoa(a.node.Port())): true,
		net.JoinHostPort(a.bind, strconv.Itoa(a.node.Port())):      true,
	}
	r := a.resolver
	if r.Timeout == 0 {
		r.Timeout = a.tm.SeedLookup
	}
	addrs, errs := r.Resolve(context.Background(), a.cfg.Join, a.cfg.Port)
	var out []string
	for _, hp := range addrs {
		if !self[hp] && !slices.Contains(out, hp) {
			out = append(out, hp)
		}
	}
	var msgs []string
	for _, err := range errs {
		msgs = append(msgs, err.Error())
	}
	text := strings.Join(msgs, "; ")
	a.mu.Lock()
	changed := text != a.seedErrs
	a.seedErrs = text
	a.mu.Unlock()
	switch {
	case !changed:
	case text != "":
		a.log.Warn("cannot look a seed up; retrying at the next join", "error", text)
	default:
		a.log.Info("the seeds resolve again")
	}
	if text == "" {
		return out, nil
	}
	return out, errors.New(text)
}

// Run drives the agent until ctx ends, then shuts it down.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	a.stopRun = cancel
	defer func() {
		cancel(nil)
		a.bg.Wait()
		a.shutdown()
	}()
	a.mu.Lock()
	joined := a.joined
	a.mu.Unlock()
	if len(a.cfg.Join) > 0 {
		a.bg.Go(func() {
			if !joined {
				a.joinLoop(ctx)
			}
			if ctx.Err() == nil {
				a.newRejoiner().run(ctx)
			}
		})
	}
	a.bg.Go(func() { a.senders(ctx) })
	a.bg.Go(func() { a.keyLoop(ctx) })
	a.bg.Go(func() { a.snapshotLoop(ctx) })
	a.bg.Go(func() { a.upgradeLoop(ctx) })
	a.proto.MembersChanged(a.now(), a.tr.Members())
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := context.Cause(ctx); errors.Is(err, ErrEvicted) {
				a.leaveEvicted()
				return err
			}
			return nil
		case <-t.C:
			a.proto.Tick(a.now())
		case <-a.ev.kick:
			for _, fn := range a.ev.take() {
				fn()
			}
			// Events may have made a deadline due.
			a.proto.Tick(a.now())
		}
		a.publish(ctx)
		a.replayEscrow()
		t.Reset(a.proto.NextTick(a.now()))
	}
}

func (a *Agent) shutdown() {
	defer a.unlockState()
	a.nomad.Close()
	if a.srv != nil {
		a.srv.Close()
		os.Remove(a.paths.Socket())
	}
	a.stopMDNS()
	if a.node != nil {
		a.node.Shutdown()
	}
	a.log.Info("agent stopped")
}

// joinLoop retries the seeds with backoff until one answers or another node
// joins this one. From then on the rejoiner (rejoin.go) keeps re-joining
// the seeds that are not alive members.
func (a *Agent) joinLoop(ctx context.Context) {
	// Start tried once already. Retry soon: machines started together
	// find their seed as soon as it listens.
	backoff := a.tm.JoinBackoffMin
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if a.isJoined() {
			return
		}
		seeds, lookupErr := a.seedList()
		if len(seeds) == 0 && lookupErr != nil {
			a.setJoinReason(fmt.Sprintf("cannot look the seeds up yet (%v); retrying", lookupErr))
			backoff = min(2*backoff, a.tm.JoinBackoffMax)
			continue
		}
		n, err := a.node.Join(seeds)
		if n > 0 {
			a.log.Info("joined the cluster")
			a.setJoined()
			return
		}
		// Another node may have joined this one while the seeds did not
		// answer: the election's reason is then the one to show.
		if refused(err, false) {
			a.gossipRefused.Store(true)
			a.log.Error("seeds refused this node", "error", err)
			a.setJoinReason(fmt.Sprintf("seeds refused this node: %v", err))
		} else {
			a.setJoinReason(fmt.Sprintf("cannot reach any seed yet (%v); retrying", err))
		}
		backoff = min(2*backoff, a.tm.JoinBackoffMax)
	}
}

func (a *Agent) isJoined() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.joined
}

func (a *Agent) setJoined() {
	a.mu.Lock()
	a.joined = true
	to := a.st.Phase()
	if to == status.PhaseJoining {
		to = status.PhaseElecting
	}
	a.moveLocked(to, "")
	a.mu.Unlock()
	a.ev.post(a.proto.SetJoined)
}

// setJoinReason shows why joining fails, unless the node has joined.
func (a *Agent) setJoinReason(r string) {
	a.mu.Lock()
	if !a.joined {
		a.moveLocked(a.st.Phase(), r)
	}
	a.mu.Unlock()
}

// warn records a warning shown by status, logging it once per key.
func (a *Agent) warn(key, msg string) {
	a.mu.Lock()
	old, seen := a.warnings[key]
	a.warnings[key] = msg
	a.mu.Unlock()
	if !seen || old != msg {
		a.log.Warn(msg)
	}
}

// clearWarning drops the warning of key, once its cause is gone.
func (a *Agent) clearWarning(key string) {
	a.mu.Lock()
	delete(a.warnings, key)
	a.mu.Unlock()
}

// nomadWarnings shows or clears, in order, the warnings of what the local
// Nomad agent reported.
func (a *Agent) nomadWarnings(ws []nomadrun.Warning) {
	for _, w := range ws {
		if w.Msg == "" {
			a.clearWarning(w.Key)
		} else {
			a.warn(w.Key, w.Msg)
		}
	}
}

// Status returns the node's status as shown by `nomad-bootstrapd status`.
func (a *Agent) Status() status.Status {
	var members []gossip.Member
	if a.tr != nil {
		members = a.tr.Members()
	}
	stored, _ := snapshot.List(a.paths.SnapshotsDir())
	a.mu.Lock()
	defer a.mu.Unlock()
	s := status.Status{
		Node: status.NodeStatus{
			Name: a.name, ID: a.id, Address: a.advertise, Role: a.cfg.Role,
			Pool: a.cfg.Pool, Zone: a.cfg.Zone, Datacenter: a.cfg.Datacenter, Region: a.cfg.Region,
		},
		Members: []status.MemberStatus{},
		Agent:   status.AgentStatus{Running: true, Version: a.version, PID: os.Getpid(), Metrics: a.cfg.MetricsAddr},
	}
	s.Phase, s.Reason = a.st.View()
	if a.plan != nil {
		s.Plan = status.PlanOf(a.plan)
		s.Node.Role = status.RoleIn(a.plan, a.id)
		if a.st.Phase() >= status.PhaseCertified {
			if s.Certs = status.CertsOf(a.paths, a.certRoles(*a.plan)); s.Certs != nil {
				if w := certWarning(*s.Certs, a.now()); w != "" {
					s.Warnings = append(s.Warnings, w)
				}
			}
		}
		if w := escrowWarning(*a.plan, a.id, a.st.Phase(), a.caStore().HasEscrow); w != "" {
			s.Warnings = append(s.Warnings, w)
		}
		for _, srv := range a.plan.Servers {
			since, down := a.downSince[srv.Name]
			switch {
			case !down || srv.ID == a.id:
			case since.IsZero():
				s.Warnings = append(s.Warnings, fmt.Sprintf("Nomad server %s (%s) of the plan was evicted; a successor plan replaces it", srv.Name, srv.Address))
			default:
				s.Warnings = append(s.Warnings, fmt.Sprintf("Nomad server %s (%s) of the plan has not been alive in gossip for %s",
					srv.Name, srv.Address, a.now().Sub(since).Round(time.Second)))
			}
		}
	}
	if a.nomadSt != nil {
		n := *a.nomadSt
		s.Nomad = &n
	}
	if a.aclState != "" {
		s.ACL = &status.ACLStatus{State: a.aclState, TokensDir: a.paths.ACLDir()}
		s.Snapshots = a.snapshotStatusLocked(stored)
	}
	if cs := a.clusterState(); cs != nil {
		s.Cluster = &status.ClusterStatus{Version: cs.Version, Evicted: []status.EvictedStatus{},
			ClientToken:    status.ClientTokenStatus{Generation: cs.ClientToken.Generation, RotatedAt: cs.ClientToken.RotatedAt, PreviousUntil: cs.ClientToken.PreviousUntil},
			NomadGossipKey: a.nomadKeyStatus(*cs), AgentGossipKey: a.agentKeyStatus(*cs, a.plan != nil && a.plan.CAHolder == a.id),
			CA: a.caStatusLocked(cs.CA)}
		if s.Cluster.AgentGossipKey.Generation == 0 {
			// The token's key rotates with Nomad's first scheduled rotation.
			s.Cluster.AgentGossipKey.NextRotation = s.Cluster.NomadGossipKey.NextRotation
		}
		for _, e := range cs.Evicted {
			s.Cluster.Evicted = append(s.Cluster.Evicted, status.EvictedStatus{Name: e.Name, ID: e.ID, At: e.At})
		}
		if u := cs.NomadUpgrade; u.Version != "" {
			s.Cluster.NomadUpgrade = &status.UpgradeStatus{Version: u.Version, Stage: u.Stage, Step: u.Step, Upgraded: u.Upgraded,
				Failure: u.Failure, StartedAt: u.StartedAt, FinishedAt: u.FinishedAt, Turn: memberNames(members, u.Turn)}
		}
	}
	for _, m := range members {
		if m.State == gossip.StateAlive && m.MetaErr != nil {
			s.Warnings = append(s.Warnings, fmt.Sprintf("member %s (%s) announces metadata this agent cannot read (%v): it may run another release of nomad-bootstrapd; it takes no part in the cluster until every agent runs one release",
				m.Name, m.Address, strings.TrimPrefix(m.MetaErr.Error(), "gossip: meta: ")))
		}
		ms := status.MemberStatus{Name: m.Name, ID: m.Meta.ID, Address: m.Address, Status: string(m.State),
			Role: m.Meta.Role, Pool: m.Meta.Pool, Zone: m.Meta.Zone}
		if a.plan != nil && m.MetaErr == nil {
			ms.Role = status.RoleIn(a.plan, m.Meta.ID)
		}
		s.Members = append(s.Members, ms)
	}
	for _, w := range a.warnings {
		s.Warnings = append(s.Warnings, w)
	}
	s.Warnings = append(s.Warnings, a.newerWarningsLocked()...)
	if a.node != nil {
		if m, ok := a.node.LastStale(); ok {
			if w := clockWarning(m, a.now()); w != "" {
				s.Warnings = append(s.Warnings, w)
			}
		}
	}
	sort.Strings(s.Warnings)
	return s
}

// escrowWarning says, on a running server of p other than its CA holder,
// that it holds no escrow yet, and so could not take over signing; has
// tells whether it does.
func escrowWarning(p plan.Plan, self string, phase status.Phase, has func() bool) string {
	if phase != status.PhaseRunning || !p.IsServer(self) || p.CAHolder == self || has() {
		return ""
	}
	return fmt.Sprintf("this server holds no escrow of the CA yet: if %s, the CA holder, were lost it could not take over signing certificates; it keeps asking %s for it",
		p.CAHolderName(), p.CAHolderName())
}

// clockWarning says, for ReplayWindow after gossip dropped m for its send
// time, whose clock differs from this node's and by how much; "" after.
func clockWarning(m gossip.StaleMessage, now time.Time) string {
	if now.Sub(m.At) > gossip.ReplayWindow {
		return ""
	}
	off, way := m.Sent.Sub(m.At), "ahead of"
	if off < 0 {
		off, way = -off, "behind"
	}
	return fmt.Sprintf("messages from %s carry a send time %s %s this node's clock, more than gossip accepts (%s), and are dropped: keep the machines' clocks in sync (NTP)",
		m.From, off.Round(time.Second), way, gossip.ReplayWindow)
}

// certWarning says that this node's certificate, renewed at half its
// lifetime, has not been renewed by certs.WarnAt: a third of its lifetime
// before it expires, four hours after renewal was due for the 24-hour
// default. Shorter failures, such as a failover of the CA, stay quiet.
func certWarning(c status.CertStatus, now time.Time) string {
	at := c.NotAfter.UTC().Format(time.RFC3339)
	switch left := c.NotAfter.Sub(now); {
	case left <= 0:
		return fmt.Sprintf("this node's certificate expired at %s; renewal has not succeeded: see the agent's log", at)
	case now.Before(c.WarnAt()):
		return ""
	default:
		return fmt.Sprintf("this node's certificate expires in %s (%s); renewal has not succeeded: see the agent's log", timeLeft(left), at)
	}
}

// timeLeft shows a positive time left in days, in hours under two days, or
// in minutes under two hours.
func timeLeft(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	default:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	}
}

// CAStats reports how many certificate requests this node's CA endpoint
// signed and refused since the agent started; zero on nodes that hold no CA.
func (a *Agent) CAStats() (signed, refused uint64) {
	a.mu.Lock()
	srv := a.caSrv
	a.mu.Unlock()
	if srv == nil {
		return 0, 0
	}
	return srv.Stats()
}

// gossipHandler turns gossip's callbacks into events for the loop. It runs
// on memberlist's goroutines and changes no state itself.
type gossipHandler struct{ a *Agent }

// HandleMessage decodes a message and queues it.
func (h gossipHandler) HandleMessage(from string, payload []byte) {
	a := h.a
	m, err := agree.DecodeMessage(payload)
	if err != nil {
		if !a.noteNewer(from, err) {
			a.log.Warn("dropping malformed message", "from", from, "error", err)
		}
		return
	}
	if !a.ev.post(func() { a.onMessage(from, m) }) {
		a.log.Warn("dropping a message: too many wait for the agent", "from", from, "type", m.Type)
	}
}

// LocalState is the committed plan, as the loop last published it, and the
// signed cluster state this node holds.
func (h gossipHandler) LocalState(bool) []byte {
	s := agree.PushState{Plan: h.a.shared.Load()}
	if c := h.a.cstate.Load(); c != nil {
		s.Cluster = c.signed
	}
	return agree.EncodePush(s)
}

// MergeRemoteState decodes a peer's state and queues its plan and cluster
// state.
func (h gossipHandler) MergeRemoteState(buf []byte, _ bool) {
	a := h.a
	if len(buf) == 0 {
		return
	}
	s, err := agree.DecodePush(buf)
	if err != nil {
		if !a.noteNewer("a member's push/pull sync", err) {
			a.log.Warn("dropping malformed push/pull state", "error", err)
		}
		return
	}
	if s.Plan != nil {
		a.ev.post(func() { a.proto.MergeRemote(a.now(), s.Plan) })
	}
	if len(s.Cluster) > 0 {
		a.ev.post(func() { a.adoptClusterState("a push/pull sync", s.Cluster) })
	}
}

// MembersChanged queues a look at the members. memberlist calls it with its
// own locks held, so it must not call back into gossip.
func (h gossipHandler) MembersChanged() {
	a := h.a
	a.ev.membersChanged(func() { a.proto.MembersChanged(a.now(), a.tr.Members()) })
}

// newerSeen is what a member of a newer release sent that this agent
// cannot read.
type newerSeen struct {
	what string // "a message of protocol 2", "a cluster state of format 2"
	at   time.Time
}

// newerShownFor is how long status shows a member that sent what this
// agent cannot read, since it last did.
const newerShownFor = 10 * time.Minute

// noteNewer records that from sent err, when err says it is of a newer
// protocol or state format than this release's, and reports whether it
// was: it is logged the first time, and status shows it.
func (a *Agent) noteNewer(from string, err error) bool {
	var np *agree.NewerProtocolError
	var nf *clusterstate.NewerFormatError
	var what string
	switch {
	case errors.As(err, &np):
		what = fmt.Sprintf("a %s of protocol %d", np.What, np.Version)
	case errors.As(err, &nf):
		what = fmt.Sprintf("a cluster state of format %d", nf.Format)
	default:
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.newer == nil {
		a.newer = map[string]newerSeen{}
	}
	prev, seen := a.newer[from]
	if !seen || prev.what != what {
		if len(a.newer) >= 256 {
			return true // a flood: the first ones are shown
		}
		a.log.Warn("refusing what a newer release of nomad-bootstrapd sent: upgrade this agent", "from", from, "what", what,
			"protocol", agree.Protocol, "format", clusterstate.Format)
	}
	a.newer[from] = newerSeen{what: what, at: a.now()}
	return true
}

// newerWarningsLocked are status's warnings of members that recently sent
// what this agent cannot read. a.mu is held.
func (a *Agent) newerWarningsLocked() []string {
	var ws []string
	for from, n := range a.newer {
		if a.now().Sub(n.at) > newerShownFor {
			delete(a.newer, from)
			continue
		}
		ws = append(ws, fmt.Sprintf("%s sent %s, which this agent (protocol %d, state format %d) cannot read: it runs a newer nomad-bootstrapd; what it sends is refused until this agent is upgraded too",
			from, n.what, agree.Protocol, clusterstate.Format))
	}
	return ws
}
