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

// Message is one message of the protocol.
type Message struct {
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

// Encode returns m's wire form.
func (m Message) Encode() []byte { return encodeJSON(m) }

// DecodeMessage parses and checks a message from the network.
func DecodeMessage(b []byte) (Message, error) {
	if len(b) > MaxMessageSize {
		return Message{}, fmt.Errorf("agree: message of %d bytes exceeds %d", len(b), MaxMessageSize)
	}
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return Message{}, fmt.Errorf("agree: malformed message: %w", err)
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
	return encodeJSON(pushState{Version: 1, Plan: s.Plan, Cluster: s.Cluster})
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
	if s.Version != 1 {
		return PushState{}, fmt.Errorf("agree: push/pull state version %d is not supported", s.Version)
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
