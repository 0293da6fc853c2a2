package gossip

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestJoinErrors(t *testing.T) {
	a := &JoinError{Seed: "a:1", Kind: JoinUnreachable, Err: errors.New("x")}
	b := &JoinError{Seed: "b:1", Kind: JoinRejected, Err: errors.New("y")}
	other := errors.New("other")
	tests := []struct {
		name string
		err  error
		want []error
	}{
		{"nil", nil, nil},
		{"one", a, []error{a}},
		{"joined", errors.Join(a, b), []error{a, b}},
		{"not Join's", other, []error{other}},
	}
	for _, tt := range tests {
		got := JoinErrors(tt.err)
		if len(got) != len(tt.want) {
			t.Errorf("%s: JoinErrors = %v, want %v", tt.name, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%s: JoinErrors[%d] = %v, want %v", tt.name, i, got[i], tt.want[i])
			}
		}
	}
}

func TestJoinErrorMessages(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		err  *JoinError
		want string
	}{
		{&JoinError{Seed: "127.0.0.9:4650", Kind: JoinUnreachable, Err: refused},
			"gossip: cannot reach seed 127.0.0.9:4650: connection refused"},
		{&JoinError{Seed: "h:4650", Kind: JoinUnreachable, Err: &net.DNSError{Err: "no such host", Name: "h"}},
			"gossip: cannot reach seed h:4650: lookup h: no such host"},
		{&JoinError{Seed: "127.0.0.2:4650", Kind: JoinRejected, Err: errors.New("EOF")},
			"gossip: seed 127.0.0.2:4650 rejected us: the join token does not match that node's cluster, or it is not a nomad-bootstrapd agent"},
		{&JoinError{Seed: "127.0.0.1:4650", Kind: JoinNameConflict, Err: &conflictError{name: "n1", addr: "127.0.0.2:4650"}},
			`gossip: the cluster already has a node named "n1" at 127.0.0.2:4650 (seen through seed 127.0.0.1:4650); give this node a unique name`},
		{&JoinError{Seed: "s:1", Kind: JoinErrorKind(9), Err: errors.New("boom")},
			"gossip: joining seed s:1 failed: boom"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q\nwant      %q", got, tt.want)
		}
		if !errors.Is(tt.err, tt.err.Err) {
			t.Errorf("%v does not unwrap to its cause", tt.err)
		}
	}
	if got := fmt.Sprint(JoinRejected, JoinErrorKind(7)); got != "rejected JoinErrorKind(7)" {
		t.Errorf("kind names: %q", got)
	}
}

func TestClassifyJoin(t *testing.T) {
	// A seed that listens: errors after the connection are rejections.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	listening := ln.Addr().String()
	tests := []struct {
		name     string
		addr     string
		err      error
		kind     JoinErrorKind
		contains string
	}{
		// The seed came up between memberlist's dial and ours: still a
		// failure to connect, never a rejection.
		{"refused dial, seed listening now", listening,
			fmt.Errorf("failed to join %s: dial tcp %s: connect: connection refused", listening, listening),
			JoinUnreachable, "connection refused"},
		{"dial timeout", listening,
			fmt.Errorf("failed to join %s: dial tcp %s: i/o timeout", listening, listening),
			JoinUnreachable, "i/o timeout"},
		{"name that does not resolve", "nosuch.invalid:4650",
			errors.New("failed to resolve nosuch.invalid:4650: lookup nosuch.invalid: no such host"),
			JoinUnreachable, "no such host"},
		{"stream closed by the seed", listening,
			fmt.Errorf("failed to join %s: EOF", listening),
			JoinRejected, "rejected us"},
		{"no answer", listening,
			fmt.Errorf("failed to join %s: read tcp 127.0.0.1:5->%s: i/o timeout", listening, listening),
			JoinUnreachable, "did not answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classifyJoin(tt.addr, tt.err, nil)
			if got.Kind != tt.kind || !strings.Contains(got.Error(), tt.contains) {
				t.Errorf("classifyJoin(%q) = %s %q; want %s containing %q", tt.err, got.Kind, got.Error(), tt.kind, tt.contains)
			}
		})
	}
}
