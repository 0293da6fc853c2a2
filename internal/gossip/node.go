package gossip

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// KeySize is the length of Config.Key: memberlist uses it as an AES-256 key.
const KeySize = 32

// ErrShutdown is returned by a Node's methods after Leave or Shutdown.
var ErrShutdown = errors.New("gossip: the node is shut down")

// updateMetaTimeout bounds how long UpdateMeta waits for its broadcast.
const updateMetaTimeout = 5 * time.Second

// Overheads memberlist takes from Config.UDPBufferSize before the user
// messages of a gossip packet (see memberlist's gossip and getBroadcasts):
// compound header 2, encryption at most 45, per message 2 + 1.
const udpOverhead = 2 + 45 + 2 + 1

// Node is this node's membership in the gossip pool. Its methods are safe
// for concurrent use.
type Node struct {
	name        string
	handler     Handler
	log         *slog.Logger
	ml          atomic.Pointer[memberlist.Memberlist]
	port        int
	queue       *memberlist.TransmitLimitedQueue
	maxEnvelope int // largest broadcast envelope
	members     *memberTable
	seen        seenSet
	// identity signs this node's messages; when set, messages not signed
	// by their sender's announced identity key are dropped.
	identity       ed25519.PrivateKey
	refusedSenders onceSet    // senders whose dropped messages were logged
	recent         recentSigs // signed messages accepted lately (replay.go)
	staleSenders   onceSet    // senders whose stale messages were logged
	lastStale      atomic.Pointer[StaleMessage]
	refused        atomic.Pointer[func(Meta) bool] // SetRefused
	waiting        pending                         // signed messages whose sender is not known yet (pending.go)

	metaMu  sync.Mutex
	metaEnc []byte

	keyring *memberlist.Keyring // SetKeys
	keyMu   sync.Mutex          // one SetKeys at a time

	changed chan struct{} // wakes the MembersChanged goroutine
	done    chan struct{} // closed by Shutdown

	leaving atomic.Bool // Leave was called
	closed  atomic.Bool // Shutdown was called
	lifeMu  sync.Mutex  // serializes Leave and Shutdown

	joinMu     sync.Mutex // one Join at a time
	conflictMu sync.Mutex
	recording  bool             // a Join is under way
	conflicts  []*conflictError // name conflicts NotifyMerge found during it
}

