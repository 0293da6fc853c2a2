package agent

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/fingerprint"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// subnet hands every test its own 127.0.<n>.0/24, so agents of different
// tests never share an address.
var subnet atomic.Int32

func nextSubnet() int { return 100 + int(subnet.Add(1)) }

func testToken(t testing.TB, seed byte) certs.Token {
	var tok certs.Token
	for i := range tok.ClusterID {
		tok.ClusterID[i] = seed
	}
	for i := range tok.Secret {
		tok.Secret[i] = seed + byte(i)
	}
	return tok
}

func fakeSources(cores, memMB int) fingerprint.Sources {
	return fingerprint.Sources{
		Hostname: func() (string, error) { return "test-host", nil },
		CPU:      func() (int, string, error) { return cores, "Test CPU", nil },
		MemoryMB: func() (int, error) { return memMB, nil },
		Arch:     "amd64",
		OS:       "linux",
	}
}

// fastGossip shortens failure detection so tests about dead nodes are quick.
func fastGossip(c *memberlist.Config) {
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.SuspicionMult = 2
	c.GossipInterval = 50 * time.Millisecond
	c.PushPullInterval = 2 * time.Second
}

// testNode is one agent of a test cluster.
type testNode struct {
	opts   Options
	agent  *Agent
	cancel context.CancelFunc
	done   chan struct{}
	err    error // what Run returned, once done is closed
}

type cluster struct {
	t     *testing.T
	net   int
	token certs.Token
	nodes []*testNode
	// timings are every node's; localTimings unless a test changes them
	// before it starts a node.
	timings Timings
}

func newCluster(t *testing.T) *cluster {
	return &cluster{t: t, net: nextSubnet(), token: testToken(t, 7), timings: localTimings()}
}

func (c *cluster) addr(i int) string { return fmt.Sprintf("127.0.%d.%d", c.net, i+1) }

// options returns node i's options; mutate may change them before start.
func (c *cluster) options(i int) Options { return c.optionsFor(c.t.TempDir(), i) }

// optionsFor returns node i's options with its root under dir.
func (c *cluster) optionsFor(dir string, i int) Options {
	cfg := config.Default()
	cfg.Name = fmt.Sprintf("n%02d", i)
	cfg.Bind = c.addr(i)
	cfg.Join = []string{c.addr(0)}
	cfg.Settle = 300 * time.Millisecond
	cfg.Supervise = config.SuperviseNone
	tm := c.timings
	return Options{
		Config:       cfg,
		Credential:   certs.ServerCredential(c.token),
		Timings:      &tm,
		Root:         filepath.Join(dir, cfg.Name),
		Sources:      fakeSources(2+i%3, 1024*(1+i%4)),
		GossipTuning: fastGossip,
	}
}

// start starts a node with opts and registers its cleanup.
func (c *cluster) start(opts Options) *testNode { return c.startThen(opts, nil) }

// startThen starts a node with opts, calling started, when not nil, between
// the agent's Start and Run. Once the node has stopped, the test fails if
// the agent tried a phase move the transition table forbids.
func (c *cluster) startThen(opts Options, started func(*Agent)) *testNode {
	c.t.Helper()
	guard := &moveGuard{next: slog.DiscardHandler}
	if opts.Logger != nil {
		guard.next = opts.Logger.Handler()
	}
	opts.Logger = slog.New(guard)
	n, err := startNodeThen(opts, started)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		for _, m := range guard.refusals() {
			c.t.Errorf("%s: %s", opts.Config.Name, m)
		}
	})
	c.t.Cleanup(n.stop) // runs first
	return n
}

// startNode starts an agent and runs it until stop.
func startNode(opts Options) (*testNode, error) { return startNodeThen(opts, nil) }

