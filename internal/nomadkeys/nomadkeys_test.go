package nomadkeys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/nomad/api"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/clusterstate"
)

// fakeVars is Nomad's Variables in memory, with check-and-set.
type fakeVars struct {
	items  map[string]map[string]string
	index  map[string]uint64
	writes int
	// before, when set, runs before each write (another server writing).
	before func()
}

func newVars() *fakeVars {
	return &fakeVars{items: map[string]map[string]string{}, index: map[string]uint64{}}
}

func (f *fakeVars) Read(_ context.Context, path string) (map[string]string, uint64, error) {
	it, ok := f.items[path]
	if !ok {
		return nil, 0, nil
	}
	return maps.Clone(it), f.index[path], nil
}

func (f *fakeVars) Write(_ context.Context, path string, items map[string]string, index uint64) error {
	if f.before != nil {
		f.before()
	}
	if f.index[path] != index {
		return fmt.Errorf("%w: index %d, want %d", clusterstate.ErrConflict, f.index[path], index)
	}
	f.writes++
	f.items[path] = maps.Clone(items)
	f.index[path] = uint64(100 + f.writes)
	return nil
}

// server is one Nomad server's serf keyring.
type server struct {
	keys    []string // the first is the one it encrypts with
	reached bool     // the local server's queries reach it
}

// fakeRing is the serf keyring of a pool of Nomad servers, as the local
// server's keyring API sees it.
type fakeRing struct {
	servers []*server
	calls   []string
	// failUse makes UseKey fail.
	failUse bool
}

func newRing(n int, key string) *fakeRing {
	r := &fakeRing{}
	for range n {
		r.servers = append(r.servers, &server{keys: []string{key}, reached: true})
	}
	return r
}

func (r *fakeRing) resp() *api.KeyringResponse {
	out := &api.KeyringResponse{Keys: map[string]int{}, Messages: map[string]string{}}
	for _, s := range r.servers {
		if !s.reached {
			continue
		}
		out.NumNodes++
		for _, k := range s.keys {
			out.Keys[k]++
		}
	}
	return out
}

func (r *fakeRing) ListKeys() (*api.KeyringResponse, error) {
	r.calls = append(r.calls, "list")
	return r.resp(), nil
}

func (r *fakeRing) InstallKey(key string) (*api.KeyringResponse, error) {
	r.calls = append(r.calls, "install "+Fingerprint(key))
	for _, s := range r.servers {
		if s.reached && !slices.Contains(s.keys, key) {
			s.keys = append(s.keys, key)
		}
	}
	return r.resp(), nil
}

func (r *fakeRing) UseKey(key string) (*api.KeyringResponse, error) {
	r.calls = append(r.calls, "use "+Fingerprint(key))
	if r.failUse {
		resp := r.resp()
		resp.Messages["nomad-2.global"] = "Requested key is not in the keyring"
		return resp, errors.New("1/3 nodes reported failure")
	}
	for _, s := range r.servers {
		if !s.reached {
			continue
		}
		if !slices.Contains(s.keys, key) {
			return r.resp(), errors.New("key not installed")
		}
		s.keys = append([]string{key}, slices.DeleteFunc(s.keys, func(k string) bool { return k == key })...)
	}
	return r.resp(), nil
}

func (r *fakeRing) RemoveKey(key string) (*api.KeyringResponse, error) {
	r.calls = append(r.calls, "remove "+Fingerprint(key))
	for _, s := range r.servers {
		if !s.reached {
			continue
		}
		if s.keys[0] == key {
			return r.resp(), errors.New("removing the primary key is not allowed")
		}
		s.keys = slices.DeleteFunc(s.keys, func(k string) bool { return k == key })
	}
	return r.resp(), nil
}

var (
	initial = NewKey()
	now     = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
)

func rotation(v *fakeVars, r *fakeRing) Rotation {
	return Rotation{Vars: v, Keyring: r, Initial: initial, Now: func() time.Time { return now }, Poll: time.Millisecond, Wait: 50 * time.Millisecond}
}

