package agent

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestEndorsementsCheck(t *testing.T) {
	tok := testToken(t, 3)
	e := newEndorsements(tok.Client(time.Time{}))
	id := uuid.MustParse("6f1c2b1e-8d2a-4c55-9a53-0c2d5f6e7a81")
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	other := ed25519.NewKeyFromSeed(append(make([]byte, ed25519.SeedSize-1), 1)).Public().(ed25519.PublicKey)
	good := tok.Endorse(id, key)
	for _, tt := range []struct {
		name   string
		id     string
		key    []byte
		sig    []byte
		wanted bool
	}{
		{"endorsed", id.String(), key, good, true},
		{"endorsed, checked again", id.String(), key, good, true},
		{"another key", id.String(), other, good, false},
		{"another node", uuid.NewString(), key, good, false},
		{"not a UUID", "node-1", key, good, false},
		{"a short key", id.String(), key[:31], good, false},
		{"a short signature", id.String(), key, good[:63], false},
		{"no endorsement", id.String(), key, nil, false},
		{"by another cluster", id.String(), key, testToken(t, 4).Endorse(id, key), false},
	} {
		if got := e.check(tt.id, tt.key, tt.sig); got != tt.wanted {
			t.Errorf("%s: check = %v, want %v", tt.name, got, tt.wanted)
		}
	}
	for range maxEndorsements + 1 { // the cache starts over and stays right
		e.check(uuid.NewString(), key, good)
	}
	if !e.check(id.String(), key, good) || e.check(id.String(), other, good) {
		t.Error("check went wrong once the cache started over")
	}
}