// Start creates the memberlist and starts listening. It does not join.
func Start(cfg Config) (*Node, error) {
	if cfg.Identity != nil && !bytes.Equal(cfg.Identity.Public().(ed25519.PublicKey), cfg.Meta.Identity) {
		return nil, errors.New("gossip: Meta.Identity is not the public half of Identity")
	}
	if cfg.Name == "" {
		return nil, errors.New("gossip: the node name is empty")
	}
	if err := CheckName(cfg.Name); err != nil {
		return nil, fmt.Errorf("gossip: node name %q: %w", cfg.Name, err)
	}
	if len(cfg.Key) != KeySize {
		return nil, fmt.Errorf("gossip: the gossip key has %d bytes, want %d", len(cfg.Key), KeySize)
	}
	keys := [][]byte{bytes.Clone(cfg.Key)}
	for _, k := range cfg.ExtraKeys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("gossip: a gossip key has %d bytes, want %d", len(k), KeySize)
		}
		keys = append(keys, bytes.Clone(k))
	}
	keyring, err := memberlist.NewKeyring(keys, keys[0])
	if err != nil {
		return nil, fmt.Errorf("gossip: %w", err)
	}
	if len(cfg.Label) > memberlist.LabelMaxSize {
		return nil, fmt.Errorf("gossip: the label is longer than %d bytes", memberlist.LabelMaxSize)
	}
	if cfg.Handler == nil {
		return nil, errors.New("gossip: no Handler")
	}
	metaEnc, err := cfg.Meta.Encode()
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	n := &Node{
		name:     cfg.Name,
		handler:  cfg.Handler,
		log:      logger,
		members:  newMemberTable(),
		identity: cfg.Identity,
		metaEnc:  metaEnc,
		keyring:  keyring,
		changed:  make(chan struct{}, 1),
		done:     make(chan struct{}),
	}

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	mc.BindAddr = cfg.BindAddr
	if mc.BindAddr == "" {
		mc.BindAddr = "0.0.0.0"
	}
	mc.BindPort = cfg.BindPort
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort
	if mc.AdvertisePort == 0 {
		// With BindPort 0 memberlist sets both to the port it picked.
		mc.AdvertisePort = cfg.BindPort
	}
	mc.SecretKey = bytes.Clone(cfg.Key)
	mc.Keyring = keyring
	mc.Label = cfg.Label
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	// TCPTimeout stays at the LAN default (10 s). A join to a node of
	// another cluster does not wait for it: with another key the seed
	// answers with an error we cannot decrypt, with another label it closes
	// the stream; both fail in a few milliseconds on a LAN. Only a seed that
	// accepts the connection and never answers (hung, or not a gossip
	// agent) costs the full timeout, which also bounds push/pull syncs and
	// SendTo, and those need room on a large or busy cluster.
	mc.Logger = NewStdLogger(logger)
	if cfg.DeadNodeReclaimTime > 0 {
		mc.DeadNodeReclaimTime = cfg.DeadNodeReclaimTime
	}
	mc.Delegate = delegate{n}
	mc.Events = events{n}
	mc.Conflict = conflicts{n}
	mc.Merge = merges{n}
	mc.Alive = alive{n}
	if cfg.Tuning != nil {
		cfg.Tuning(mc)
	}

	labelOverhead := 0
	if mc.Label != "" {
		labelOverhead = 2 + len(mc.Label)
	}
	n.maxEnvelope = min(maxBroadcastEnvelope, mc.UDPBufferSize-udpOverhead-labelOverhead)
	if n.maxEnvelope < envelopeOverhead(len(n.name))+64 {
		return nil, fmt.Errorf("gossip: UDPBufferSize %d leaves no room for broadcasts", mc.UDPBufferSize)
	}
	n.queue = &memberlist.TransmitLimitedQueue{
		NumNodes: func() int {
			if ml := n.ml.Load(); ml != nil {
				return ml.NumMembers()
			}
			return 1
		},
		RetransmitMult: broadcastRetransmitFactor * mc.RetransmitMult,
	}

	if mc.Transport == nil {
		t, err := newCappedTransport(mc.BindAddr, mc.BindPort, n.IsMemberAddr, logger)
		if err != nil {
			return nil, err
		}
		mc.Transport = t
		if mc.BindPort == 0 {
			mc.BindPort = t.GetAutoBindPort()
			if mc.AdvertisePort == 0 {
				mc.AdvertisePort = mc.BindPort
			}
		}
	}
	go n.notifyLoop()
	ml, err := memberlist.Create(mc)
	if err != nil {
		close(n.done)
		return nil, fmt.Errorf("gossip: start: %w", err)
	}
	n.ml.Store(ml)
	n.port = int(ml.LocalNode().Port)
	return n, nil
}

// notifyLoop calls Handler.MembersChanged outside memberlist's locks.
func (n *Node) notifyLoop() {
	for {
		select {
		case <-n.done:
			return
		case <-n.changed:
			select {
			case <-n.done:
				return
			default:
			}
			n.retryWaiting()
			n.handler.MembersChanged()
		}
	}
}

// membersChanged schedules a call of Handler.MembersChanged.
func (n *Node) membersChanged() {
	select {
	case n.changed <- struct{}{}:
	default: // one is pending already
	}
}