func stored(t *testing.T, v *fakeVars) Keys {
	t.Helper()
	k, _, ok, err := Load(t.Context(), v)
	if err != nil || !ok {
		t.Fatalf("Load: %v, %v", ok, err)
	}
	return k
}

func TestRotate(t *testing.T) {
	v, r := newVars(), newRing(3, initial)
	k1, err := rotation(v, r).Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if k1.Generation != 1 || k1.Phase != PhaseDone || k1.Key == initial || k1.Previous != "" && k1.Previous != initial || !k1.RotatedAt.Equal(now) {
		t.Fatalf("after the first rotation: %+v", k1)
	}
	if diff := cmp.Diff(k1, stored(t, v)); diff != "" {
		t.Fatalf("the Variable holds other keys (-returned +stored):\n%s", diff)
	}
	for i, s := range r.servers {
		if !slices.Equal(s.keys, []string{k1.Key}) {
			t.Errorf("server %d holds %d keys, the new one first: %v", i, len(s.keys), s.keys[0] == k1.Key)
		}
	}
	want := []string{"install " + Fingerprint(k1.Key), "list", "use " + Fingerprint(k1.Key), "list", "remove " + Fingerprint(initial), "list"}
	if diff := cmp.Diff(want, r.calls); diff != "" {
		t.Errorf("keyring calls (-want +got):\n%s", diff)
	}

	k2, err := rotation(v, r).Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if k2.Generation != 2 || k2.Key == k1.Key || k2.Phase != PhaseDone {
		t.Fatalf("after the second rotation: %+v", k2)
	}
	for i, s := range r.servers {
		if !slices.Equal(s.keys, []string{k2.Key}) {
			t.Errorf("server %d does not hold the second key only", i)
		}
	}
}

