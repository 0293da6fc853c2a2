package agree

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// Message types, carried as gossip payloads. The CA holder's messages
// (escrow, want-ca) share the encoding; a Node ignores them and its caller
// hands them to the CA holder's side.
const (
	MsgPrepare  = "prepare"  // coordinator -> voters: promise no lower ballot for this epoch (with the candidate plan)
	MsgPromise  = "promise"  // voter -> coordinator: promised, and the plan I accepted before, if any
	MsgPropose  = "propose"  // coordinator -> voters: accept this plan at this ballot
	MsgAck      = "ack"      // voter -> coordinator: accepted
	MsgNack     = "nack"     // voter -> coordinator: no, with a reason and the ballot promised
	MsgCommit   = "commit"   // anyone -> anyone: this plan is committed
	MsgAnnounce = "announce" // broadcast when a commit does not fit a packet: plan hash and epoch
	MsgFetch    = "fetch"    // ask a node for its committed plan (answered with commit)
	MsgEscrow   = "escrow"   // CA holder -> servers: the CA, its key and the management token, sealed to the server's identity key
	MsgWantCA   = "want-ca"  // server -> CA holder: send me the escrowed CA key of the plan with this hash
	MsgState    = "state"    // server -> anyone: the cluster's decided state (internal/clusterstate), signed
)

// MaxClusterState bounds the signed cluster state a message or push/pull
// state carries (clusterstate.MaxSignedSize).
const MaxClusterState = 32 << 10

// MaxMessageSize bounds what DecodeMessage and DecodeState accept.
const MaxMessageSize = 64 << 10

// Protocol is the version of the messages and push/pull states this
// release speaks and reads: every message carries it ("v"), and a message
// or state of a newer version is refused with a NewerProtocolError instead
// of being misread. A message without one is of version 1, the first. A
// release that changes what a message means raises Protocol, and keeps
// reading and sending the version before to members whose messages carry
// it, for one release, so that the agents of a cluster can be upgraded one
// at a time.
const Protocol = 1

// NewerProtocolError is returned for a message or push/pull state of a
// newer protocol than this release's: its sender runs a newer
// nomad-bootstrapd.
type NewerProtocolError struct {
	What    string // "message" or "push/pull state"
	Version int
}

func (e *NewerProtocolError) Error() string {
	return fmt.Sprintf("agree: %s of protocol %d, newer than this agent's %d: its sender runs a newer nomad-bootstrapd", e.What, e.Version, Protocol)
}

// Message is one message of the protocol.
type Message struct {
	// V is the protocol version (Protocol) the message is of; 0 reads as 1.
	V      int    `json:"v,omitempty"`
	Type   string `json:"t"`
	ID     uint64 `json:"id,omitempty"` // request ID; replies carry the request's
	Ballot Ballot `json:"b,omitzero"`   // a request's ballot; in a nack, the ballot promised
	// Accepted is, in a promise, the ballot at which the voter accepted
	// Plan.
	Accepted Ballot     `json:"a,omitzero"`
	Plan     *plan.Plan `json:"p,omitempty"`
	Hash     string     `json:"h,omitempty"`
	Epoch    uint64     `json:"e,omitempty"`
	Reason   string     `json:"r,omitempty"`
	Sealed   []byte     `json:"s,omitempty"`
	// Sig is, in an ack, the voter's signature of its acceptance.
	Sig []byte `json:"g,omitempty"`
	// Cluster is, in a state message, the signed cluster state.
	Cluster []byte `json:"c,omitempty"`
}

// Encode returns m's wire form, of this release's protocol.
func (m Message) Encode() []byte {
	m.V = Protocol
	return encodeJSON(m)
}

