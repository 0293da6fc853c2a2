package agree

import (
	"errors"
	"strings"
	"testing"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

func validPlan() *plan.Plan {
	return &plan.Plan{Epoch: 1, Region: "global", Expect: 3, CAHolder: "a", CAPort: 4651,
		CAFingerprint: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Servers: []plan.Server{
			{ID: "a", Name: "n1", Address: "127.0.0.2"}, {ID: "b", Name: "n2", Address: "127.0.0.3"}, {ID: "c", Name: "n3", Address: "127.0.0.4"},
		}}
}

func TestDecodeMessage(t *testing.T) {
	hash := validPlan().Hash()
	ballot := Ballot{Round: 2, Node: "n1"}
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"prepare", string(Message{Type: MsgPrepare, ID: 1, Ballot: ballot, Plan: validPlan()}.Encode()), true},
		{"propose", string(Message{Type: MsgPropose, ID: 1, Ballot: ballot, Plan: validPlan()}.Encode()), true},
		{"promise", `{"t":"promise","id":3}`, true},
		{"promise with a plan", string(Message{Type: MsgPromise, ID: 3, Accepted: ballot, Plan: validPlan()}.Encode()), true},
		{"ack", `{"t":"ack","id":3}`, true},
		{"ack of protocol 1", `{"v":1,"t":"ack","id":3}`, true},
		{"ack of a newer protocol", `{"v":2,"t":"ack","id":3}`, false},
		{"ack of protocol -1", `{"v":-1,"t":"ack","id":3}`, false},
		{"announce", string(Message{Type: MsgAnnounce, Hash: hash, Epoch: 1}.Encode()), true},
		{"propose without plan", `{"t":"propose","id":1,"b":{"n":1,"c":"n1"}}`, false},
		{"propose without ballot", string(Message{Type: MsgPropose, ID: 1, Plan: validPlan()}.Encode()), false},
		{"prepare without ballot round", `{"t":"prepare","id":1,"b":{"c":"n1"},"p":` + string(encodeJSON(validPlan())) + `}`, false},
		{"promise with a plan but no ballot", string(Message{Type: MsgPromise, ID: 3, Plan: validPlan()}.Encode()), false},
		{"promise with a ballot but no plan", string(Message{Type: MsgPromise, ID: 3, Accepted: ballot}.Encode()), false},
		{"ballot of a long name", string(Message{Type: MsgNack, Ballot: Ballot{Round: 1, Node: strings.Repeat("n", 257)}}.Encode()), false},
		{"commit with invalid plan", `{"t":"commit","p":{"epoch":0}}`, false},
		{"announce without hash", `{"t":"announce"}`, false},
		{"release, no longer spoken", `{"t":"release","h":"` + hash + `"}`, false},
		{"unknown type", `{"t":"elect"}`, false},
		{"not json", `\x00\x01`, false},
		{"empty", ``, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeMessage([]byte(tt.in))
			if (err == nil) != tt.ok {
				t.Errorf("DecodeMessage(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			}
		})
	}
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add(Message{Type: MsgPrepare, ID: 1, Ballot: Ballot{Round: 1, Node: "n1"}, Plan: validPlan()}.Encode())
	f.Add(Message{Type: MsgPromise, ID: 1, Accepted: Ballot{Round: 1, Node: "n1"}, Plan: validPlan()}.Encode())
	f.Add(Message{Type: MsgCommit, Plan: validPlan()}.Encode())
	f.Add([]byte(`{"t":"nack","id":2,"r":"no"}`))
	f.Add([]byte(`{"t":"announce","h":"` + validPlan().Hash() + `","e":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			return
		}
		if _, err := DecodeMessage(m.Encode()); err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
	})
}

func FuzzDecodeState(f *testing.F) {
	f.Add(EncodeState(validPlan()))
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeState(b)
		if err != nil || p == nil {
			return
		}
		if _, err := DecodeState(EncodeState(p)); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
	})
}

func TestDecodeVote(t *testing.T) {
	b1, b2 := Ballot{Round: 1, Node: "n1"}, Ballot{Round: 2, Node: "n2"}
	other := validPlan()
	other.Epoch = 2
	tests := []struct {
		name string
		in   Vote
		ok   bool
	}{
		{"promised only", Vote{Epoch: 1, Promised: b1}, true},
		{"accepted", Vote{Epoch: 1, Promised: b2, Accepted: b1, Plan: validPlan()}, true},
		{"no epoch", Vote{Promised: b1}, false},
		{"accepted above promised", Vote{Epoch: 1, Promised: b1, Accepted: b2, Plan: validPlan()}, false},
		{"ballot without plan", Vote{Epoch: 1, Promised: b1, Accepted: b1}, false},
		{"plan without ballot", Vote{Epoch: 1, Promised: b1, Plan: validPlan()}, false},
		{"plan of another epoch", Vote{Epoch: 1, Promised: b1, Accepted: b1, Plan: other}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeVote(tt.in.Encode())
			if (err == nil) != tt.ok {
				t.Fatalf("DecodeVote error = %v, want ok=%v", err, tt.ok)
			}
			if err == nil && string(got.Encode()) != string(tt.in.Encode()) {
				t.Errorf("DecodeVote = %+v, want %+v", got, tt.in)
			}
		})
	}
	if _, err := DecodeVote([]byte("{")); err == nil {
		t.Error("DecodeVote of malformed JSON succeeded")
	}
}

func FuzzDecodeVote(f *testing.F) {
	f.Add(Vote{Epoch: 1, Promised: Ballot{Round: 2, Node: "n2"}, Accepted: Ballot{Round: 1, Node: "n1"}, Plan: validPlan()}.Encode())
	f.Add([]byte(`{"epoch":1,"promised":{"n":1,"c":"a"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeVote(b)
		if err != nil {
			return
		}
		if _, err := DecodeVote(v.Encode()); err != nil {
			t.Fatalf("re-encoded vote does not decode: %v", err)
		}
	})
}

// TestNewerProtocol: a message or push/pull state of a newer protocol is
// refused with an error that says so, not misread; those of this release,
// and messages of the first, which carried no version, are read.
func TestNewerProtocol(t *testing.T) {
	if m := (Message{Type: MsgAck, ID: 3}).Encode(); !strings.Contains(string(m), `"v":1`) {
		t.Fatalf("a message does not carry its protocol: %s", m)
	}
	for _, tt := range []struct {
		what   string
		decode func([]byte) error
		newer  string
	}{
		{"message", func(b []byte) error { _, err := DecodeMessage(b); return err }, `{"v":7,"t":"state","c":"eA=="}`},
		{"push/pull state", func(b []byte) error { _, err := DecodePush(b); return err }, `{"v":7,"cluster":"eA=="}`},
	} {
		err := tt.decode([]byte(tt.newer))
		var newer *NewerProtocolError
		if !errors.As(err, &newer) || newer.Version != 7 || newer.What != tt.what ||
			!strings.Contains(err.Error(), "protocol 7, newer than this agent's 1") {
			t.Errorf("%s of protocol 7: %v", tt.what, err)
		}
	}
	if _, err := DecodePush(EncodePush(PushState{Cluster: []byte("x")})); err != nil {
		t.Errorf("this release's push/pull state: %v", err)
	}
	if _, err := DecodePush([]byte(`{"cluster":"eA=="}`)); err == nil {
		t.Error("a push/pull state without a version was read")
	}
}