// TestResume takes up rotations cut short in each phase, as another
// server or a restarted agent would.
func TestResume(t *testing.T) {
	for _, phase := range []Phase{PhaseInstall, PhaseUse} {
		t.Run(string(phase), func(t *testing.T) {
			v, r := newVars(), newRing(3, initial)
			next := NewKey()
			cut := Keys{Generation: 1, Key: next, Phase: phase, RotatedAt: now}
			if _, err := store(t.Context(), v, cut, 0); err != nil {
				t.Fatal(err)
			}
			if phase == PhaseUse {
				r.InstallKey(next)
			}
			k, err := rotation(v, r).Resume(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if k.Generation != 1 || k.Key != next || k.Phase != PhaseDone {
				t.Fatalf("resumed to %+v; want generation 1 with the key it started", k)
			}
			for i, s := range r.servers {
				if !slices.Equal(s.keys, []string{next}) {
					t.Errorf("server %d does not hold the new key only", i)
				}
			}
		})
	}
	t.Run("nothing to resume", func(t *testing.T) {
		v, r := newVars(), newRing(3, initial)
		k, err := rotation(v, r).Resume(t.Context())
		if err != nil || k.Generation != 0 || len(r.calls) != 0 {
			t.Fatalf("Resume with nothing cut short: %+v, %v, calls %v", k, err, r.calls)
		}
	})
}

func TestRotateFails(t *testing.T) {
	t.Run("a server is missing the key", func(t *testing.T) {
		v, r := newVars(), newRing(3, initial)
		// A server the install does not reach, that the listing counts.
		r.servers[2].reached = false
		ring := &partialRing{fakeRing: r}
		_, err := Rotation{Vars: v, Keyring: ring, Initial: initial, Now: func() time.Time { return now }, Poll: time.Millisecond, Wait: 20 * time.Millisecond}.Run(t.Context())
		if err == nil || !strings.Contains(err.Error(), "did not reach every Nomad server") {
			t.Fatalf("Run = %v; want the key not reaching every server", err)
		}
		k := stored(t, v)
		if k.Phase != PhaseInstall {
			t.Fatalf("phase %s; want install, so that the next run takes it up", k.Phase)
		}
		for i, s := range r.servers {
			if s.keys[0] != initial {
				t.Errorf("server %d switched keys", i)
			}
		}
	})
	t.Run("use fails", func(t *testing.T) {
		v, r := newVars(), newRing(3, initial)
		r.failUse = true
		_, err := rotation(v, r).Run(t.Context())
		if err == nil || !strings.Contains(err.Error(), "nomad-2.global: Requested key is not in the keyring") {
			t.Fatalf("Run = %v; want the server's own message", err)
		}
		if k := stored(t, v); k.Phase != PhaseUse {
			t.Fatalf("phase %s; want use", k.Phase)
		}
		for i, s := range r.servers {
			if !slices.Contains(s.keys, initial) {
				t.Errorf("server %d lost the key it uses", i)
			}
		}
	})
	t.Run("a server does not answer", func(t *testing.T) {
		v, r := newVars(), newRing(3, initial)
		_, err := Rotation{Vars: v, Keyring: &silentRing{r}, Initial: initial, Now: func() time.Time { return now }, Poll: time.Millisecond, Wait: 20 * time.Millisecond}.Run(t.Context())
		if err == nil || !strings.Contains(err.Error(), "2/3 nodes reported success") || !strings.Contains(err.Error(), "bring it back") {
			t.Fatalf("Run = %v; want Nomad's error and what to do", err)
		}
	})
	t.Run("another server rotates at once", func(t *testing.T) {
		v, r := newVars(), newRing(3, initial)
		v.before = func() {
			v.before = nil
			if _, err := store(context.Background(), v, Keys{Generation: 1, Key: NewKey(), Phase: PhaseInstall, RotatedAt: now}, 0); err != nil {
				t.Error(err)
			}
		}
		_, err := rotation(v, r).Run(t.Context())
		if !errors.Is(err, ErrBusy) {
			t.Fatalf("Run = %v; want ErrBusy", err)
		}
		if len(r.calls) != 0 {
			t.Errorf("the keyring was changed: %v", r.calls)
		}
	})
}

// partialRing counts a server in its listings that its other calls do
// not reach.
type partialRing struct{ *fakeRing }

func (p *partialRing) ListKeys() (*api.KeyringResponse, error) {
	resp := p.resp()
	resp.NumNodes++
	resp.Keys[initial]++
	return resp, nil
}

func TestLoadRefusesMalformed(t *testing.T) {
	key := NewKey()
	for name, item := range map[string]string{
		"not json":       "{",
		"unknown phase":  `{"generation":1,"key":"` + key + `","phase":"later"}`,
		"short key":      `{"generation":1,"key":"AAAA","phase":"done"}`,
		"gen 0 with key": `{"generation":0,"key":"` + key + `","phase":"done"}`,
	} {
		t.Run(name, func(t *testing.T) {
			v := newVars()
			v.items[VarPath] = map[string]string{varItem: item}
			v.index[VarPath] = 7
			_, _, _, err := Load(t.Context(), v)
			if err == nil {
				t.Fatal("Load took a malformed Variable")
			}
			if strings.Contains(err.Error(), key[:12]) {
				t.Fatal("the error shows key material")
			}
		})
	}
}

func TestRecord(t *testing.T) {
	v := newVars()
	k, err := Record(t.Context(), v, now)
	if err != nil || k.Generation != 0 || !k.RotatedAt.Equal(now) {
		t.Fatalf("Record = %+v, %v", k, err)
	}
	k, err = Record(t.Context(), v, now.Add(time.Hour))
	if err != nil || !k.RotatedAt.Equal(now) || v.writes != 1 {
		t.Fatalf("a second Record changed the Variable: %+v, %v, %d writes", k, err, v.writes)
	}
}

func TestWriteFile(t *testing.T) {
	next := NewKey()
	tests := []struct {
		name  string
		held  []string // nil: no file
		keys  Keys
		wrote bool
		want  []string
	}{
		{"new server, done", nil, Keys{Generation: 1, Key: next, Phase: PhaseDone}, true, []string{next}},
		{"new server, installing", nil, Keys{Generation: 1, Key: next, Phase: PhaseInstall}, true, []string{initial, next}},
		{"new server, switching", nil, Keys{Generation: 1, Key: next, Phase: PhaseUse}, true, []string{next, initial}},
		{"down through the rotation", []string{initial}, Keys{Generation: 1, Key: next, Phase: PhaseDone}, true, []string{next}},
		{"up to date", []string{next}, Keys{Generation: 1, Key: next, Phase: PhaseDone}, false, []string{next}},
		{"Nomad's own order kept", []string{initial, next}, Keys{Generation: 1, Key: next, Phase: PhaseUse}, false, []string{initial, next}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, KeyringFile)
			if tt.held != nil {
				os.MkdirAll(filepath.Dir(path), 0o700)
				b, _ := json.Marshal(tt.held)
				os.WriteFile(path, b, 0o600)
			}
			wrote, err := WriteFile(dir, tt.keys, initial)
			if err != nil || wrote != tt.wrote {
				t.Fatalf("WriteFile = %v, %v; want %v", wrote, err, tt.wrote)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			json.Unmarshal(b, &got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("the file holds other keys, or in another order")
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v; want 0600", fi.Mode().Perm())
			}
		})
	}
}

