package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// memberlist hands user messages to the delegate without saying who sent
// them, and does not relay broadcasts. So every user message carries an
// envelope:
//
//	version byte (1)
//	kind byte: direct (1), broadcast (2) or leave (3)
//	uvarint length + sender's node name (1..MaxNameLen bytes)
//	broadcast and leave only: 8-byte message ID, big endian
//	payload: the rest (empty for leave)
//
// Broadcasts and leaves are relayed by every node that sees them for the
// first time; the ID lets nodes drop copies they have already seen.
const envelopeVersion = 1

// envelopeKind says how a message travels.
type envelopeKind byte

const (
	kindDirect    envelopeKind = 1 // SendTo, over TCP
	kindBroadcast envelopeKind = 2 // Broadcast, gossiped and relayed
	kindLeave     envelopeKind = 3 // the sender is leaving on purpose (Leave)
)

// envelope is a decoded user message.
type envelope struct {
	kind    envelopeKind
	from    string // the original sender's node name
	id      uint64 // broadcast and leave only
	payload []byte
}

// envelopeOverhead is the largest header for a sender name of nameLen bytes.
func envelopeOverhead(nameLen int) int {
	return 2 + binary.MaxVarintLen64 + nameLen + 8
}

// encode returns e in wire form.
func (e envelope) encode() []byte {
	b := make([]byte, 0, envelopeOverhead(len(e.from))+len(e.payload))
	b = append(b, envelopeVersion, byte(e.kind))
	b = binary.AppendUvarint(b, uint64(len(e.from)))
	b = append(b, e.from...)
	if e.kind != kindDirect {
		b = binary.BigEndian.AppendUint64(b, e.id)
	}
	return append(b, e.payload...)
}

// decodeEnvelope parses a user message. It is strict (unknown version or
// kind, truncation, a bad sender name or a leave with a payload are errors)
// and never panics. The payload aliases b.
func decodeEnvelope(b []byte) (envelope, error) {
	var e envelope
	if len(b) < 2 {
		return envelope{}, errors.New("gossip: envelope: truncated header")
	}
	if b[0] != envelopeVersion {
		return envelope{}, fmt.Errorf("gossip: envelope: unknown format version %d", b[0])
	}
	e.kind = envelopeKind(b[1])
	switch e.kind {
	case kindDirect, kindBroadcast, kindLeave:
	default:
		return envelope{}, fmt.Errorf("gossip: envelope: unknown kind %d", b[1])
	}
	from, rest, err := readString(b[2:])
	if err != nil {
		return envelope{}, fmt.Errorf("gossip: envelope: sender: %w", err)
	}
	if from == "" {
		return envelope{}, errors.New("gossip: envelope: sender: empty")
	}
	e.from = from
	if e.kind != kindDirect {
		if len(rest) < 8 {
			return envelope{}, errors.New("gossip: envelope: truncated message ID")
		}
		e.id = binary.BigEndian.Uint64(rest)
		rest = rest[8:]
	}
	if e.kind == kindLeave && len(rest) != 0 {
		return envelope{}, errors.New("gossip: envelope: leave message with a payload")
	}
	e.payload = rest
	return e, nil
}