// startNodeThen starts an agent, calls started (when not nil), and runs the
// agent until stop.
func startNodeThen(opts Options, started func(*Agent)) (*testNode, error) {
	a, err := New(opts)
	if err != nil {
		return nil, fmt.Errorf("New(%s): %w", opts.Config.Name, err)
	}
	if err := a.Start(); err != nil {
		return nil, fmt.Errorf("Start(%s): %w", opts.Config.Name, err)
	}
	if started != nil {
		started(a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{opts: opts, agent: a, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		n.err = a.Run(ctx)
	}()
	return n, nil
}

func (n *testNode) stop() {
	n.cancel()
	<-n.done
}

func (c *cluster) startN(count int, mutate func(i int, o *Options)) {
	for i := range count {
		o := c.options(i)
		if mutate != nil {
			mutate(i, &o)
		}
		c.nodes = append(c.nodes, c.start(o))
	}
}

// waitFor polls cond every 50 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// committed returns every node's plan once all of them committed one.
func (c *cluster) waitCommitted(nodes []*testNode, timeout time.Duration) []*status.PlanStatus {
	c.t.Helper()
	var plans []*status.PlanStatus
	waitFor(c.t, timeout, "every node to commit a plan", func() bool {
		plans = plans[:0]
		for _, n := range nodes {
			s := n.agent.Status()
			if s.Plan == nil {
				return false
			}
			plans = append(plans, s.Plan)
		}
		return true
	})
	return plans
}

func TestClusterAgrees(t *testing.T) {
	for _, n := range []int{3, 5, 10} {
		t.Run(fmt.Sprintf("%d agents", n), func(t *testing.T) {
			c := newCluster(t)
			c.startN(n, nil)
			plans := c.waitCommitted(c.nodes, 30*time.Second)
			first := plans[0]
			for i, p := range plans {
				if fmt.Sprint(p) != fmt.Sprint(first) {
					t.Errorf("node %d committed %+v, node 0 committed %+v", i, p, first)
				}
			}
			if first.Epoch != 1 || len(first.Servers) != 3 {
				t.Fatalf("plan %+v: want epoch 1 and 3 servers", first)
			}
			seen := map[string]bool{}
			for _, s := range first.Servers {
				seen[s] = true
			}
			if len(seen) != 3 {
				t.Errorf("servers %v are not distinct", first.Servers)
			}
			if !seen[first.CAHolder] {
				t.Errorf("CA holder %s is not one of the servers %v", first.CAHolder, first.Servers)
			}
			for _, node := range c.nodes {
				if _, err := os.Stat(node.agent.paths.PlanFile()); err != nil {
					t.Errorf("%s: plan not persisted: %v", node.agent.Name(), err)
				}
				s := node.agent.Status()
				if s.Phase < status.PhaseCommitted || s.Phase == status.PhaseDegraded {
					t.Errorf("%s: phase %s (%s), want committed or later", s.Node.Name, s.Phase, s.Reason)
				}
			}
			// A plan needs only min_members of the nodes: the last ones
			// may learn of each other just after it is committed.
			waitFor(t, 10*time.Second, "every node to see every member", func() bool {
				for _, node := range c.nodes {
					if len(node.agent.Status().Members) != n {
						return false
					}
				}
				return true
			})
		})
	}
}

func TestRestartKeepsPlanAndIdentity(t *testing.T) {
	c := newCluster(t)
	c.startN(4, nil)
	before := c.waitCommitted(c.nodes, 20*time.Second)[0]

	// Stop a server that is not the seed, and start it again on the same root.
	var victim int
	for i, n := range c.nodes {
		if i > 0 && n.agent.Status().Node.Role == "server" {
			victim = i
			break
		}
	}
	if victim == 0 {
		t.Fatal("no server besides the seed")
	}
	old := c.nodes[victim]
	oldID := old.agent.ID()
	old.stop()
	restarted := c.start(old.opts)
	if restarted.agent.ID() != oldID {
		t.Errorf("node ID changed across restart: %s -> %s", oldID, restarted.agent.ID())
	}
	if !restarted.agent.idKey.Equal(old.agent.idKey) {
		t.Error("identity key changed across restart")
	}
	s := restarted.agent.Status()
	if s.Plan == nil || fmt.Sprint(s.Plan) != fmt.Sprint(before) {
		t.Fatalf("restarted node's plan %+v, want %+v", s.Plan, before)
	}
	c.nodes[victim] = restarted
	after := c.waitCommitted(c.nodes, 10*time.Second)
	for _, p := range after {
		if fmt.Sprint(p) != fmt.Sprint(before) {
			t.Errorf("plan changed after a restart: %+v, want %+v", p, before)
		}
	}
}

func TestLateJoinerAdoptsPlan(t *testing.T) {
	c := newCluster(t)
	c.startN(3, nil)
	want := c.waitCommitted(c.nodes, 20*time.Second)[0]
	late := c.start(c.options(3))
	got := c.waitCommitted([]*testNode{late}, 10*time.Second)[0]
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("late joiner adopted %+v, want %+v", got, want)
	}
	if role := late.agent.Status().Node.Role; role != "client" {
		t.Errorf("late joiner's role %q, want client", role)
	}
}

func TestTooFewNodesCommitNothing(t *testing.T) {
	c := newCluster(t)
	c.startN(2, nil)
	waitFor(t, 10*time.Second, "both nodes to see each other", func() bool {
		return len(c.nodes[0].agent.Status().Members) == 2 && len(c.nodes[1].agent.Status().Members) == 2
	})
	time.Sleep(time.Second) // several settle periods
	for _, n := range c.nodes {
		s := n.agent.Status()
		if s.Plan != nil {
			t.Fatalf("%s committed %+v with only 2 of 3 nodes", s.Node.Name, s.Plan)
		}
		if s.Phase != status.PhaseElecting || !strings.Contains(s.Reason, "waiting for 3") {
			t.Errorf("%s: phase %s reason %q; want electing, waiting for 3", s.Node.Name, s.Phase, s.Reason)
		}
	}
}

func TestWrongTokenFailsAndWritesNothing(t *testing.T) {
	c := newCluster(t)
	c.startN(1, nil)
	for _, tc := range []struct {
		name  string
		token certs.Token
	}{
		{"another cluster", testToken(t, 9)},
		{"same cluster, another secret", func() certs.Token { tok := c.token; tok.Secret[0] ^= 1; return tok }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := c.options(1)
			o.Credential = certs.ServerCredential(tc.token)
			a, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err = a.Start()
			if err == nil {
				a.shutdown()
				t.Fatal("Start succeeded with a wrong token")
			}
			t.Logf("failed after %v: %v", time.Since(start), err)
			if !strings.Contains(err.Error(), "token does not match") {
				t.Errorf("error %q does not say the token does not match", err)
			}
			if entries, _ := os.ReadDir(o.Root); len(entries) != 0 {
				t.Errorf("root %s holds %d entries after a failed start", o.Root, len(entries))
			}
		})
	}
}