// receive handles a user message from memberlist.
func (n *Node) receive(b []byte) {
	e, err := decodeEnvelope(b)
	if err != nil {
		n.log.Warn("gossip: dropped a malformed message", "size", len(b), "err", err)
		return
	}
	if n.identity != nil && e.sig != nil {
		if _, known := n.members.get(e.from); !known && n.waiting.park(e.from, b, time.Now()) {
			// Looked at again when the members change, and after
			// pendingTTL in any case.
			time.AfterFunc(pendingTTL+10*time.Millisecond, n.retryWaiting)
			return
		}
	}
	if n.identity != nil && (!n.signedBySender(e) || !n.fresh(e)) {
		return
	}
	switch e.kind {
	case kindDirect:
		n.handler.HandleMessage(e.from, e.payload)
	case kindBroadcast, kindLeave:
		if e.from == n.name || !n.seen.add(e.id) {
			return
		}
		// memberlist does not relay user broadcasts: pass it on so it
		// reaches every node, not only the few its sender gossiped to.
		n.enqueue(bytes.Clone(b))
		if e.kind == kindBroadcast {
			n.handler.HandleMessage(e.from, e.payload)
		} else if n.members.markLeaving(e.from) {
			n.membersChanged()
		}
	}
}

// retryWaiting handles the waiting messages whose sender is now a known
// member, and drops, with a word once per sender, those that waited
// pendingTTL in vain.
func (n *Node) retryWaiting() {
	if n.closed.Load() || !n.waiting.waiting() {
		return
	}
	known := func(name string) bool { _, ok := n.members.get(name); return ok }
	expired := func(m pendingMsg) {
		if n.refusedSenders.once(m.from) {
			n.log.Warn("gossip: dropped a message", "from", m.from, "reason", "its sender is not a member this node knows")
		}
	}
	for _, b := range n.waiting.take(time.Now(), known, expired) {
		n.receive(b)
	}
}

// IsMemberAddr reports whether addr is the address of an alive member
// other than this node.
func (n *Node) IsMemberAddr(addr netip.Addr) bool {
	for _, m := range n.members.list() {
		if m.State != StateAlive || m.Name == n.name {
			continue
		}
		if ip, err := netip.ParseAddr(m.Address); err == nil && ip.Unmap() == addr {
			return true
		}
	}
	return false
}

// onceSet remembers keys, up to maxOnce of them (then it starts over), to
// do something once per key.
type onceSet struct {
	mu   sync.Mutex
	seen map[string]bool
}

const maxOnce = 1024

// once reports whether key is new.
func (s *onceSet) once(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil || len(s.seen) >= maxOnce {
		s.seen = map[string]bool{}
	}
	if s.seen[key] {
		return false
	}
	s.seen[key] = true
	return true
}

// signedBySender reports whether e is signed by the identity key that its
// sender's meta announces; it logs, once per sender, why a message that is
// not is dropped.
func (n *Node) signedBySender(e envelope) bool {
	m, known := n.members.get(e.from)
	var why string
	switch {
	case e.sig == nil:
		why = "it is not signed"
	case !known:
		why = "its sender is not a member this node knows"
	case m.State == StateEvicted:
		why = "the cluster evicted its sender"
	case len(m.Meta.Identity) != ed25519.PublicKeySize:
		why = "its sender announces no identity key"
	case !ed25519.Verify(m.Meta.Identity, e.signed, e.sig):
		why = "its signature is not by its sender's identity key"
	default:
		return true
	}
	if n.refusedSenders.once(e.from) {
		n.log.Warn("gossip: dropped a message", "from", e.from, "reason", why)
	}
	return false
}

// fresh reports whether e, whose signature is verified, is meant for this
// node (a direct message names it), sent within ReplayWindow and not
// received before; it logs, once per sender, why a message that is not is
// dropped. Relayed copies of a broadcast are dropped without a word.
func (n *Node) fresh(e envelope) bool {
	if e.kind == kindDirect && e.to != n.name {
		if n.refusedSenders.once(e.from) {
			n.log.Warn("gossip: dropped a message", "from", e.from, "reason", "it is addressed to another node: a copy sent on", "to", e.to)
		}
		return false
	}
	now := time.Now()
	switch n.recent.check(e, now) {
	case msgFresh:
		return true
	case msgStale:
		n.lastStale.Store(&StaleMessage{From: e.from, Sent: time.UnixMilli(e.sent), At: now})
		if n.staleSenders.once(e.from) {
			n.log.Warn("gossip: dropped a message sent outside the replay window: a replayed copy, or the sender's clock is off; keep the machines' clocks in sync (NTP)",
				"from", e.from, "sent", time.UnixMilli(e.sent).UTC().Format(time.RFC3339), "window", ReplayWindow)
		}
	default:
		if e.kind == kindDirect && n.refusedSenders.once(e.from) {
			n.log.Warn("gossip: dropped a message", "from", e.from, "reason", "it was received before: a replayed copy")
		}
	}
	return false
}