// DecodeMessage parses and checks a message from the network.
func DecodeMessage(b []byte) (Message, error) {
	if len(b) > MaxMessageSize {
		return Message{}, fmt.Errorf("agree: message of %d bytes exceeds %d", len(b), MaxMessageSize)
	}
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return Message{}, fmt.Errorf("agree: malformed message: %w", err)
	}
	switch {
	case m.V > Protocol:
		return Message{}, &NewerProtocolError{What: "message", Version: m.V}
	case m.V < 0:
		return Message{}, fmt.Errorf("agree: message of protocol %d", m.V)
	}
	switch m.Type {
	case MsgPrepare, MsgPropose:
		if m.Ballot.Round == 0 || m.Ballot.Node == "" {
			return Message{}, fmt.Errorf("agree: %s message without a ballot", m.Type)
		}
	case MsgPromise:
		if m.Accepted.IsZero() != (m.Plan == nil) {
			return Message{}, errors.New("agree: promise with an accepted ballot but no plan, or a plan but no ballot")
		}
	}
	switch m.Type {
	case MsgPrepare, MsgPropose, MsgCommit:
		if m.Plan == nil {
			return Message{}, fmt.Errorf("agree: %s message without a plan", m.Type)
		}
		if err := m.Plan.Validate(); err != nil {
			return Message{}, fmt.Errorf("agree: %s message: %w", m.Type, err)
		}
	case MsgPromise:
		if m.Plan != nil {
			if err := m.Plan.Validate(); err != nil {
				return Message{}, fmt.Errorf("agree: promise message: %w", err)
			}
		}
	case MsgAck, MsgNack, MsgFetch:
	case MsgEscrow:
		if len(m.Sealed) == 0 || len(m.Sealed) > 8<<10 || len(m.Hash) != 64 {
			return Message{}, errors.New("agree: escrow message without a sealed key and plan hash")
		}
	case MsgState:
		if len(m.Cluster) == 0 || len(m.Cluster) > MaxClusterState {
			return Message{}, errors.New("agree: state message without a cluster state, or with one too large")
		}
	case MsgAnnounce, MsgWantCA:
		if len(m.Hash) != 64 {
			return Message{}, fmt.Errorf("agree: %s message without a plan hash", m.Type)
		}
	default:
		return Message{}, fmt.Errorf("agree: unknown message type %q", m.Type)
	}
	if len(m.Reason) > 1024 {
		return Message{}, errors.New("agree: message reason too long")
	}
	if len(m.Ballot.Node) > 256 || len(m.Accepted.Node) > 256 {
		return Message{}, errors.New("agree: ballot names a node of more than 256 bytes")
	}
	return m, nil
}

// PushState is what a node exchanges in gossip push/pull syncs: its
// committed plan and the signed cluster state it holds, each nil when it
// holds none.
type PushState struct {
	Plan    *plan.Plan
	Cluster []byte
}

type pushState struct {
	Version int        `json:"v"`
	Plan    *plan.Plan `json:"plan,omitempty"`
	Cluster []byte     `json:"cluster,omitempty"`
}

// EncodeState returns the push/pull state that carries p; nil when p is nil.
func EncodeState(p *plan.Plan) []byte { return EncodePush(PushState{Plan: p}) }

// EncodePush returns the push/pull state s; nil when it carries nothing.
func EncodePush(s PushState) []byte {
	if s.Plan == nil && len(s.Cluster) == 0 {
		return nil
	}
	return encodeJSON(pushState{Version: Protocol, Plan: s.Plan, Cluster: s.Cluster})
}

// DecodeState parses and checks a push/pull state from the network; the
// plan is nil when the peer holds none.
func DecodeState(b []byte) (*plan.Plan, error) {
	s, err := DecodePush(b)
	return s.Plan, err
}

// DecodePush parses and checks a push/pull state from the network.
func DecodePush(b []byte) (PushState, error) {
	if len(b) > MaxMessageSize {
		return PushState{}, fmt.Errorf("agree: push/pull state of %d bytes exceeds %d", len(b), MaxMessageSize)
	}
	var s pushState
	if err := json.Unmarshal(b, &s); err != nil {
		return PushState{}, fmt.Errorf("agree: malformed push/pull state: %w", err)
	}
	switch {
	case s.Version > Protocol:
		return PushState{}, &NewerProtocolError{What: "push/pull state", Version: s.Version}
	case s.Version < 1:
		return PushState{}, fmt.Errorf("agree: push/pull state of protocol %d", s.Version)
	}
	if s.Plan != nil {
		if err := s.Plan.Validate(); err != nil {
			return PushState{}, fmt.Errorf("agree: push/pull state: %w", err)
		}
	}
	if len(s.Cluster) > MaxClusterState {
		return PushState{}, errors.New("agree: push/pull state with a cluster state too large")
	}
	return PushState{Plan: s.Plan, Cluster: s.Cluster}, nil
}

func encodeJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("agree: encoding %T: %v", v, err)) // only plain data: cannot fail
	}
	return b
}
