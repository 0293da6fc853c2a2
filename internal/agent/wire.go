package agent

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// Message types of the agreement protocol, carried as gossip payloads.
const (
	msgPropose  = "propose"  // coordinator -> chosen servers: will you serve in this plan?
	msgAck      = "ack"      // server -> coordinator: yes, and I promise no other plan for a while
	msgNack     = "nack"     // server -> coordinator: no, with a reason
	msgRelease  = "release"  // coordinator -> servers: the proposal failed, drop your promise
	msgCommit   = "commit"   // anyone -> anyone: this plan is committed
	msgAnnounce = "announce" // broadcast when a commit does not fit a packet: plan hash and epoch
	msgFetch    = "fetch"    // ask a node for its committed plan (answered with commit)
	msgEscrow   = "escrow"   // CA holder -> servers: the CA key sealed with a token-derived key
	msgWantCA   = "want-ca"  // server -> CA holder: send me the escrowed CA key of the plan with this hash
)

// maxMessageSize bounds what decodeMessage accepts.
const maxMessageSize = 64 << 10

// message is one agreement protocol message.
type message struct {
	Type   string     `json:"t"`
	ID     uint64     `json:"id,omitempty"` // request ID; replies carry the request's
	Plan   *plan.Plan `json:"p,omitempty"`
	Hash   string     `json:"h,omitempty"`
	Epoch  uint64     `json:"e,omitempty"`
	Reason string     `json:"r,omitempty"`
	Sealed []byte     `json:"s,omitempty"`
}

func (m message) encode() []byte { return encodeJSON(m) }

// decodeMessage parses and checks a message from the network.
func decodeMessage(b []byte) (message, error) {
	if len(b) > maxMessageSize {
		return message{}, fmt.Errorf("agent: message of %d bytes exceeds %d", len(b), maxMessageSize)
	}
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		return message{}, fmt.Errorf("agent: malformed message: %w", err)
	}
	switch m.Type {
	case msgPropose, msgCommit:
		if m.Plan == nil {
			return message{}, fmt.Errorf("agent: %s message without a plan", m.Type)
		}
		if err := m.Plan.Validate(); err != nil {
			return message{}, fmt.Errorf("agent: %s message: %w", m.Type, err)
		}
	case msgAck, msgNack, msgFetch:
	case msgEscrow:
		if len(m.Sealed) == 0 || len(m.Sealed) > 8<<10 || len(m.Hash) != 64 {
			return message{}, errors.New("agent: escrow message without a sealed key and plan hash")
		}
	case msgRelease, msgAnnounce, msgWantCA:
		if len(m.Hash) != 64 {
			return message{}, fmt.Errorf("agent: %s message without a plan hash", m.Type)
		}
	default:
		return message{}, fmt.Errorf("agent: unknown message type %q", m.Type)
	}
	if len(m.Reason) > 1024 {
		return message{}, errors.New("agent: message reason too long")
	}
	return m, nil
}

// pushState is what a node exchanges in gossip push/pull syncs.
type pushState struct {
	Version int        `json:"v"`
	Plan    *plan.Plan `json:"plan,omitempty"`
}

func decodePushState(b []byte) (pushState, error) {
	if len(b) > maxMessageSize {
		return pushState{}, fmt.Errorf("agent: push/pull state of %d bytes exceeds %d", len(b), maxMessageSize)
	}
	var s pushState
	if err := json.Unmarshal(b, &s); err != nil {
		return pushState{}, fmt.Errorf("agent: malformed push/pull state: %w", err)
	}
	if s.Version != 1 {
		return pushState{}, fmt.Errorf("agent: push/pull state version %d is not supported", s.Version)
	}
	if s.Plan != nil {
		if err := s.Plan.Validate(); err != nil {
			return pushState{}, fmt.Errorf("agent: push/pull state: %w", err)
		}
	}
	return s, nil
}

func encodeJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("agent: encoding %T: %v", v, err)) // only plain data: cannot fail
	}
	return b
}