func TestHeal(t *testing.T) {
	next := NewKey()
	done := Keys{Generation: 1, Key: next, Phase: PhaseDone}
	t.Run("a server down through the rotation", func(t *testing.T) {
		local := newRing(1, initial)
		did, err := Heal(local, done, initial)
		if err != nil || did == "" {
			t.Fatalf("Heal = %q, %v", did, err)
		}
		if !slices.Equal(local.servers[0].keys, []string{next}) {
			t.Fatalf("the server does not hold the new key only")
		}
	})
	t.Run("a healthy server", func(t *testing.T) {
		local := newRing(3, next)
		did, err := Heal(local, done, initial)
		if err != nil || did != "" || !slices.Equal(local.calls, []string{"list"}) {
			t.Fatalf("Heal = %q, %v, calls %v; want a listing only", did, err, local.calls)
		}
	})
	t.Run("installing is the rotation's", func(t *testing.T) {
		local := newRing(1, initial)
		did, err := Heal(local, Keys{Generation: 1, Key: next, Phase: PhaseInstall}, initial)
		if err != nil || did != "" || len(local.calls) != 0 {
			t.Fatalf("Heal = %q, %v, calls %v; want nothing", did, err, local.calls)
		}
	})
}

func TestCurrent(t *testing.T) {
	next := NewKey()
	tests := []struct {
		name string
		held []string // nil: no file
		keys Keys
		want bool
	}{
		{"no file", nil, Keys{Generation: 1, Key: next, Phase: PhaseDone}, false},
		{"installing", nil, Keys{Generation: 1, Key: next, Phase: PhaseInstall}, true},
		{"done", []string{next}, Keys{Generation: 1, Key: next, Phase: PhaseDone}, true},
		{"done, previous kept", []string{next, initial}, Keys{Generation: 1, Key: next, Phase: PhaseDone}, false},
		{"switching", []string{next, initial}, Keys{Generation: 1, Key: next, Phase: PhaseUse}, true},
		{"down through it", []string{initial}, Keys{Generation: 1, Key: next, Phase: PhaseDone}, false},
		{"generation 0", []string{initial}, Keys{Phase: PhaseDone}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.held != nil {
				path := filepath.Join(dir, KeyringFile)
				os.MkdirAll(filepath.Dir(path), 0o700)
				b, _ := json.Marshal(tt.held)
				os.WriteFile(path, b, 0o600)
			}
			if got := Current(dir, tt.keys, initial); got != tt.want {
				t.Errorf("Current = %v; want %v", got, tt.want)
			}
		})
	}
}