// StaleMessage describes a signed message dropped because its send time
// was outside ReplayWindow of this node's clock.
type StaleMessage struct {
	From string    // its sender
	Sent time.Time // the send time it carried
	At   time.Time // when this node received it
}

// LastStale returns the last message dropped for its send time; false when
// there was none. A sender's clock, or this node's, is off.
func (n *Node) LastStale() (StaleMessage, bool) {
	if m := n.lastStale.Load(); m != nil {
		return *m, true
	}
	return StaleMessage{}, false
}

// enqueue adds an envelope to the broadcast queue.
func (n *Node) enqueue(msg []byte) {
	n.queue.QueueBroadcast(userBroadcast{msg})
	if n.queue.NumQueued() > maxQueuedBroadcasts {
		n.queue.Prune(maxQueuedBroadcasts)
	}
}

// metaBytes returns the encoded local Meta.
func (n *Node) metaBytes() []byte {
	n.metaMu.Lock()
	defer n.metaMu.Unlock()
	return n.metaEnc
}

// LocalName returns this node's name.
func (n *Node) LocalName() string { return n.name }

// Port returns the gossip port this node advertises: Config.AdvertisePort,
// or the port it bound, which memberlist picks when Config.BindPort is 0.
func (n *Node) Port() int { return n.port }

// NumAlive returns the number of nodes, this one included, that are not
// known to be dead or gone.
func (n *Node) NumAlive() int { return n.ml.Load().NumMembers() }

// SetRefused makes this node treat the members for whose meta refused
// reports true as evicted: they are listed in state StateEvicted, their
// messages are dropped, their alive messages refused, and their addresses
// are no members' for the stream caps. nil refuses none. Handler's
// MembersChanged is called.
func (n *Node) SetRefused(refused func(Meta) bool) {
	if refused == nil {
		n.refused.Store(nil)
	} else {
		n.refused.Store(&refused)
	}
	n.members.setRefused(refused)
	n.membersChanged()
}

// Members returns every node seen, this one included, sorted by name. Dead
// and left nodes stay listed (until they come back), also after memberlist
// has forgotten them. It is always current: memberlist reports every change
// to the Node as it makes it.
func (n *Node) Members() []Member { return n.members.list() }

// MaxBroadcastPayload returns the largest payload Broadcast accepts.
func (n *Node) MaxBroadcastPayload() int {
	return n.maxEnvelope - (2 + uvarintLen(len(n.name)) + len(n.name) + 8)
}

func uvarintLen(v int) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], uint64(v))
}

// SendTo sends payload to the named node over a reliable (TCP) stream,
// encrypted like all gossip. The node must be alive; payloads may be large
// (memberlist takes up to 20 MB).
func (n *Node) SendTo(name string, payload []byte) error {
	if n.closed.Load() {
		return ErrShutdown
	}
	ml := n.ml.Load()
	// The address comes from the member table: memberlist's own nodes
	// are changed under its lock while we would read them.
	m, ok := n.members.get(name)
	ip := net.ParseIP(m.Address)
	if !ok || ip == nil || m.State == StateDead || m.State == StateLeft {
		return fmt.Errorf("gossip: no node named %q", name)
	}
	to := &memberlist.Node{Name: m.Name, Addr: ip, Port: uint16(m.Port)}
	msg := envelope{kind: kindDirect, from: n.name, to: name, sent: time.Now().UnixMilli(), payload: payload}.encode(n.identity)
	if err := ml.SendReliable(to, msg); err != nil {
		return fmt.Errorf("gossip: send to %q: %w", name, err)
	}
	return nil
}