func TestMismatchedSettingsAreReported(t *testing.T) {
	c := newCluster(t)
	c.startN(4, func(i int, o *Options) {
		if i == 3 {
			o.Config.Expect = 5
			o.Config.MinMembers = 0
		}
	})
	plans := c.waitCommitted(c.nodes[:3], 20*time.Second)
	for _, s := range plans[0].Servers {
		if s == "n03" {
			t.Errorf("node with expect=5 elected as a server: %v", plans[0].Servers)
		}
	}
	waitFor(t, 5*time.Second, "a warning about n03", func() bool {
		for _, w := range c.nodes[0].agent.Status().Warnings {
			if strings.Contains(w, "n03") && strings.Contains(w, "expect=5") {
				return true
			}
		}
		return false
	})
	if p := c.nodes[3].agent.Status().Plan; p != nil {
		t.Errorf("node with expect=5 adopted a plan of expect 3: %+v", p)
	}
}

// TestBootstrapSizeSkipsSettle: with bootstrap_size known, the agents elect
// as soon as all of them are alive, even with a settle time that would never
// pass; with one missing they wait for it.
func TestBootstrapSizeSkipsSettle(t *testing.T) {
	slow := func(_ int, o *Options) {
		o.Config.Settle = time.Hour
		o.Config.BootstrapSize = 5
	}
	t.Run("all present", func(t *testing.T) {
		c := newCluster(t)
		c.startN(5, slow)
		plans := c.waitCommitted(c.nodes, 30*time.Second)
		if len(plans[0].Servers) != 3 {
			t.Fatalf("plan %+v: want 3 servers", plans[0])
		}
	})
	t.Run("one missing", func(t *testing.T) {
		c := newCluster(t)
		c.startN(4, slow)
		time.Sleep(2 * time.Second)
		for _, n := range c.nodes {
			if s := n.agent.Status(); s.Plan != nil {
				t.Fatalf("%s committed %+v with 4 of bootstrap_size 5 and settle not over", s.Node.Name, s.Plan)
			}
		}
	})
}

// A join attempt that fails after another node joined this one does not
// hide the election's reason behind "cannot reach any seed".
func TestJoinReasonAfterJoined(t *testing.T) {
	tests := []struct {
		name   string
		joined bool
		want   string
	}{
		{name: "not joined", joined: false, want: "cannot reach any seed yet"},
		{name: "joined meanwhile", joined: true, want: "waiting for 3 members"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &Agent{joined: tt.joined, log: slog.New(slog.DiscardHandler)}
			a.move(status.PhaseJoining, "waiting for 3 members")
			a.setJoinReason("cannot reach any seed yet")
			if _, reason := a.st.View(); reason != tt.want {
				t.Errorf("reason %q, want %q", reason, tt.want)
			}
		})
	}
}

