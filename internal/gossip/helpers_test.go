package gossip

import (
	"bytes"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/memberlist"
)

var (
	testKey   = bytes.Repeat([]byte{0x42}, KeySize)
	otherKey  = bytes.Repeat([]byte{0x17}, KeySize)
	testLabel = "nomad-bootstrapd/test-cluster"
)

// message is one HandleMessage call.
type message struct {
	From    string
	Payload string
}

// testHandler records what a Node gives it.
type testHandler struct {
	state []byte // returned by LocalState

	mu      sync.Mutex
	msgs    []message
	remote  []string // MergeRemoteState buffers
	joins   []bool   // their join flags
	changes atomic.Int64
}

func (h *testHandler) HandleMessage(from string, payload []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, message{from, string(payload)})
}

func (h *testHandler) LocalState(bool) []byte { return h.state }

func (h *testHandler) MergeRemoteState(buf []byte, join bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.remote = append(h.remote, string(buf))
	h.joins = append(h.joins, join)
}

func (h *testHandler) MembersChanged() { h.changes.Add(1) }

func (h *testHandler) messages() []message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]message(nil), h.msgs...)
}

func (h *testHandler) remoteStates() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.remote...)
}

// testNode is a started Node with what the test needs to look at.
type testNode struct {
	*Node
	h    *testHandler
	logs *recordHandler
}

// addr returns the node's gossip address on loopback.
func (n testNode) addr() string { return "127.0.0.1:" + strconv.Itoa(n.Port()) }

// startNode starts a node on 127.0.0.1 with a free port. edit changes the
// config first.
func startNode(t *testing.T, name string, edit ...func(*Config)) testNode {
	t.Helper()
	h := &testHandler{state: []byte("state of " + name)}
	logs := &recordHandler{}
	cfg := Config{
		Name:     name,
		BindAddr: "127.0.0.1",
		Key:      testKey,
		Label:    testLabel,
		Meta:     Meta{ID: uuid.NewString(), Role: "auto", Pool: "warm", Zone: "z-" + name, CPUCores: 2, MemoryMB: 2048},
		Handler:  h,
		Logger:   slog.New(logs),
	}
	for _, e := range edit {
		e(&cfg)
	}
	n, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start(%s): %v", name, err)
	}
	t.Cleanup(func() {
		if err := n.Shutdown(); err != nil {
			t.Errorf("Shutdown(%s): %v", name, err)
		}
		if t.Failed() {
			for _, r := range logs.all() {
				t.Logf("%s %s: %s", name, r.Level, r.Msg)
			}
		}
	})
	return testNode{n, h, logs}
}

// fastFailure makes failure detection take well under a second.
func fastFailure(c *Config) {
	c.Tuning = func(mc *memberlist.Config) {
		mc.ProbeInterval = 100 * time.Millisecond
		mc.ProbeTimeout = 50 * time.Millisecond
		mc.GossipInterval = 50 * time.Millisecond
		mc.SuspicionMult = 2
	}
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, still waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// joinAll joins every node to all before it and waits until each sees all
// alive. Joining every earlier node (a push/pull with each) rather than
// only the first makes the test independent of gossip luck: memberlist's
// own alive broadcasts can miss a node, which then learns of it only at the
// next push/pull, 30 s later.
func joinAll(t *testing.T, nodes ...testNode) {
	t.Helper()
	var seeds []string
	for _, n := range nodes {
		if len(seeds) > 0 {
			if got, err := n.Join(seeds); got != len(seeds) || err != nil {
				t.Fatalf("%s: Join = %d, %v", n.LocalName(), got, err)
			}
		}
		seeds = append(seeds, n.addr())
	}
	for _, n := range nodes {
		waitFor(t, 5*time.Second, n.LocalName()+" to see everyone alive", func() error {
			return countState(n.Members(), StateAlive, len(nodes))
		})
	}
}

func countState(members []Member, state State, want int) error {
	got := 0
	for _, m := range members {
		if m.State == state {
			got++
		}
	}
	if got != want {
		return fmt.Errorf("%d members %s, want %d: %+v", got, state, want, members)
	}
	return nil
}

func member(members []Member, name string) (Member, bool) {
	for _, m := range members {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}