// Broadcast gossips payload to every node. Payloads must fit a UDP packet:
// at most MaxBroadcastPayload bytes. Delivery is best effort.
func (n *Node) Broadcast(payload []byte) error {
	if n.closed.Load() {
		return ErrShutdown
	}
	e := envelope{kind: kindBroadcast, from: n.name, id: rand.Uint64(), sent: time.Now().UnixMilli(), payload: payload}
	msg := e.encode(n.identity)
	if len(msg) > n.maxEnvelope {
		return fmt.Errorf("gossip: a broadcast of %d bytes is too large: at most %d bytes fit a UDP packet; use SendTo for large data",
			len(payload), n.MaxBroadcastPayload())
	}
	n.seen.add(e.id)
	n.enqueue(msg)
	return nil
}

// UpdateMeta changes this node's meta and gossips it. It waits a few
// seconds at most for the change to be sent; on a timeout the new meta is
// in force and still spreads, and the error says so.
func (n *Node) UpdateMeta(m Meta) error {
	enc, err := m.Encode()
	if err != nil {
		return err
	}
	if n.closed.Load() {
		return ErrShutdown
	}
	n.metaMu.Lock()
	n.metaEnc = enc
	n.metaMu.Unlock()
	if err := n.ml.Load().UpdateNode(updateMetaTimeout); err != nil {
		return fmt.Errorf("gossip: meta updated here but not yet gossiped: %w", err)
	}
	return nil
}

// SetKeys makes primary the key this node encrypts its gossip with and
// keys (which must hold primary) the keys it decrypts with, in that order:
// new keys first, then the primary, then the keys no longer listed go. A
// rotation that first gives every node the new key, then makes it every
// node's primary, then removes the old one, never leaves two nodes unable
// to read each other.
func (n *Node) SetKeys(primary []byte, keys [][]byte) error {
	if len(primary) != KeySize {
		return fmt.Errorf("gossip: the gossip key has %d bytes, want %d", len(primary), KeySize)
	}
	found := false
	for _, k := range keys {
		if len(k) != KeySize {
			return fmt.Errorf("gossip: a gossip key has %d bytes, want %d", len(k), KeySize)
		}
		found = found || bytes.Equal(k, primary)
	}
	if !found {
		return errors.New("gossip: the primary key is not among the keys")
	}
	n.keyMu.Lock()
	defer n.keyMu.Unlock()
	for _, k := range keys {
		if err := n.keyring.AddKey(bytes.Clone(k)); err != nil {
			return fmt.Errorf("gossip: %w", err)
		}
	}
	if err := n.keyring.UseKey(primary); err != nil {
		return fmt.Errorf("gossip: %w", err)
	}
	for _, held := range n.keyring.GetKeys() {
		if !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, held) }) {
			if err := n.keyring.RemoveKey(held); err != nil {
				return fmt.Errorf("gossip: %w", err)
			}
		}
	}
	return nil
}

// Keys returns the keys this node decrypts with, the one it encrypts with
// first.
func (n *Node) Keys() [][]byte { return n.keyring.GetKeys() }

// Leave announces departure and waits up to timeout (0: until it is sent)
// for the announcement to go out, then shuts the node down. The others
// then list this node as left rather than dead.
func (n *Node) Leave(timeout time.Duration) error {
	n.lifeMu.Lock()
	defer n.lifeMu.Unlock()
	if n.closed.Load() {
		return nil
	}
	n.leaving.Store(true)
	e := envelope{kind: kindLeave, from: n.name, id: rand.Uint64(), sent: time.Now().UnixMilli()}
	n.seen.add(e.id)
	n.enqueue(e.encode(n.identity))
	var errs []error
	if err := n.ml.Load().Leave(timeout); err != nil {
		errs = append(errs, fmt.Errorf("gossip: leave: %w", err))
	}
	if err := n.shutdownLocked(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Shutdown stops the node without announcing. The others will declare it
// dead after failing to reach it. Calling it again does nothing.
func (n *Node) Shutdown() error {
	n.lifeMu.Lock()
	defer n.lifeMu.Unlock()
	return n.shutdownLocked()
}

func (n *Node) shutdownLocked() error {
	if n.closed.Swap(true) {
		return nil
	}
	err := n.ml.Load().Shutdown()
	close(n.done)
	if err != nil {
		return fmt.Errorf("gossip: shutdown: %w", err)
	}
	return nil
}
