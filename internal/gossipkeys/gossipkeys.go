// Package gossipkeys is the agents' own gossip keyring: which generations
// of memberlist's key a node holds and which one it encrypts with, kept in
// a file of the node's, and the sealed answer with which a server hands the
// keys to a node that lacks them.
//
// Generation 0 is the key the tokens derive (certs.Token.GossipKey); every
// rotation adds a random key of the next generation. A rotation runs in
// the phases the cluster state records (clusterstate.AgentKey): install
// (every node gets the new key and decrypts with it as well), use (every
// node encrypts with it), done (every node drops the others). Each node
// follows the phase with Follow; one that lacks the key asks a server for
// it (Seal, Open), authenticated like a certificate request.
package gossipkeys

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"slices"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/atomicfile"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/clusterstate"
)

// KeySize is the length of a key (AES-256).
const KeySize = 32

// MaxKeys is how many keys a ring holds at most: the one in use, the next
// one and the one before, with room for a rotation that was cut short.
const MaxKeys = 4

// Key is one generation of the gossip key.
type Key struct {
	Generation uint32 `json:"generation"`
	Key        []byte `json:"key"`
}

// Ring is the keys a node holds, newest generation first, and the
// generation it encrypts with.
type Ring struct {
	InUse uint32 `json:"in_use"`
	Keys  []Key  `json:"keys"`
}

// Initial returns the ring of a node whose cluster never rotated the key:
// generation 0, the token's key, alone.
func Initial(tokenKey []byte) Ring {
	return Ring{Keys: []Key{{Generation: 0, Key: bytes.Clone(tokenKey)}}}
}

// Validate checks a ring from a file or the network.
func (r Ring) Validate() error {
	if len(r.Keys) == 0 || len(r.Keys) > MaxKeys {
		return fmt.Errorf("gossipkeys: a ring holds 1 to %d keys, not %d", MaxKeys, len(r.Keys))
	}
	for i, k := range r.Keys {
		if len(k.Key) != KeySize {
			return fmt.Errorf("gossipkeys: key of generation %d has %d bytes, want %d", k.Generation, len(k.Key), KeySize)
		}
		if i > 0 && r.Keys[i-1].Generation <= k.Generation {
			return errors.New("gossipkeys: keys are not newest first, or a generation repeats")
		}
	}
	if _, ok := r.Get(r.InUse); !ok {
		return fmt.Errorf("gossipkeys: the ring does not hold generation %d, which it says is in use", r.InUse)
	}
	return nil
}

// Get returns the key of generation gen.
func (r Ring) Get(gen uint32) ([]byte, bool) {
	for _, k := range r.Keys {
		if k.Generation == gen {
			return k.Key, true
		}
	}
	return nil, false
}

// Newest returns the newest generation r holds.
func (r Ring) Newest() uint32 {
	if len(r.Keys) == 0 {
		return 0
	}
	return r.Keys[0].Generation
}

// Oldest returns the oldest generation r holds.
func (r Ring) Oldest() uint32 {
	if len(r.Keys) == 0 {
		return 0
	}
	return r.Keys[len(r.Keys)-1].Generation
}

// Primary returns the key r encrypts with.
func (r Ring) Primary() []byte {
	k, _ := r.Get(r.InUse)
	return k
}

// All returns every key of r.
func (r Ring) All() [][]byte {
	out := make([][]byte, len(r.Keys))
	for i, k := range r.Keys {
		out[i] = k.Key
	}
	return out
}

// Equal reports whether r and o hold the same keys and use the same one.
func (r Ring) Equal(o Ring) bool {
	return r.InUse == o.InUse && slices.EqualFunc(r.Keys, o.Keys, func(a, b Key) bool {
		return a.Generation == b.Generation && bytes.Equal(a.Key, b.Key)
	})
}

// Merge returns r with the keys of o that r does not hold added, newest
// first, keeping at most MaxKeys (the oldest go, never the one in use).
// The key r uses stays in use.
func (r Ring) Merge(o Ring) Ring {
	out := Ring{InUse: r.InUse, Keys: slices.Clone(r.Keys)}
	for _, k := range o.Keys {
		if _, ok := out.Get(k.Generation); !ok {
			out.Keys = append(out.Keys, Key{Generation: k.Generation, Key: bytes.Clone(k.Key)})
		}
	}
	slices.SortFunc(out.Keys, func(a, b Key) int { return cmp.Compare(b.Generation, a.Generation) })
	for len(out.Keys) > MaxKeys {
		i := len(out.Keys) - 1
		if out.Keys[i].Generation == out.InUse {
			i--
		}
		out.Keys = slices.Delete(out.Keys, i, i+1)
	}
	return out
}

