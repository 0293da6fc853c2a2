// Package clusterstate is what a cluster decides after its bootstrap, as one
// versioned document: the nodes it evicted, and where the rotations of its
// keys and of its CA (ca.go) stand. Nomad's servers keep the document in a
// Nomad Variable of this tool's, written with check-and-set (store.go), so
// that two servers changing it at once cannot lose either change; every
// node receives it over gossip, signed by a server-token holder
// (signed.go), since most nodes cannot read Nomad's Variables. A node keeps
// the highest version it verified.
package clusterstate

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
)

// MaxEvicted is how many evicted nodes the state holds at most. The state
// must fit one gossip message beside a plan.
const MaxEvicted = 100

// Format is the version of the state's form that this release writes and
// reads. A state of a newer format is refused with a NewerFormatError, not
// misread; one without a format is of format 1, the first. A release that
// adds what an older one would lose or misread raises it.
const Format = 1

// NewerFormatError is returned for a state of a newer format than this
// release's: a newer nomad-bootstrapd wrote it.
type NewerFormatError struct{ Format int }

func (e *NewerFormatError) Error() string {
	return fmt.Sprintf("clusterstate: the state is of format %d, newer than this agent's %d: a newer nomad-bootstrapd wrote it", e.Format, Format)
}

// State is the cluster's decided state.
type State struct {
	// Format is the form the state is written in (the Format constant);
	// 0 reads as 1.
	Format int `json:"format,omitempty"`
	// Cluster is the cluster ID (32 hex characters) the state belongs to.
	Cluster string `json:"cluster"`
	// Version is raised by one with every change; nodes keep the highest.
	Version uint64 `json:"version"`
	// Evicted are the nodes the cluster refuses, in ID order.
	Evicted []Eviction `json:"evicted,omitempty"`
	// ClientToken is which client tokens admit new nodes.
	ClientToken ClientToken `json:"client_token,omitzero"`
	// NomadGossipKey is which generation of Nomad's gossip key the servers
	// use (internal/nomadkeys keeps the keys themselves, for the servers).
	NomadGossipKey KeyGeneration `json:"nomad_gossip_key,omitzero"`
	// AgentGossipKey is the rotation of the agents' own gossip key
	// (internal/gossipkeys): every node follows its phase.
	AgentGossipKey AgentKey `json:"agent_gossip_key,omitzero"`
	// CA is the rotation of the cluster CA (ca.go): which CAs every node
	// trusts, and which one signs. The zero value is the plan's CA.
	CA CA `json:"ca,omitzero"`
	// NomadUpgrade is the last rolling upgrade of Nomad (upgrade.go); the
	// zero value when there was none.
	NomadUpgrade NomadUpgrade `json:"nomad_upgrade,omitzero"`
}

// clone returns s sharing no backing array with it, for a method to change.
func (s State) clone() State {
	s.Evicted = slices.Clone(s.Evicted)
	s.CA.Bundles = slices.Clone(s.CA.Bundles)
	s.NomadUpgrade.Turn = slices.Clone(s.NomadUpgrade.Turn)
	return s
}

// Phases of a rotation of the agents' gossip key.
const (
	// KeyInstall: every node gets the new key and decrypts with it too.
	KeyInstall = "install"
	// KeyUse: every node encrypts with the new key.
	KeyUse = "use"
	// KeyDone: every node holds the new key alone.
	KeyDone = "done"
)

// AgentKey is where the rotation of the agents' gossip key stands.
type AgentKey struct {
	// Generation is the newest key's; 0 is the key the tokens derive,
	// recorded done at the time the schedule counts from.
	Generation uint32 `json:"generation"`
	// Phase is KeyInstall, KeyUse or KeyDone.
	Phase string `json:"phase"`
	// StartedAt is when the rotation to Generation began.
	StartedAt time.Time `json:"started_at,omitzero"`
	// RotatedAt is when it was done; zero before.
	RotatedAt time.Time `json:"rotated_at,omitzero"`
}

func (k AgentKey) validate() error {
	switch {
	case k == AgentKey{}:
		return nil
	case k.Generation == 0 && k.Phase != KeyDone:
		return errors.New("clusterstate: agents' gossip key generation 0 is never rotated to")
	case k.Phase != KeyInstall && k.Phase != KeyUse && k.Phase != KeyDone:
		return fmt.Errorf("clusterstate: agents' gossip key phase %q is not install, use or done", k.Phase)
	case k.Phase == KeyDone && k.RotatedAt.IsZero():
		return errors.New("clusterstate: a done rotation of the agents' gossip key has no time")
	}
	return nil
}

// WithAgentGossipKey returns s recording k, with its version raised, and
// true; or s and false when s records k already, or a later generation, or
// a later phase of k's.
func (s State) WithAgentGossipKey(k AgentKey) (State, bool, error) {
	if err := k.validate(); err != nil {
		return s, false, err
	}
	cur := s.AgentGossipKey
	if k == cur || k.Generation < cur.Generation || (k.Generation == cur.Generation && phaseRank(k.Phase) < phaseRank(cur.Phase)) {
		return s, false, nil
	}
	next := s.clone()
	next.AgentGossipKey = k
	next.Version++
	return next, true, nil
}

func phaseRank(p string) int { return slices.Index([]string{KeyInstall, KeyUse, KeyDone}, p) }

// KeyGeneration is how many times a key was rotated, and when last.
type KeyGeneration struct {
	Generation uint32    `json:"generation"`
	RotatedAt  time.Time `json:"rotated_at,omitzero"`
}