func TestDue(t *testing.T) {
	month := 30 * 24 * time.Hour
	done := Keys{Generation: 1, Key: NewKey(), Phase: PhaseDone, RotatedAt: now.Add(-month)}
	cut := Keys{Generation: 2, Key: NewKey(), Previous: done.Key, Phase: PhaseUse, RotatedAt: now.Add(-time.Minute)}
	stuck := cut
	stuck.RotatedAt = now.Add(-StuckAfter - time.Second)
	fresh := Keys{Phase: PhaseDone, RotatedAt: now.Add(-time.Hour)}
	tests := []struct {
		name     string
		keys     Keys
		every    time.Duration
		caHolder bool
		recorded uint32 // by the cluster state
		want     Action
	}{
		{"due, on the CA holder", done, month, true, 1, Rotate},
		{"due, on another server", done, month, false, 1, Wait},
		{"not due yet", fresh, month, true, 0, Wait},
		{"schedule off", done, 0, true, 1, Wait},
		{"never recorded", Keys{Phase: PhaseDone}, time.Hour, true, 0, Wait},
		{"cut short, on the CA holder", cut, month, true, 1, Resume},
		{"cut short, on another server", cut, month, false, 1, Wait},
		{"stuck, on another server", stuck, month, false, 1, Resume},
		{"cut short, schedule off", cut, 0, true, 1, Resume},
		{"Variable lost, on the CA holder", Keys{Phase: PhaseDone}, 0, true, 3, Rotate},
		{"Variable lost, on another server", Keys{Phase: PhaseDone}, 0, false, 3, Wait},
		{"older snapshot mid-rotation", cut, month, true, 4, Rotate},
	}
	for _, tt := range tests {
		if got := Due(tt.keys, now, tt.every, tt.caHolder, tt.recorded); got != tt.want {
			t.Errorf("%s: Due = %v; want %v", tt.name, got, tt.want)
		}
	}
}

// silentRing fails the install as serf does when a server it counts does
// not answer.
type silentRing struct{ *fakeRing }

func (s *silentRing) InstallKey(key string) (*api.KeyringResponse, error) {
	return nil, errors.New("Unexpected response code: 500 (2/3 nodes reported success)")
}

// TestRotateAfterLostKeys rotates when Nomad lost the Variable, or holds
// an older one, than the generation the cluster state records: the next
// generation comes after the recorded one and every server ends with the
// new key only.
func TestRotateAfterLostKeys(t *testing.T) {
	inUse := NewKey() // generation 3's, which Nomad no longer records
	for name, held := range map[string]*Keys{
		"deleted":     nil,
		"older, done": {Generation: 1, Key: NewKey(), Phase: PhaseDone, RotatedAt: now},
		"older, cut":  {Generation: 2, Key: NewKey(), Phase: PhaseUse, RotatedAt: now},
	} {
		t.Run(name, func(t *testing.T) {
			v, r := newVars(), newRing(3, inUse)
			if held != nil {
				if _, err := store(t.Context(), v, *held, 0); err != nil {
					t.Fatal(err)
				}
			}
			rot := rotation(v, r)
			rot.After = 3
			k, err := rot.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if k.Generation != 4 || k.Phase != PhaseDone {
				t.Fatalf("Run = generation %d, %s; want 4, done", k.Generation, k.Phase)
			}
			for i, s := range r.servers {
				if !slices.Equal(s.keys, []string{k.Key}) {
					t.Errorf("server %d does not hold the new key only", i)
				}
			}
		})
	}
}

// FuzzLoad feeds the Variable's item, which anyone holding a token that
// may write Variables could set, to Load: it never panics, and what it
// takes is valid, gives a ring of well-formed keys, and stores again.
func FuzzLoad(f *testing.F) {
	f.Add(`{"generation":1,"key":"` + NewKey() + `","phase":"done","rotated_at":"2026-12-07T12:00:00Z"}`)
	f.Add(`{"generation":2,"key":"` + NewKey() + `","previous":"` + NewKey() + `","phase":"install"}`)
	f.Add(`{"generation":0,"phase":"done"}`)
	f.Add(`{"phase":"use","key":"AAAA"}`)
	f.Fuzz(func(t *testing.T, item string) {
		v := newVars()
		v.items[VarPath] = map[string]string{varItem: item}
		v.index[VarPath] = 1
		k, _, ok, err := Load(t.Context(), v)
		if err != nil {
			return
		}
		if !ok {
			t.Fatal("an existing Variable was taken as missing")
		}
		for _, key := range k.Ring(initial) {
			if checkKey(key) != nil {
				t.Fatalf("the ring of %+v holds a malformed key", k.Phase)
			}
		}
		if _, err := store(t.Context(), v, k, 1); err != nil {
			t.Fatalf("keys Load took do not store again: %v", err)
		}
	})
}
