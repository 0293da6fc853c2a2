package gossip

import (
	"crypto/ed25519"
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
//
// A signed envelope (version 3) has the same fields and two more: a direct
// message names its recipient (uvarint length + node name) after the
// sender, and every signed envelope carries the time it was sent (Unix
// milliseconds, 8 bytes, big endian) just before the payload. The sender's
// Ed25519 signature (64 bytes) of everything before it, made with the
// identity key its meta announces, ends it; relays pass it on unchanged.
// The recipient keeps a direct message from being sent on to another node,
// and the send time bounds how long a copy can be replayed (replay.go).
const (
	envelopeVersion       = 1
	signedEnvelopeVersion = 3
)

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
	to      string // the recipient's node name; signed direct messages only
	id      uint64 // broadcast and leave only
	sent    int64  // when it was sent, Unix milliseconds; signed envelopes only
	payload []byte
	// signed is what sig signs, and sig the signature, of a signed
	// envelope; both nil for an unsigned one.
	signed, sig []byte
}

// envelopeOverhead is the largest header, signature included, for a sender
// name of nameLen bytes.
func envelopeOverhead(nameLen int) int {
	return 2 + binary.MaxVarintLen64 + nameLen + 8 + 8 + ed25519.SignatureSize
}

// encode returns e in wire form, signed with key unless it is nil.
func (e envelope) encode(key ed25519.PrivateKey) []byte {
	b := e.body(key != nil)
	if key != nil {
		b = append(b, ed25519.Sign(key, b)...)
	}
	return b
}

// body returns e in wire form without a signature: the part a signature
// signs when signed is set.
func (e envelope) body(signed bool) []byte {
	b := make([]byte, 0, envelopeOverhead(len(e.from))+binary.MaxVarintLen64+len(e.to)+len(e.payload))
	version := byte(envelopeVersion)
	if signed {
		version = signedEnvelopeVersion
	}
	b = append(b, version, byte(e.kind))
	b = binary.AppendUvarint(b, uint64(len(e.from)))
	b = append(b, e.from...)
	if signed && e.kind == kindDirect {
		b = binary.AppendUvarint(b, uint64(len(e.to)))
		b = append(b, e.to...)
	}
	if e.kind != kindDirect {
		b = binary.BigEndian.AppendUint64(b, e.id)
	}
	if signed {
		b = binary.BigEndian.AppendUint64(b, uint64(e.sent))
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
	switch b[0] {
	case envelopeVersion:
	case signedEnvelopeVersion:
		if len(b) < 2+ed25519.SignatureSize {
			return envelope{}, errors.New("gossip: envelope: truncated signature")
		}
		cut := len(b) - ed25519.SignatureSize
		e.signed, e.sig = b[:cut], b[cut:]
		b = b[:cut]
	default:
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
	if e.sig != nil && e.kind == kindDirect {
		if e.to, rest, err = readString(rest); err != nil {
			return envelope{}, fmt.Errorf("gossip: envelope: recipient: %w", err)
		}
		if e.to == "" {
			return envelope{}, errors.New("gossip: envelope: recipient: empty")
		}
	}
	if e.kind != kindDirect {
		if len(rest) < 8 {
			return envelope{}, errors.New("gossip: envelope: truncated message ID")
		}
		e.id = binary.BigEndian.Uint64(rest)
		rest = rest[8:]
	}
	if e.sig != nil {
		if len(rest) < 8 {
			return envelope{}, errors.New("gossip: envelope: truncated send time")
		}
		e.sent = int64(binary.BigEndian.Uint64(rest))
		rest = rest[8:]
	}
	if e.kind == kindLeave && len(rest) != 0 {
		return envelope{}, errors.New("gossip: envelope: leave message with a payload")
	}
	e.payload = rest
	return e, nil
}