// RotatedNomadGossipKey returns s recording that Nomad's gossip key
// reached generation gen at at, with its version raised, and true; or s
// and false when s records that generation or a later one already.
func (s State) RotatedNomadGossipKey(gen uint32, at time.Time) (State, bool) {
	if gen <= s.NomadGossipKey.Generation {
		return s, false
	}
	next := s.clone()
	next.NomadGossipKey = KeyGeneration{Generation: gen, RotatedAt: at.UTC()}
	next.Version++
	return next, true
}

// ClientToken is the generation of the client tokens that admit new nodes
// (certs.ClientPolicy): token rotate -client raises it, and the tokens of
// the generation before admit until PreviousUntil.
type ClientToken struct {
	Generation    uint32    `json:"generation"`
	RotatedAt     time.Time `json:"rotated_at,omitzero"`
	PreviousUntil time.Time `json:"previous_until,omitzero"`
}

// RotateClientToken returns s with the client token generation raised,
// the previous generation admitting until now+grace, and its version
// raised.
func (s State) RotateClientToken(now time.Time, grace time.Duration) (State, error) {
	if grace < 0 {
		return s, fmt.Errorf("clusterstate: grace %s is negative", grace)
	}
	if s.ClientToken.Generation == math.MaxUint32 {
		return s, errors.New("clusterstate: the client token cannot be rotated any more")
	}
	next := s.clone()
	next.ClientToken = ClientToken{Generation: s.ClientToken.Generation + 1, RotatedAt: now.UTC(), PreviousUntil: now.Add(grace).UTC()}
	next.Version++
	return next, nil
}

// Eviction is one evicted node.
type Eviction struct {
	ID   string `json:"id"`   // node ID
	Name string `json:"name"` // node name when evicted
	// Key is the node's identity public key (standard base64 of 32 bytes),
	// or "" when the node was not a member when it was evicted.
	Key string `json:"key,omitempty"`
	// At is when it was evicted.
	At time.Time `json:"at"`
}

// Validate checks what a state from the network or a Variable must hold.
func (s State) Validate() error {
	switch {
	case s.Format > Format:
		return &NewerFormatError{Format: s.Format}
	case s.Format < 0:
		return fmt.Errorf("clusterstate: format %d", s.Format)
	}
	if len(s.Cluster) != 32 {
		return errors.New("clusterstate: no cluster ID")
	}
	if len(s.Evicted) > MaxEvicted {
		return fmt.Errorf("clusterstate: %d evicted nodes exceed %d", len(s.Evicted), MaxEvicted)
	}
	if err := s.AgentGossipKey.validate(); err != nil {
		return err
	}
	if err := s.CA.validate(); err != nil {
		return err
	}
	if err := s.NomadUpgrade.validate(); err != nil {
		return err
	}
	for i, e := range s.Evicted {
		if err := e.validate(); err != nil {
			return err
		}
		if i > 0 && s.Evicted[i-1].ID >= e.ID {
			return errors.New("clusterstate: evicted nodes are not in ID order, or repeat one")
		}
	}
	return nil
}

func (e Eviction) validate() error {
	if u, err := uuid.Parse(e.ID); err != nil || u.String() != e.ID {
		return fmt.Errorf("clusterstate: evicted node ID %q is not a canonical UUID", e.ID)
	}
	if err := gossip.CheckName(e.Name); err != nil {
		return fmt.Errorf("clusterstate: evicted node %s: name %v", e.ID, err)
	}
	if e.Key != "" {
		if b, err := base64.StdEncoding.Strict().DecodeString(e.Key); err != nil || len(b) != 32 {
			return fmt.Errorf("clusterstate: evicted node %s: identity key is not 32 bytes of base64", e.ID)
		}
	}
	return nil
}

// Evict returns s with e added and its version raised, and true; or s
// and false when the node is evicted already. It refuses a full list.
func (s State) Evict(e Eviction) (State, bool, error) {
	if err := e.validate(); err != nil {
		return s, false, err
	}
	if _, ok := s.Eviction(e.ID); ok {
		return s, false, nil
	}
	if len(s.Evicted) >= MaxEvicted {
		return s, false, fmt.Errorf("clusterstate: %d nodes are evicted already, the most the cluster keeps", MaxEvicted)
	}
	next := s.clone()
	next.Evicted = append(next.Evicted, e)
	slices.SortFunc(next.Evicted, func(a, b Eviction) int { return cmp.Compare(a.ID, b.ID) })
	next.Version++
	return next, true, nil
}

// Eviction returns the eviction of the node with this ID, if it is evicted.
func (s State) Eviction(id string) (Eviction, bool) {
	i, ok := slices.BinarySearchFunc(s.Evicted, id, func(e Eviction, id string) int { return cmp.Compare(e.ID, id) })
	if !ok {
		return Eviction{}, false
	}
	return s.Evicted[i], true
}

// Refuses reports whether s evicted the node with this ID, or a node with
// this identity key (32 bytes; nil matches no key).
func (s *State) Refuses(id string, key []byte) bool {
	if s == nil {
		return false
	}
	if _, ok := s.Eviction(id); ok {
		return true
	}
	if len(key) == 0 {
		return false
	}
	k := base64.StdEncoding.EncodeToString(key)
	return slices.ContainsFunc(s.Evicted, func(e Eviction) bool { return e.Key == k })
}

// jsonState returns s as the Variable keeps it.
func jsonState(s State) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}