// Adopt returns r with the keys of o, the cluster's ring, merged in, and
// encrypting with the key o uses when that is newer than r's: what a node
// that was away, or is new, takes from a server.
func (r Ring) Adopt(o Ring) Ring {
	out := r.Merge(o)
	if _, ok := out.Get(o.InUse); ok && o.InUse > out.InUse {
		out.InUse = o.InUse
	}
	return out
}

// Add returns r with a new random key of the generation after its newest
// and after after (a generation the cluster went to, which r may lack).
func (r Ring) Add(after uint32) (Ring, error) {
	gen := max(r.Newest(), after)
	if gen == math.MaxUint32 {
		return r, errors.New("gossipkeys: the key cannot be rotated any more")
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return r, err
	}
	next := Ring{InUse: r.InUse, Keys: []Key{{Generation: gen + 1, Key: key}}}
	return next.Merge(r), nil
}

// Follow returns the ring a node should hold at phase k of the cluster's
// rotation, and whether it holds the key that phase needs: at install it
// keeps what it has; at use it encrypts with k's generation; at done it
// holds that generation alone. A node lacking the key keeps its ring and
// should ask a server for the key.
func (r Ring) Follow(k clusterstate.AgentKey) (Ring, bool) {
	if k.Generation == 0 || k.Phase == "" {
		return r, true
	}
	key, ok := r.Get(k.Generation)
	if !ok {
		return r, false
	}
	switch k.Phase {
	case clusterstate.KeyUse:
		if r.InUse >= k.Generation {
			return r, true
		}
		return Ring{InUse: k.Generation, Keys: r.Keys}, true
	case clusterstate.KeyDone:
		return Ring{InUse: k.Generation, Keys: []Key{{Generation: k.Generation, Key: key}}}, true
	}
	return r, true
}

// maxFileSize bounds a ring file.
const maxFileSize = 4 << 10

// Load reads the ring kept at path; a node without one holds Initial(
// tokenKey). A file that is not a ring is an error that names it.
func Load(path string, tokenKey []byte) (Ring, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Initial(tokenKey), nil
	}
	if err != nil {
		return Ring{}, fmt.Errorf("gossipkeys: %w", err)
	}
	r, err := Parse(b)
	if err != nil {
		return Ring{}, fmt.Errorf("gossipkeys: %s: %w; remove it and the node asks a server for the keys", path, err)
	}
	return r, nil
}

// Parse decodes and validates a ring's JSON.
func Parse(b []byte) (Ring, error) {
	if len(b) > maxFileSize {
		return Ring{}, fmt.Errorf("gossipkeys: a ring of %d bytes is over %d", len(b), maxFileSize)
	}
	var r Ring
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Ring{}, fmt.Errorf("gossipkeys: %w", err)
	}
	if dec.More() {
		return Ring{}, errors.New("gossipkeys: data after the ring")
	}
	return r, r.Validate()
}

// Save writes r to path (0600, atomically) and reports whether the file
// changed.
func Save(path string, r Ring) (bool, error) {
	if err := r.Validate(); err != nil {
		return false, err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	return atomicfile.WriteFileIfChanged(path, append(b, '\n'), 0o600)
}

// VarPath is the Nomad Variable (namespace default) in which the servers
// keep the ring, for a server that lacks a key: readable with the
// management token only, like every Variable of this tool's.
const VarPath = "nomad-bootstrapd/agent-keys"

const varItem = "ring"

// LoadVar returns the ring the Variable holds, and false when there is none.
func LoadVar(ctx context.Context, v clusterstate.Vars) (Ring, uint64, bool, error) {
	items, index, err := v.Read(ctx, VarPath)
	if err != nil {
		return Ring{}, 0, false, fmt.Errorf("gossipkeys: reading Nomad Variable %s: %w", VarPath, err)
	}
	if items == nil {
		return Ring{}, 0, false, nil
	}
	r, err := Parse([]byte(items[varItem]))
	if err != nil {
		return Ring{}, 0, false, fmt.Errorf("gossipkeys: Nomad Variable %s: %w", VarPath, err)
	}
	return r, index, true, nil
}

// StoreVar writes r to the Variable, with check-and-set against what it
// held just before (a malformed ring there is replaced).
func StoreVar(ctx context.Context, v clusterstate.Vars, r Ring) error {
	if err := r.Validate(); err != nil {
		return err
	}
	_, index, err := v.Read(ctx, VarPath)
	if err != nil {
		return fmt.Errorf("gossipkeys: reading Nomad Variable %s: %w", VarPath, err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := v.Write(ctx, VarPath, map[string]string{varItem: string(b)}, index); err != nil {
		return fmt.Errorf("gossipkeys: writing Nomad Variable %s: %w", VarPath, err)
	}
	return nil
}
