package gossip

import (
	"crypto/ed25519"
	"testing"
	"time"
)

func TestRecentSigs(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ms := now.UnixMilli()
	window := ReplayWindow.Milliseconds()
	msg := func(from string, sig byte, sent int64) envelope {
		return envelope{from: from, sent: sent, sig: sigOf(sig)}
	}
	var r recentSigs
	for _, tt := range []struct {
		name string
		e    envelope
		want int
	}{
		{"new", msg("a", 1, ms), msgFresh},
		{"again", msg("a", 1, ms), msgDuplicate},
		{"the same signature from another sender", msg("b", 1, ms), msgFresh},
		{"another signature", msg("a", 2, ms), msgFresh},
		{"at the window's start", msg("a", 3, ms-window), msgFresh},
		{"at the window's end", msg("a", 4, ms+window), msgFresh},
		{"before the window", msg("a", 5, ms-window-1), msgStale},
		{"after the window", msg("a", 6, ms+window+1), msgStale},
	} {
		if got := r.check(tt.e, now); got != tt.want {
			t.Errorf("%s: check = %d, want %d", tt.name, got, tt.want)
		}
	}

	// Once the window has moved on, what was sent before it is forgotten.
	later := now.Add(ReplayWindow + 2*time.Minute)
	r.check(msg("c", 1, later.UnixMilli()), later)
	if _, ok := r.bySender["b"]; ok {
		t.Error("a sender whose messages all left the window is still remembered")
	}
	if got := len(r.bySender["a"]); got != 1 {
		t.Errorf("%d messages of a remembered, want 1 (the one sent at the window's end)", got)
	}

	// A sender that floods has its record started over; the others keep theirs.
	var f recentSigs
	f.check(msg("other", 1, ms), now)
	for i := range maxRecentPerSender + 1 {
		e := envelope{from: "flood", sent: ms, sig: sigOf(byte(i), byte(i>>8), byte(i>>16))}
		if got := f.check(e, now); got != msgFresh {
			t.Fatalf("message %d: check = %d, want fresh", i, got)
		}
	}
	if got := len(f.bySender["flood"]); got > maxRecentPerSender {
		t.Errorf("%d messages of one sender remembered, want at most %d", got, maxRecentPerSender)
	}
	if f.check(msg("other", 1, ms), now) != msgDuplicate {
		t.Error("a flood by one sender let another sender's message be replayed")
	}
}

// sigOf returns a signature-sized slice that starts with b.
func sigOf(b ...byte) []byte {
	sig := make([]byte, ed25519.SignatureSize)
	copy(sig, b)
	return sig
}