// Two agents never share a state directory: the second is refused before
// it writes anything, and the directory is free again once the first stops.
func TestStateDirectoryIsLocked(t *testing.T) {
	c := newCluster(t)
	first := c.start(c.options(0))
	second := c.options(1)
	second.Root = first.agent.paths.Root
	second.Config.Join = nil
	idBefore, err := os.ReadFile(first.agent.paths.NodeIDFile())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := startNode(second); err == nil {
		n.stop()
		t.Fatal("a second agent started with the state directory of a running one")
	} else if !strings.Contains(err.Error(), "another nomad-bootstrapd agent runs with the state directory") {
		t.Fatalf("second agent: %v; want it refused for the lock", err)
	}
	if id, _ := os.ReadFile(first.agent.paths.NodeIDFile()); !bytes.Equal(id, idBefore) {
		t.Errorf("the refused agent changed node-id: %q -> %q", idBefore, id)
	}
	first.stop()
	n, err := startNode(second)
	if err != nil {
		t.Fatalf("once the first agent stopped: %v", err)
	}
	n.stop()
}

func TestClockWarning(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name string
		m    gossip.StaleMessage
		now  time.Time
		want string
	}{
		{"ahead", gossip.StaleMessage{From: "n2", Sent: at.Add(7 * time.Minute), At: at}, at.Add(time.Minute),
			"messages from n2 carry a send time 7m0s ahead of this node's clock, more than gossip accepts (5m0s), and are dropped: keep the machines' clocks in sync (NTP)"},
		{"behind", gossip.StaleMessage{From: "n3", Sent: at.Add(-time.Hour), At: at}, at,
			"messages from n3 carry a send time 1h0m0s behind this node's clock, more than gossip accepts (5m0s), and are dropped: keep the machines' clocks in sync (NTP)"},
		{"long ago", gossip.StaleMessage{From: "n2", Sent: at.Add(time.Hour), At: at}, at.Add(gossip.ReplayWindow + time.Second), ""},
	} {
		if got := clockWarning(tt.m, tt.now); got != tt.want {
			t.Errorf("%s: clockWarning = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestCertWarning(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	// leaf is a default certificate issued, backdated five minutes, so that
	// left is what remains of it.
	leaf := func(left time.Duration) status.CertStatus {
		notAfter := now.Add(left)
		return status.CertStatus{NotBefore: notAfter.Add(-day - 5*time.Minute), NotAfter: notAfter}
	}
	for _, tt := range []struct {
		name string
		c    status.CertStatus
		want string
	}{
		{"fresh", leaf(day), ""},
		{"renewal due", leaf(12 * time.Hour), ""},
		{"renewal failing for three hours", leaf(9 * time.Hour), ""},
		{"a third left", leaf(8*time.Hour + 5*time.Minute/3), "this node's certificate expires in 8 hours (2026-12-01T18:01:40Z); renewal has not succeeded: see the agent's log"},
		{"five hours left", leaf(5 * time.Hour), "this node's certificate expires in 5 hours (2026-12-01T15:00:00Z); renewal has not succeeded: see the agent's log"},
		{"minutes left", leaf(90 * time.Minute), "this node's certificate expires in 90 minutes (2026-12-01T11:30:00Z); renewal has not succeeded: see the agent's log"},
		{"expired", leaf(-time.Hour), "this node's certificate expired at 2026-12-01T09:00:00Z; renewal has not succeeded: see the agent's log"},
		{"90 days, 40 left", status.CertStatus{NotBefore: now.Add(-50 * day), NotAfter: now.Add(40 * day)}, ""},
		{"90 days, 9 left", status.CertStatus{NotBefore: now.Add(-81 * day), NotAfter: now.Add(9 * day)},
			"this node's certificate expires in 9 days (2026-12-10T10:00:00Z); renewal has not succeeded: see the agent's log"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := certWarning(tt.c, now); got != tt.want {
				t.Errorf("certWarning = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEscrowWarning(t *testing.T) {
	p := *validPlan() // servers a (n1, the CA holder), b, c
	yes, no := func() bool { return true }, func() bool { return false }
	for _, tt := range []struct {
		name  string
		self  string
		phase status.Phase
		has   func() bool
		warns bool
	}{
		{"a running server without the escrow", "b", status.PhaseRunning, no, true},
		{"a running server with it", "b", status.PhaseRunning, yes, false},
		{"a server still starting", "b", status.PhaseStarting, no, false},
		{"the CA holder", "a", status.PhaseRunning, no, false},
		{"a client", "x", status.PhaseRunning, no, false},
	} {
		got := escrowWarning(p, tt.self, tt.phase, tt.has)
		if (got != "") != tt.warns {
			t.Errorf("%s: escrowWarning = %q; want a warning: %v", tt.name, got, tt.warns)
		}
		if tt.warns && !strings.Contains(got, "n1, the CA holder") {
			t.Errorf("%s: %q does not name the CA holder", tt.name, got)
		}
	}
}
