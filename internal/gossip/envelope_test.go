package gossip

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/hashicorp/memberlist"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		e    envelope
	}{
		{"direct", envelope{kind: kindDirect, from: "n1", payload: []byte("hello")}},
		{"direct empty", envelope{kind: kindDirect, from: "n1", payload: []byte{}}},
		{"broadcast", envelope{kind: kindBroadcast, from: "node-b", id: 0x0102030405060708, payload: []byte{0, 1, 2}}},
		{"leave", envelope{kind: kindLeave, from: strings.Repeat("n", MaxNameLen), id: 42, payload: []byte{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.e.encode(nil)
			got, err := decodeEnvelope(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if diff := cmp.Diff(tt.e, got, cmp.AllowUnexported(envelope{})); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeEnvelopeErrors(t *testing.T) {
	bc := envelope{kind: kindBroadcast, from: "n1", id: 7, payload: []byte("p")}.encode(nil)
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "truncated header"},
		{"one byte", []byte{1}, "truncated header"},
		{"version", []byte{4, 1, 1, 'a'}, "unknown format version 4"},
		{"the earlier signed format", append([]byte{2, 1, 1, 'a'}, make([]byte, 64)...), "unknown format version 2"},
		{"signed, truncated", []byte{3, 1, 1, 'a'}, "truncated signature"},
		{"signed without a send time", append([]byte{3, 2, 1, 'a', 0, 0, 0, 0, 0, 0, 0, 1}, make([]byte, 64)...), "truncated send time"},
		{"signed direct without a recipient", append([]byte{3, 1, 1, 'a'}, make([]byte, 64)...), "recipient: truncated"},
		{"signed direct with an empty recipient", append([]byte{3, 1, 1, 'a', 0}, make([]byte, 64)...), "recipient: empty"},
		{"kind 0", []byte{1, 0, 1, 'a'}, "unknown kind 0"},
		{"kind 4", []byte{1, 4, 1, 'a'}, "unknown kind 4"},
		{"no name length", []byte{1, 1}, "sender: truncated"},
		{"empty name", []byte{1, 1, 0, 'x'}, "sender: empty"},
		{"name cut", []byte{1, 1, 5, 'a', 'b'}, "sender: truncated"},
		{"long name", append([]byte{1, 1, MaxNameLen + 1}, bytes.Repeat([]byte{'a'}, MaxNameLen+1)...), "over 64"},
		{"non-minimal name length", []byte{1, 1, 0x81, 0x00, 'a'}, "shortest form"},
		{"bad UTF-8 name", []byte{1, 1, 1, 0xff}, "not valid UTF-8"},
		{"control in name", []byte{1, 1, 1, 0x07}, "control character"},
		{"broadcast without ID", bc[:6], "truncated message ID"},
		{"leave with payload", append(envelope{kind: kindLeave, from: "n1", id: 1}.encode(nil), 'x'), "leave message with a payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeEnvelope(tt.in)
			if err == nil {
				t.Fatal("decode succeeded")
			}
			if !strings.HasPrefix(err.Error(), "gossip: envelope: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want %q", err, tt.want)
			}
		})
	}
}

func TestSeenSet(t *testing.T) {
	var s seenSet
	if !s.add(1) || s.add(1) {
		t.Fatal("add(1) twice: want new, then seen")
	}
	for i := uint64(2); i <= seenWindow; i++ {
		s.add(i)
	}
	if s.add(1) {
		t.Fatal("1 forgotten too early")
	}
	s.add(seenWindow + 1) // pushes 1 out
	if !s.add(1) {
		t.Fatal("1 still remembered after the window moved on")
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(envelope{kind: kindDirect, from: "n1", payload: []byte("hi")}.encode(nil))
	f.Add(envelope{kind: kindBroadcast, from: "n2", id: 99, payload: []byte("plan")}.encode(nil))
	f.Add(envelope{kind: kindLeave, from: "n3", id: 5}.encode(nil))
	f.Add(envelope{kind: kindBroadcast, from: "n2", id: 99, sent: 1764590400000, payload: []byte("plan")}.encode(testIdentity(1)))
	f.Add(envelope{kind: kindDirect, from: "n2", to: "n1", sent: -1, payload: []byte("x")}.encode(testIdentity(2)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		enc := e.encode(nil)
		if e.sig != nil {
			enc = append(e.body(true), e.sig...)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, enc)
		}
		e2, err := decodeEnvelope(enc)
		if err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v", err)
		}
		if diff := cmp.Diff(e, e2, cmp.AllowUnexported(envelope{})); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

// testIdentity returns a fixed identity key for seed.
func testIdentity(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func TestSignedEnvelope(t *testing.T) {
	key := testIdentity(1)
	e := envelope{kind: kindBroadcast, from: "n1", id: 7, sent: 1764590400123, payload: []byte("plan")}
	b := e.encode(key)
	got, err := decodeEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.from != "n1" || got.id != 7 || got.sent != e.sent || string(got.payload) != "plan" || !ed25519.Verify(key.Public().(ed25519.PublicKey), got.signed, got.sig) {
		t.Fatalf("decoded %+v; want the fields and a valid signature", got)
	}
	if _, err := decodeEnvelope(b[:40]); err == nil {
		t.Error("a truncated signed envelope decoded")
	}
}

// A node that signs drops messages that are unsigned, from a sender it
// does not know, not signed by the key its sender announces, received
// before or sent outside the replay window; a spoofed leave marks nobody as
// leaving.
func TestSpoofedSendersAreDropped(t *testing.T) {
	ka, kc := testIdentity(1), testIdentity(3)
	signed := func(c *Config, k ed25519.PrivateKey) {
		c.Identity = k
		c.Meta.Identity = k.Public().(ed25519.PublicKey)
	}
	a := startNode(t, "a", func(c *Config) { signed(c, ka) })
	b := startNode(t, "b", func(c *Config) { signed(c, testIdentity(2)) })
	if n, err := b.Join([]string{a.addr()}); n != 1 {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b to know a", func() error {
		if _, ok := b.members.get("a"); !ok {
			return errors.New("not yet")
		}
		return nil
	})
	now := time.Now().UnixMilli()
	first := envelope{kind: kindDirect, from: "a", to: "b", sent: now, payload: []byte("1")}.encode(ka)
	bc := envelope{kind: kindBroadcast, from: "a", id: 6, sent: now, payload: []byte("6")}.encode(ka)
	window := ReplayWindow.Milliseconds()
	tests := []struct {
		name    string
		msg     []byte
		arrives bool
	}{
		{"signed by its sender", first, true},
		{"unsigned", envelope{kind: kindDirect, from: "a", payload: []byte("2")}.encode(nil), false},
		{"signed by another key", envelope{kind: kindDirect, from: "a", to: "b", sent: now, payload: []byte("3")}.encode(kc), false},
		{"from a stranger", envelope{kind: kindDirect, from: "z", to: "b", sent: now, payload: []byte("4")}.encode(kc), false},
		{"a broadcast signed by another key", envelope{kind: kindBroadcast, from: "a", id: 5, sent: now, payload: []byte("5")}.encode(kc), false},
		{"replayed", first, false},
		{"addressed to another node", envelope{kind: kindDirect, from: "a", to: "c", sent: now, payload: []byte("10")}.encode(ka), false},
		{"the same payload sent again", envelope{kind: kindDirect, from: "a", to: "b", sent: now + 1, payload: []byte("1")}.encode(ka), true},
		{"a broadcast", bc, true},
		{"a relayed copy of the broadcast", bc, false},
		{"sent just within the window", envelope{kind: kindDirect, from: "a", to: "b", sent: now - window + 60_000, payload: []byte("7")}.encode(ka), true},
		{"sent before the window", envelope{kind: kindDirect, from: "a", to: "b", sent: now - window - 60_000, payload: []byte("8")}.encode(ka), false},
		{"sent after the window", envelope{kind: kindDirect, from: "a", to: "b", sent: now + window + 60_000, payload: []byte("9")}.encode(ka), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(b.h.messages())
			b.receive(tt.msg)
			if got := len(b.h.messages()) > before; got != tt.arrives {
				t.Errorf("delivered %v, want %v", got, tt.arrives)
			}
		})
	}
	if m, ok := b.LastStale(); !ok || m.From != "a" || m.Sent.UnixMilli() != now+window+60_000 {
		t.Errorf("LastStale = %+v, %v; want the message sent after the window", m, ok)
	}
	b.receive(envelope{kind: kindLeave, from: "a", id: 9, sent: now}.encode(kc))
	if m, _ := b.members.get("a"); m.State != StateAlive {
		t.Errorf("a spoofed leave marked a %s", m.State)
	}
}

// TestRefusedMembers: once a node refuses a member (the cluster evicted
// it), the member is listed as evicted, its messages are dropped, its
// address is no member's, and a node it was unknown to does not take it in.
func TestRefusedMembers(t *testing.T) {
	signed := func(k ed25519.PrivateKey) func(*Config) {
		return func(c *Config) {
			c.Identity = k
			c.Meta.Identity = k.Public().(ed25519.PublicKey)
		}
	}
	ka, kc := testIdentity(1), testIdentity(3)
	a := startNode(t, "a", signed(ka))
	b := startNode(t, "b", signed(testIdentity(2)))
	c := startNode(t, "c", signed(kc))
	joinAll(t, a, b, c)
	cm, _ := b.members.get("c")
	refuseC := func(m Meta) bool { return m.ID == cm.Meta.ID }
	now := time.Now().UnixMilli()
	msg := func(id uint64) []byte {
		return envelope{kind: kindDirect, from: "c", to: "b", sent: now + int64(id), payload: []byte("from c")}.encode(kc)
	}
	before := len(b.h.messages())
	b.receive(msg(1))
	if len(b.h.messages()) != before+1 {
		t.Fatal("c's message did not arrive before c was refused")
	}
	changes := b.h.changes.Load()
	b.SetRefused(refuseC)
	waitFor(t, 2*time.Second, "MembersChanged after SetRefused", func() error {
		if b.h.changes.Load() == changes {
			return errors.New("not called")
		}
		return nil
	})
	if m, _ := b.members.get("c"); m.State != StateEvicted {
		t.Errorf("c is %s in get, want evicted", m.State)
	}
	for _, m := range b.Members() {
		if want := map[bool]State{true: StateEvicted, false: StateAlive}[m.Name == "c"]; m.State != want {
			t.Errorf("member %s is %s, want %s", m.Name, m.State, want)
		}
	}
	b.receive(msg(2))
	if len(b.h.messages()) != before+1 {
		t.Error("a message of the evicted c arrived")
	}
	if err := (alive{b.Node}).NotifyAlive(&memberlist.Node{Name: "c", Meta: mustMeta(t, cm.Meta)}); err == nil || !strings.Contains(err.Error(), "evicted") {
		t.Errorf("NotifyAlive of the evicted c = %v", err)
	}
	if err := (alive{b.Node}).NotifyAlive(&memberlist.Node{Name: "a", Meta: mustMeta(t, Meta{ID: uuid.NewString(), Role: "auto"})}); err != nil {
		t.Errorf("NotifyAlive of another node = %v", err)
	}
	b.SetRefused(nil)
	if m, _ := b.members.get("c"); m.State != StateAlive {
		t.Errorf("c is %s after SetRefused(nil), want alive", m.State)
	}
}

func mustMeta(t *testing.T, m Meta) []byte {
	t.Helper()
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A signed message that arrives before its sender is a known member waits
// for it: it is delivered once the sender joins, and dropped, with a word,
// when the sender stays unknown for pendingTTL. What waits is bounded.
func TestMessagesWaitForTheirSender(t *testing.T) {
	signed := func(k ed25519.PrivateKey) func(*Config) {
		return func(c *Config) {
			c.Identity = k
			c.Meta.Identity = k.Public().(ed25519.PublicKey)
		}
	}
	kc := testIdentity(3)
	b := startNode(t, "b", signed(testIdentity(2)))
	now := time.Now().UnixMilli()
	early := envelope{kind: kindDirect, from: "c", to: "b", sent: now, payload: []byte("early")}.encode(kc)
	stranger := envelope{kind: kindDirect, from: "z", to: "b", sent: now, payload: []byte("from z")}.encode(testIdentity(9))
	b.receive(early)
	b.receive(stranger)
	if len(b.h.messages()) != 0 {
		t.Fatal("a message from an unknown sender was delivered at once")
	}
	c := startNode(t, "c", signed(kc))
	if n, err := c.Join([]string{b.addr()}); n != 1 {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the early message to be delivered once c is known", func() error {
		for _, m := range b.h.messages() {
			if m.From == "c" && m.Payload == "early" {
				return nil
			}
		}
		return errors.New("not yet")
	})
	waitFor(t, 5*time.Second, "the stranger's message to be dropped with a word", func() error {
		for _, r := range b.logs.all() {
			if strings.Contains(r.Msg, "dropped a message from=z") && strings.Contains(r.Msg, "its sender is not a member this node knows") {
				return nil
			}
		}
		return errors.New("not yet")
	})
	if slices.ContainsFunc(b.h.messages(), func(m message) bool { return m.From == "z" }) {
		t.Error("the stranger's message was delivered")
	}
	if b.waiting.waiting() {
		t.Error("messages still wait")
	}

	var p pending
	at := time.Now()
	for i := range maxPending {
		if !p.park("x", []byte{byte(i)}, at) {
			t.Fatalf("message %d was not kept", i)
		}
	}
	if p.park("x", []byte{1}, at) {
		t.Error("more than maxPending messages wait")
	}
	if p.park("y", make([]byte, maxPendingBytes), at.Add(pendingTTL)) != true {
		t.Error("expired messages still count against the bounds")
	}
}
