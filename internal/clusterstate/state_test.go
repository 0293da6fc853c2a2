package clusterstate

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
)

const (
	cluster = "0123456789abcdef0123456789abcdef"
	idA     = "11111111-1111-4111-8111-111111111111"
	idB     = "22222222-2222-4222-8222-222222222222"
	idS     = "33333333-3333-4333-8333-333333333333"
)

var at = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func key(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(append(make([]byte, 31), seed))
}

func b64(k ed25519.PrivateKey) string {
	return base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey))
}

func TestValidate(t *testing.T) {
	ok := Eviction{ID: idA, Name: "w1", Key: b64(key(1)), At: at}
	tests := []struct {
		name string
		s    State
		want string // "" when valid
	}{
		{"empty", State{Cluster: cluster}, ""},
		{"one", State{Cluster: cluster, Version: 1, Evicted: []Eviction{ok}}, ""},
		{"no key", State{Cluster: cluster, Evicted: []Eviction{{ID: idA, Name: "w1", At: at}}}, ""},
		{"no cluster", State{}, "no cluster ID"},
		{"id not canonical", State{Cluster: cluster, Evicted: []Eviction{{ID: "urn:uuid:" + idA, Name: "w1"}}}, "canonical UUID"},
		{"control character", State{Cluster: cluster, Evicted: []Eviction{{ID: idA, Name: "w\x1b[2J"}}}, "control character"},
		{"name too long", State{Cluster: cluster, Evicted: []Eviction{{ID: idA, Name: strings.Repeat("n", 65)}}}, "longer than"},
		{"short key", State{Cluster: cluster, Evicted: []Eviction{{ID: idA, Name: "w1", Key: "AAAA"}}}, "32 bytes"},
		{"out of order", State{Cluster: cluster, Evicted: []Eviction{{ID: idB}, {ID: idA}}}, "ID order"},
		{"repeated", State{Cluster: cluster, Evicted: []Eviction{{ID: idA}, {ID: idA}}}, "ID order"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestEvict(t *testing.T) {
	s := State{Cluster: cluster}
	s, changed, err := s.Evict(Eviction{ID: idB, Name: "w2", At: at})
	if err != nil || !changed || s.Version != 1 {
		t.Fatalf("first eviction: %v %v version %d", changed, err, s.Version)
	}
	s, changed, err = s.Evict(Eviction{ID: idA, Name: "w1", Key: b64(key(1)), At: at})
	if err != nil || !changed || s.Version != 2 || s.Evicted[0].ID != idA {
		t.Fatalf("second eviction: %v %v %+v", changed, err, s)
	}
	again, changed, err := s.Evict(Eviction{ID: idA, Name: "w1", At: at.Add(time.Hour)})
	if err != nil || changed || again.Version != 2 {
		t.Fatalf("evicting again: %v %v version %d", changed, err, again.Version)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		id   string
		key  []byte
		want bool
	}{
		{idA, nil, true},
		{idB, nil, true},
		{idS, nil, false},
		{idS, key(1).Public().(ed25519.PublicKey), true}, // the evicted key under another ID
		{idS, key(2).Public().(ed25519.PublicKey), false},
	} {
		if got := s.Refuses(tt.id, tt.key); got != tt.want {
			t.Errorf("Refuses(%s, %x) = %v, want %v", tt.id, tt.key, got, tt.want)
		}
	}
	var none *State
	if none.Refuses(idA, nil) {
		t.Error("a nil state refuses a node")
	}
	if _, _, err := s.Evict(Eviction{ID: "not-a-uuid"}); err == nil {
		t.Error("an eviction with a bad ID was taken")
	}
}

func TestEvictRefusesAFullList(t *testing.T) {
	s := State{Cluster: cluster}
	for i := range MaxEvicted {
		var err error
		long := Eviction{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Name: strings.Repeat("n", gossip.MaxNameLen), Key: b64(key(byte(i))), At: at.Add(time.Duration(i) * time.Nanosecond)}
		if s, _, err = s.Evict(long); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Evict(Eviction{ID: idA, Name: "n"}); err == nil || !strings.Contains(err.Error(), "the most") {
		t.Fatalf("evicting past MaxEvicted: %v", err)
	}
	sg, err := Sign(s, idS, key(9), make([]byte, 64))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(sg.Encode()); n > MaxSignedSize {
		t.Fatalf("a full state signs to %d bytes, more than MaxSignedSize %d", n, MaxSignedSize)
	}
}

// endorsedOnly accepts the endorsement "ok" of the signer key k.
func endorsedOnly(k ed25519.PrivateKey) EndorsementCheck {
	return func(id string, pub, e []byte) bool {
		return id == idS && string(pub) == string(k.Public().(ed25519.PublicKey)) && string(e) == string(endorsement())
	}
}

func endorsement() []byte { return []byte(strings.Repeat("e", 64)) }

func TestSignVerify(t *testing.T) {
	server := key(7)
	s, _, _ := State{Cluster: cluster}.Evict(Eviction{ID: idA, Name: "w1", At: at})
	good, err := Sign(s, idS, server, endorsement())
	if err != nil {
		t.Fatal(err)
	}
	selfEvicted, _, _ := s.Evict(Eviction{ID: idS, Name: "s1", At: at})
	other := s
	other.Cluster = strings.Repeat("f", 32)
	tests := []struct {
		name string
		sg   func() Signed
		want string
	}{
		{"good", func() Signed { return good }, ""},
		{"through the wire", func() Signed {
			sg, err := Decode(good.Encode())
			if err != nil {
				t.Fatal(err)
			}
			return sg
		}, ""},
		{"state changed", func() Signed {
			sg := good
			sg.State = []byte(strings.Replace(string(sg.State), `"version":1`, `"version":9`, 1))
			return sg
		}, "does not verify"},
		{"signed by a key without the server token", func() Signed {
			sg, _ := Sign(s, idS, key(8), endorsement())
			return sg
		}, "server token"},
		{"another signer's name", func() Signed {
			sg := good
			sg.By = idB
			return sg
		}, "server token"},
		{"another cluster", func() Signed {
			sg, _ := Sign(other, idS, server, endorsement())
			return sg
		}, "another cluster"},
		{"signer evicted", func() Signed {
			sg, _ := Sign(selfEvicted, idS, server, endorsement())
			return sg
		}, "evicted"},
		{"of a newer format, signed by a server", func() Signed {
			sg := good
			sg.State = []byte(strings.Replace(string(sg.State), `{"cluster"`, `{"format":2,"cluster"`, 1))
			sg.Sig = ed25519.Sign(server, message(sg.State))
			return sg
		}, "format 2, newer than this agent's 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.sg().Verify(cluster, endorsedOnly(server))
			if tt.want == "" {
				if err != nil || got.Version != 1 || len(got.Evicted) != 1 {
					t.Fatalf("Verify() = %+v, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify() = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	good, _ := Sign(State{Cluster: cluster}, idS, key(7), endorsement())
	for name, in := range map[string]string{
		"empty":         "",
		"not JSON":      "{",
		"unknown field": strings.Replace(string(good.Encode()), `{"state"`, `{"x":1,"state"`, 1),
		"trailing":      string(good.Encode()) + "{}",
		"no signature":  strings.Replace(string(good.Encode()), `"sig":`, `"sig":null,"y":`, 1),
		"too large":     strings.Repeat(" ", MaxSignedSize+1),
		"short key":     `{"state":{},"by":"x","key":"AAAA","endorsement":"","sig":""}`,
	} {
		if _, err := Decode([]byte(in)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := Sign(State{Cluster: cluster, Version: 3, Evicted: []Eviction{{ID: idA, Name: "w1", Key: b64(key(1)), At: at}}}, idS, key(7), endorsement())
	f.Add(good.Encode())
	f.Add([]byte(`{"state":{"cluster":"x"},"by":"","key":"","endorsement":"","sig":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		sg, err := Decode(b)
		if err != nil {
			return
		}
		// Nothing but the one key verifies; a decoded state never panics
		// the check and re-encodes to something that decodes.
		if _, err := Decode(sg.Encode()); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		if s, err := sg.Verify(cluster, endorsedOnly(key(7))); err == nil {
			if err := s.Validate(); err != nil {
				t.Fatalf("verified an invalid state: %v", err)
			}
		}
	})
}

// fakeVars is a Variable store with check-and-set; before, when set, runs
// before each write (another server writing in between).
type fakeVars struct {
	mu     sync.Mutex
	items  map[string]string
	index  uint64
	writes int
	before func(f *fakeVars)
}

func (f *fakeVars) Read(_ context.Context, path string) (map[string]string, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if path != VarPath {
		return nil, 0, fmt.Errorf("unexpected path %q", path)
	}
	return f.items, f.index, nil
}

func (f *fakeVars) Write(_ context.Context, path string, items map[string]string, index uint64) error {
	if f.before != nil {
		f.before(f)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	if index != f.index {
		return fmt.Errorf("%w: index %d, now %d", ErrConflict, index, f.index)
	}
	f.items, f.index = items, f.index+10
	return nil
}

func evict(id string) func(State) (State, bool, error) {
	return func(s State) (State, bool, error) { return s.Evict(Eviction{ID: id, Name: "n", At: at}) }
}

func TestUpdate(t *testing.T) {
	ctx := context.Background()
	v := &fakeVars{}
	s, wrote, err := Update(ctx, v, cluster, evict(idA))
	if err != nil || !wrote || s.Version != 1 {
		t.Fatalf("first update: %+v %v %v", s, wrote, err)
	}
	// Another server evicts idB between our read and our write: both stay.
	v.before = func(f *fakeVars) {
		f.before = nil
		if _, _, err := Update(ctx, f, cluster, evict(idB)); err != nil {
			t.Error(err)
		}
	}
	s, wrote, err = Update(ctx, v, cluster, evict(idS))
	if err != nil || !wrote || s.Version != 3 || len(s.Evicted) != 3 {
		t.Fatalf("update after a concurrent one: %+v %v %v", s, wrote, err)
	}
	loaded, _, err := Load(ctx, v, cluster)
	if err != nil || loaded.Version != 3 || len(loaded.Evicted) != 3 {
		t.Fatalf("Load() = %+v, %v", loaded, err)
	}
	// Nothing to change: nothing written.
	writes := v.writes
	if _, wrote, err := Update(ctx, v, cluster, evict(idA)); err != nil || wrote || v.writes != writes {
		t.Fatalf("repeated eviction wrote: %v %v", wrote, err)
	}
	if _, _, err := Load(ctx, v, strings.Repeat("f", 32)); err == nil || !strings.Contains(err.Error(), "another cluster") {
		t.Fatalf("Load of another cluster's state: %v", err)
	}
}

func TestUpdateGivesUp(t *testing.T) {
	v := &fakeVars{}
	v.before = func(f *fakeVars) { f.mu.Lock(); f.index++; f.mu.Unlock() } // always someone first
	_, _, err := Update(context.Background(), v, cluster, evict(idA))
	if err == nil || !strings.Contains(err.Error(), "try again") || v.writes != casAttempts {
		t.Fatalf("Update under constant conflicts: %v after %d writes", err, v.writes)
	}
	boom := errors.New("boom")
	v = &fakeVars{}
	if _, _, err := Update(context.Background(), v, cluster, func(State) (State, bool, error) { return State{}, false, boom }); !errors.Is(err, boom) {
		t.Fatalf("change error: %v", err)
	}
}

func TestRotateClientToken(t *testing.T) {
	s, _, _ := State{Cluster: cluster}.Evict(Eviction{ID: idA, Name: "w1", At: at})
	r, err := s.RotateClientToken(at, time.Hour)
	if err != nil || r.Version != 2 || r.ClientToken.Generation != 1 || !r.ClientToken.PreviousUntil.Equal(at.Add(time.Hour)) || len(r.Evicted) != 1 {
		t.Fatalf("RotateClientToken = %+v, %v", r, err)
	}
	r2, _ := r.RotateClientToken(at.Add(time.Minute), 0)
	if r2.ClientToken.Generation != 2 || r2.Version != 3 || !r2.ClientToken.PreviousUntil.Equal(at.Add(time.Minute)) {
		t.Fatalf("second rotation: %+v", r2)
	}
	if _, err := s.RotateClientToken(at, -time.Second); err == nil {
		t.Error("a negative grace was taken")
	}
	// Through the signed form and back.
	sg, err := Sign(r2, idS, key(7), endorsement())
	if err != nil {
		t.Fatal(err)
	}
	got, err := sg.Verify(cluster, endorsedOnly(key(7)))
	if err != nil || got.ClientToken != r2.ClientToken {
		t.Fatalf("verified %+v, %v; want %+v", got.ClientToken, err, r2.ClientToken)
	}
}

func TestRotatedNomadGossipKey(t *testing.T) {
	s := State{Cluster: cluster, Version: 4}
	tests := []struct {
		gen     uint32
		changed bool
		version uint64
	}{
		{1, true, 5},
		{1, false, 5}, // a second server recording the same rotation
		{3, true, 6},
		{2, false, 6}, // an older one, late
	}
	for _, tt := range tests {
		next, changed := s.RotatedNomadGossipKey(tt.gen, at)
		if changed != tt.changed || next.Version != tt.version {
			t.Fatalf("generation %d: changed %v, version %d; want %v, %d", tt.gen, changed, next.Version, tt.changed, tt.version)
		}
		s = next
	}
	sg, err := Sign(s, idS, key(7), endorsement())
	if err != nil {
		t.Fatal(err)
	}
	got, err := sg.Verify(cluster, endorsedOnly(key(7)))
	if err != nil || got.NomadGossipKey != s.NomadGossipKey || got.NomadGossipKey.Generation != 3 {
		t.Fatalf("verified %+v, %v", got.NomadGossipKey, err)
	}
}

func TestWithAgentGossipKey(t *testing.T) {
	s := State{Cluster: cluster, Version: 4}
	install := AgentKey{Generation: 1, Phase: KeyInstall, StartedAt: at}
	use := AgentKey{Generation: 1, Phase: KeyUse, StartedAt: at}
	done := AgentKey{Generation: 1, Phase: KeyDone, StartedAt: at, RotatedAt: at.Add(time.Second)}
	tests := []struct {
		name    string
		k       AgentKey
		changed bool
		version uint64
		err     string
	}{
		{"install", install, true, 5, ""},
		{"install again", install, false, 5, ""},
		{"use", use, true, 6, ""},
		{"install, late", install, false, 6, ""},
		{"done", done, true, 7, ""},
		{"use, late", use, false, 7, ""},
		{"next install", AgentKey{Generation: 2, Phase: KeyInstall, StartedAt: at}, true, 8, ""},
		{"older generation", done, false, 8, ""},
		{"generation 0", AgentKey{Phase: KeyInstall}, false, 8, "generation 0"},
		{"generation 0 recorded, late", AgentKey{Phase: KeyDone, RotatedAt: at}, false, 8, ""},
		{"unknown phase", AgentKey{Generation: 3, Phase: "switch"}, false, 8, `phase "switch"`},
		{"done without time", AgentKey{Generation: 3, Phase: KeyDone}, false, 8, "no time"},
	}
	for _, tt := range tests {
		next, changed, err := s.WithAgentGossipKey(tt.k)
		if (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Fatalf("%s: error %v, want %q", tt.name, err, tt.err)
		}
		if changed != tt.changed || next.Version != tt.version {
			t.Fatalf("%s: changed %v, version %d; want %v, %d", tt.name, changed, next.Version, tt.changed, tt.version)
		}
		s = next
	}
	sg, err := Sign(s, idS, key(7), endorsement())
	if err != nil {
		t.Fatal(err)
	}
	got, err := sg.Verify(cluster, endorsedOnly(key(7)))
	if err != nil || got.AgentGossipKey != s.AgentGossipKey {
		t.Fatalf("verified %+v, %v", got.AgentGossipKey, err)
	}
	bad := s
	bad.AgentGossipKey.Phase = "later"
	if sg, err := Sign(bad, idS, key(7), endorsement()); err == nil {
		if _, err := sg.Verify(cluster, endorsedOnly(key(7))); err == nil {
			t.Error("a state with an unknown phase verified")
		}
	}
}

// TestNewerFormat: a state of a newer format is refused as such, not
// misread; one without a format, as the first releases wrote it, is read.
func TestNewerFormat(t *testing.T) {
	_, err := parseState([]byte(`{"format":2,"cluster":"` + cluster + `","version":3,"future_field":{"x":1}}`))
	var newer *NewerFormatError
	if !errors.As(err, &newer) || newer.Format != 2 || !strings.Contains(err.Error(), "format 2, newer than this agent's 1") {
		t.Fatalf("a state of format 2: %v", err)
	}
	s, err := parseState([]byte(`{"cluster":"` + cluster + `","version":3}`))
	if err != nil || s.Version != 3 {
		t.Fatalf("a state without a format: %+v %v", s, err)
	}
	if _, err := parseState([]byte(`{"format":-1,"cluster":"` + cluster + `","version":3}`)); err == nil {
		t.Fatal("a state of format -1 was read")
	}
}
