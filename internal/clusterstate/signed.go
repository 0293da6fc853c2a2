package clusterstate

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
)

// MaxSignedSize bounds what Decode accepts: MaxEvicted evictions, a CA
// record with two bundles of MaxCABundleSize, an upgrade record with a turn
// of MaxUpgradeBatch nodes and the signature fit within it (about 31 KiB at
// most), and it leaves room for a plan in one gossip
// message or push/pull state (agree.MaxClusterState).
const MaxSignedSize = 32 << 10

// signLabel starts the message a server signs.
const signLabel = "nomad-bootstrapd cluster state v1\x00"

// Signed is a state as it travels between nodes: its JSON, signed by the
// identity key of the node that vouches for it, which shows the cluster
// key's endorsement that it holds the server token.
type Signed struct {
	State       json.RawMessage `json:"state"`
	By          string          `json:"by"`          // the signer's node ID
	Key         []byte          `json:"key"`         // the signer's identity public key
	Endorsement []byte          `json:"endorsement"` // the cluster key's endorsement of By and Key
	Sig         []byte          `json:"sig"`         // the signature of signLabel || State by Key
}

// EndorsementCheck reports whether endorsement shows that the node with
// this ID and identity key holds the server token (plan.EndorsementCheck).
type EndorsementCheck func(id string, key, endorsement []byte) bool

// Sign returns s signed by the node with this ID, identity key and
// endorsement.
func Sign(s State, id string, key ed25519.PrivateKey, endorsement []byte) (Signed, error) {
	if err := s.Validate(); err != nil {
		return Signed{}, err
	}
	body, err := json.Marshal(s)
	if err != nil {
		return Signed{}, err
	}
	return Signed{
		State: body, By: id, Key: key.Public().(ed25519.PublicKey), Endorsement: endorsement,
		Sig: ed25519.Sign(key, message(body)),
	}, nil
}

func message(body []byte) []byte { return append([]byte(signLabel), body...) }

// Encode returns sg's wire form.
func (sg Signed) Encode() []byte {
	b, err := json.Marshal(sg)
	if err != nil {
		panic(err) // only byte slices and strings
	}
	return b
}

// Decode parses a signed state from the network or a file, checking its
// form but not its signature (Verify does).
func Decode(b []byte) (Signed, error) {
	if len(b) > MaxSignedSize {
		return Signed{}, fmt.Errorf("clusterstate: signed state of %d bytes exceeds %d", len(b), MaxSignedSize)
	}
	var sg Signed
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&sg); err != nil {
		return Signed{}, fmt.Errorf("clusterstate: malformed signed state: %w", err)
	}
	if d.More() {
		return Signed{}, errors.New("clusterstate: data after the signed state")
	}
	if len(sg.Key) != ed25519.PublicKeySize || len(sg.Endorsement) != ed25519.SignatureSize || len(sg.Sig) != ed25519.SignatureSize || len(sg.State) == 0 {
		return Signed{}, errors.New("clusterstate: signed state without a key, an endorsement or a signature")
	}
	return sg, nil
}

// Verify returns the state sg carries when it belongs to cluster, is
// signed by the key sg names, and endorsed shows that this key's node holds
// the server token; a node the state itself evicts cannot vouch for it.
func (sg Signed) Verify(cluster string, endorsed EndorsementCheck) (State, error) {
	if !endorsed(sg.By, sg.Key, sg.Endorsement) {
		return State{}, fmt.Errorf("clusterstate: signer %s does not hold the server token of this cluster", sg.By)
	}
	if !ed25519.Verify(sg.Key, message(sg.State), sg.Sig) {
		return State{}, fmt.Errorf("clusterstate: the signature of %s does not verify", sg.By)
	}
	s, err := parseState(sg.State)
	if err != nil {
		return State{}, err
	}
	if s.Cluster != cluster {
		return State{}, errors.New("clusterstate: the state is another cluster's")
	}
	if s.Refuses(sg.By, sg.Key) {
		return State{}, fmt.Errorf("clusterstate: signer %s is evicted", sg.By)
	}
	return s, nil
}

// parseState decodes and validates a state's JSON. Fields it does not know
// are ignored, so that a state a later release wrote in the same format
// still evicts; a state of a later format is refused (NewerFormatError).
func parseState(b []byte) (State, error) {
	var s State
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&s); err != nil {
		return State{}, fmt.Errorf("clusterstate: malformed state: %w", err)
	}
	if d.More() {
		return State{}, errors.New("clusterstate: data after the state")
	}
	if err := s.Validate(); err != nil {
		return State{}, err
	}
	return s, nil
}
