// Package gossip wraps memberlist: encrypted and labelled gossip, compact node
// metadata, reliable direct messages, broadcasts and push/pull state. It knows
// nothing of plans or certificates; the agent gives it bytes.
package gossip

import (
	"crypto/ed25519"
	"log/slog"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/discover"
)

// DefaultPort is the gossip port (TCP and UDP) when an address names none.
const DefaultPort = discover.DefaultPort

// Handler receives a Node's events. Its methods are called from memberlist's
// goroutines, possibly concurrently, and must not block for long.
type Handler interface {
	// HandleMessage receives a user message sent with SendTo or Broadcast.
	// from is the name of the node that sent it, also for a broadcast that
	// reached us through other nodes. payload is only valid during the
	// call. A broadcast is delivered at most once per node, never to its
	// sender.
	HandleMessage(from string, payload []byte)
	// LocalState returns the state exchanged in push/pull syncs.
	LocalState(join bool) []byte
	// MergeRemoteState receives a peer's LocalState.
	MergeRemoteState(buf []byte, join bool)
	// MembersChanged is called after a node joined, left, failed or updated
	// its meta. It is called from one goroutine of the Node, never
	// concurrently with itself, and may call the Node's methods. Changes
	// that come in quick succession may be reported by one call.
	MembersChanged()
}

// Meta is a node's description that rides in memberlist's node meta.
type Meta struct {
	ID         string // node ID: a UUID in canonical text form (lower case, with hyphens)
	Role       string // auto, server or client
	Pool       string
	Zone       string
	Datacenter string
	Region     string
	Expect     int
	CPUCores   int
	MemoryMB   int
	// Identity is the node's Ed25519 identity public key (32 bytes), or
	// empty.
	Identity []byte
	// Endorsement is the cluster key's signature of ID and Identity, which
	// only a holder of the server token can make (64 bytes), or empty.
	Endorsement []byte
	// KeyNewest and KeyOldest are the newest and oldest generations of the
	// agents' gossip key this node holds, and KeyInUse the one it encrypts
	// with; all 0 until the key was first rotated (internal/gossipkeys).
	KeyNewest, KeyOldest, KeyInUse uint32
	// CANewest and CAOldest are the newest and oldest generations of the
	// cluster CA that this node's CA bundle holds, and CAIssued the
	// generation that issued every certificate this node holds; all 0
	// until the CA is first rotated.
	CANewest, CAOldest, CAIssued uint32
}

// MaxNameLen is the longest node name, pool, zone, datacenter or region.
const MaxNameLen = 64

// State is a member's liveness. memberlist's API does not expose its
// suspicion state, so a Node reports StateAlive until a member is declared
// dead; StateSuspect is kept for the other packages' use.
type State string

// States.
const (
	StateAlive   State = "alive"
	StateSuspect State = "suspect"
	StateDead    State = "dead"
	StateLeft    State = "left" // left with Leave
	// StateEvicted is a member the cluster evicted (Node.SetRefused): its
	// messages are dropped and it is no member to the rest of the agent.
	StateEvicted State = "evicted"
)

// Member is a node as this node sees it.
type Member struct {
	Name    string
	Address string // IP
	Port    int
	State   State
	Meta    Meta
	MetaErr error // non-nil when the node's meta did not decode
}

// Config configures a Node.
type Config struct {
	Name          string // unique in the cluster; at most MaxNameLen bytes
	BindAddr      string // "" binds every address
	BindPort      int    // 0 picks a free port
	AdvertiseAddr string // "" advertises the bound address (a private IP when bound to all)
	AdvertisePort int    // 0 advertises the bound port
	Key           []byte // 32-byte gossip encryption key: the one this node encrypts with
	// ExtraKeys are further 32-byte keys this node decrypts with, for a
	// key rotation under way (see Node.SetKeys).
	ExtraKeys [][]byte
	Label     string // memberlist label; peers with another label are ignored
	Meta      Meta
	// Identity, when set, signs every message this node sends (its public
	// half must be Meta.Identity), and makes the node drop every message
	// not signed by the identity key its sender announces.
	Identity ed25519.PrivateKey
	Handler  Handler
	Logger   *slog.Logger // nil discards logs
	// DeadNodeReclaimTime lets a node that restarted on a new address take
	// its name back this long after it was declared dead. Zero keeps
	// memberlist's default: only once the others have forgotten the dead
	// node, about 30 s (GossipToTheDeadTime) after it died.
	DeadNodeReclaimTime time.Duration
	// Tuning, when set, is called with the memberlist configuration just
	// before the memberlist is created, to change its timings. It is meant
	// for tests and benchmarks (faster failure detection, many nodes in one
	// process); the agent leaves it nil.
	Tuning func(*memberlist.Config)
}
