package gossipkeys

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/clusterstate"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func ring(inUse uint32, gens ...uint32) Ring {
	r := Ring{InUse: inUse}
	for _, g := range gens {
		r.Keys = append(r.Keys, Key{Generation: g, Key: key(byte(g + 1))})
	}
	return r
}

func TestFollow(t *testing.T) {
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		r      Ring
		k      clusterstate.AgentKey
		want   Ring
		hasKey bool
	}{
		{"never rotated", ring(0, 0), clusterstate.AgentKey{}, ring(0, 0), true},
		{"install, key held", ring(0, 1, 0), clusterstate.AgentKey{Generation: 1, Phase: clusterstate.KeyInstall}, ring(0, 1, 0), true},
		{"install, key missing", ring(0, 0), clusterstate.AgentKey{Generation: 1, Phase: clusterstate.KeyInstall}, ring(0, 0), false},
		{"use", ring(0, 1, 0), clusterstate.AgentKey{Generation: 1, Phase: clusterstate.KeyUse}, ring(1, 1, 0), true},
		{"use, key missing", ring(0, 0), clusterstate.AgentKey{Generation: 1, Phase: clusterstate.KeyUse}, ring(0, 0), false},
		{"done", ring(1, 1, 0), clusterstate.AgentKey{Generation: 1, Phase: clusterstate.KeyDone, RotatedAt: at}, ring(1, 1), true},
		{"done, never used", ring(0, 1, 0), clusterstate.AgentKey{Generation: 1, Phase: clusterstate.KeyDone, RotatedAt: at}, ring(1, 1), true},
		{"done, two behind", ring(1, 1, 0), clusterstate.AgentKey{Generation: 3, Phase: clusterstate.KeyDone, RotatedAt: at}, ring(1, 1, 0), false},
		{"use of an older generation", ring(2, 2, 1), clusterstate.AgentKey{Generation: 1, Phase: clusterstate.KeyUse}, ring(2, 2, 1), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.r.Follow(tt.k)
			if ok != tt.hasKey || !got.Equal(tt.want) {
				t.Errorf("Follow = %+v, %v; want %+v, %v", got, ok, tt.want, tt.hasKey)
			}
			if err := got.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestMergeAndAdd(t *testing.T) {
	r := ring(0, 0)
	for range 6 {
		next, err := r.Add(0)
		if err != nil {
			t.Fatal(err)
		}
		if next.Newest() != r.Newest()+1 || next.InUse != 0 || len(next.Keys) > MaxKeys {
			t.Fatalf("Add: %+v", next)
		}
		if err := next.Validate(); err != nil {
			t.Fatal(err)
		}
		r = next
	}
	if _, ok := r.Get(0); !ok {
		t.Error("Merge dropped the key in use")
	}
	got := ring(1, 1, 0).Merge(ring(2, 3, 2))
	if want := ring(1, 3, 2, 1, 0); !got.Equal(want) {
		t.Errorf("Merge = %+v, want %+v", got, want)
	}
	if got := ring(1, 1, 0).Adopt(ring(3, 3, 2)); !got.Equal(ring(3, 3, 2, 1, 0)) {
		t.Errorf("Adopt = %+v", got)
	}
	if got := ring(3, 3, 2).Adopt(ring(2, 2, 1)); !got.Equal(ring(3, 3, 2, 1)) { // never back
		t.Errorf("Adopt of an older ring = %+v", got)
	}
	got = ring(2, 2).Merge(ring(2, 2, 1)) // a key held is not replaced
	if !got.Equal(ring(2, 2, 1)) {
		t.Errorf("Merge = %+v", got)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		r    Ring
		want string
	}{
		{"empty", Ring{}, "1 to 4 keys"},
		{"too many", ring(0, 4, 3, 2, 1, 0), "1 to 4 keys"},
		{"short key", Ring{Keys: []Key{{Key: key(1)[:31]}}}, "31 bytes"},
		{"order", ring(0, 0, 1), "newest first"},
		{"repeat", ring(1, 1, 1), "newest first"},
		{"in use missing", ring(2, 1, 0), "generation 2"},
	}
	for _, tt := range tests {
		if err := tt.r.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestLoadSave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gossip-keys.json")
	r, err := Load(path, key(9))
	if err != nil || !r.Equal(Initial(key(9))) {
		t.Fatalf("Load without a file = %+v, %v", r, err)
	}
	want := ring(1, 1, 0)
	if changed, err := Save(path, want); err != nil || !changed {
		t.Fatalf("Save = %v, %v", changed, err)
	}
	if changed, err := Save(path, want); err != nil || changed {
		t.Fatalf("Save again = %v, %v", changed, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", fi.Mode(), err)
	}
	if got, err := Load(path, key(9)); err != nil || !got.Equal(want) {
		t.Fatalf("Load = %+v, %v", got, err)
	}
	if _, err := Save(path, ring(3, 1)); err == nil {
		t.Error("Save took an invalid ring")
	}
	for _, bad := range []string{"{", `{"in_use":0,"keys":[]}`, `{"in_use":0,"keys":[{"generation":0,"key":"AAAA"}]}`, `{"x":1}`, `{"in_use":0,"keys":[{"generation":0,"key":"` + strings.Repeat("A", 43) + `="}]} {}`} {
		os.WriteFile(path, []byte(bad), 0o600)
		if _, err := Load(path, key(9)); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "remove it") {
			t.Errorf("Load(%q) = %v; want an error naming the file", bad, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	b, _ := json.Marshal(ring(1, 1, 0))
	f.Add(b)
	f.Add([]byte(`{"in_use":0,"keys":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("Parse took an invalid ring: %v", err)
		}
		if len(r.Primary()) != KeySize {
			t.Fatal("no primary key")
		}
	})
}

type party struct {
	id  string
	key ed25519.PrivateKey
}

func newParty(t testing.TB, id string) party {
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return party{id, k}
}

// endorsement stands for the server token's: a signature by the test's
// cluster key over the node ID and identity key.
func endorse(cluster ed25519.PrivateKey, id [16]byte, pub []byte) []byte {
	return ed25519.Sign(cluster, append(id[:], pub...))
}

func endorsedBy(cluster ed25519.PrivateKey) Endorsed {
	return func(id [16]byte, pub ed25519.PublicKey, sig []byte) bool {
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(cluster.Public().(ed25519.PublicKey), append(id[:], pub...), sig)
	}
}

func TestSealOpen(t *testing.T) {
	_, cluster, _ := ed25519.GenerateKey(nil)
	_, otherCluster, _ := ed25519.GenerateKey(nil)
	srv := newParty(t, "6f1c0a52-3a8e-4d6f-9b0e-2f4e5a6b7c8d")
	node := newParty(t, "")
	other := newParty(t, "")
	nonce := bytes.Repeat([]byte{3}, 16)
	idOf := func(s string) [16]byte { return uuid.MustParse(s) }
	want := ring(2, 2, 1)
	seal := func(to ed25519.PublicKey, signer ed25519.PrivateKey, cl ed25519.PrivateKey) []byte {
		b, err := Seal(want, to, nonce, srv.id, signer, endorse(cl, idOf(srv.id), signer.Public().(ed25519.PublicKey)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := seal(node.key.Public().(ed25519.PublicKey), srv.key, cluster)
	got, err := Open(good, node.key, nonce, endorsedBy(cluster))
	if err != nil || !got.Equal(want) {
		t.Fatalf("Open = %+v, %v", got, err)
	}
	tamper := func(f func(*Answer)) []byte {
		var a Answer
		if err := json.Unmarshal(good, &a); err != nil {
			t.Fatal(err)
		}
		f(&a)
		b, _ := json.Marshal(a)
		return b
	}
	tests := []struct {
		name  string
		b     []byte
		self  ed25519.PrivateKey
		nonce []byte
		want  string
	}{
		{"another request's nonce", good, node.key, bytes.Repeat([]byte{4}, 16), "signature"},
		{"sealed to another node", good, other.key, nonce, "does not open"},
		{"not endorsed", seal(node.key.Public().(ed25519.PublicKey), srv.key, otherCluster), node.key, nonce, "not a server of this cluster"},
		{"sealed part swapped", tamper(func(a *Answer) {
			a.Sealed = bytes.Clone(a.Sealed)
			a.Sealed[len(a.Sealed)-1] ^= 1
		}), node.key, nonce, "signature"},
		{"sender changed", tamper(func(a *Answer) { a.From = "6f1c0a52-3a8e-4d6f-9b0e-2f4e5a6b7c8e" }), node.key, nonce, "not a server"},
		{"bad ID", tamper(func(a *Answer) { a.From = "server-1" }), node.key, nonce, "UUID"},
		{"no signature", tamper(func(a *Answer) { a.Signature = nil }), node.key, nonce, "malformed"},
		{"unknown field", []byte(`{"from":"x","extra":1}`), node.key, nonce, "unknown field"},
		{"too big", make([]byte, MaxAnswerSize+1), node.key, nonce, "over"},
	}
	for _, tt := range tests {
		if _, err := Open(tt.b, tt.self, tt.nonce, endorsedBy(cluster)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Open = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func FuzzOpen(f *testing.F) {
	srv := newParty(f, "6f1c0a52-3a8e-4d6f-9b0e-2f4e5a6b7c8d")
	node := newParty(f, "")
	nonce := bytes.Repeat([]byte{3}, 16)
	good, err := Seal(ring(1, 1, 0), node.key.Public().(ed25519.PublicKey), nonce, srv.id, srv.key, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Open(b, node.key, nonce, func([16]byte, ed25519.PublicKey, []byte) bool { return true })
		if err == nil {
			if err := r.Validate(); err != nil {
				t.Fatalf("Open gave an invalid ring: %v", err)
			}
		}
	})
}
