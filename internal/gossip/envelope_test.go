package gossip

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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
			b := tt.e.encode()
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
	bc := envelope{kind: kindBroadcast, from: "n1", id: 7, payload: []byte("p")}.encode()
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "truncated header"},
		{"one byte", []byte{1}, "truncated header"},
		{"version", []byte{2, 1, 1, 'a'}, "unknown format version 2"},
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
		{"leave with payload", append(envelope{kind: kindLeave, from: "n1", id: 1}.encode(), 'x'), "leave message with a payload"},
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
	f.Add(envelope{kind: kindDirect, from: "n1", payload: []byte("hi")}.encode())
	f.Add(envelope{kind: kindBroadcast, from: "n2", id: 99, payload: []byte("plan")}.encode())
	f.Add(envelope{kind: kindLeave, from: "n3", id: 5}.encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		enc := e.encode()
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
