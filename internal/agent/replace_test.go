package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agree"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/caholder"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/planfile"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// replaceAddr gives the nodes of the replacement tests addresses of their
// own, apart from the other in-process tests' 127.0.x subnets.
func replaceAddr(i int) string { return fmt.Sprintf("127.20.1.%d", i+1) }

// planOf returns a copy of the plan node n holds, or nil.
func planOf(n *testNode) *plan.Plan {
	n.agent.mu.Lock()
	defer n.agent.mu.Unlock()
	if n.agent.plan == nil {
		return nil
	}
	p := n.agent.plan.Clone()
	return &p
}

// TestServerReplacement stops a server of a four-node cluster for good,
// once a server that is not the CA holder and once the CA holder.
func TestServerReplacement(t *testing.T) {
	t.Run("server", func(t *testing.T) { testServerReplacement(t, false, replaceAddr) })
	t.Run("CA holder", func(t *testing.T) {
		testServerReplacement(t, true, func(i int) string { return fmt.Sprintf("127.20.2.%d", i+1) })
	})
}

func testServerReplacement(t *testing.T, caHolder bool, addr func(int) string) {
	c := newCluster(t)
	c.startN(4, func(i int, o *Options) {
		o.Config.Bind = addr(i)
		o.Config.Join = []string{addr(0), addr(1)}
		o.Config.CAFailoverAfter = 500 * time.Millisecond
		o.Config.ServerReplaceAfter = time.Second
	})
	waitFor(t, 30*time.Second, "every node to write Nomad's configuration", func() bool {
		for _, n := range c.nodes {
			if n.agent.Status().Phase != status.PhaseConfigured {
				return false
			}
		}
		return true
	})
	p1 := planOf(c.nodes[0])
	var dead, spare *testNode
	for _, n := range c.nodes {
		switch {
		case !p1.IsServer(n.agent.ID()):
			spare = n
		case (n.agent.ID() == p1.CAHolder) == caHolder && dead == nil:
			dead = n
		}
	}
	if dead == nil || spare == nil {
		t.Fatalf("plan %v: want a server to stop (the CA holder: %v) and a non-server", p1.ServerNames(), caHolder)
	}
	// The cluster has formed once the other servers hold the escrowed CA
	// key: a CA holder lost before that takes the CA with it.
	waitFor(t, 30*time.Second, "the servers to hold the escrowed CA key", func() bool {
		for _, n := range c.nodes {
			if p1.IsServer(n.agent.ID()) && n.agent.ID() != p1.CAHolder {
				if _, err := os.Stat(filepath.Join(n.agent.paths.CADir(), caholder.EscrowFile)); err != nil {
					return false
				}
			}
		}
		return true
	})
	dead.stop() // a server is gone for good
	defer func() {
		if t.Failed() {
			for _, m := range c.nodes {
				s := m.agent.Status()
				t.Logf("%s: %s %s %q", s.Node.Name, s.Phase, s.Reason, s.Warnings)
			}
		}
	}()
	var live []*testNode
	for _, n := range c.nodes {
		if n != dead {
			live = append(live, n)
		}
	}
	waitFor(t, 60*time.Second, "every live node to commit epoch 2", func() bool {
		for _, n := range live {
			if p := planOf(n); p == nil || p.Epoch != 2 {
				return false
			}
		}
		return true
	})
	p2 := *planOf(live[0])
	for _, n := range live[1:] {
		if p := planOf(n); !p.Equal(p2) {
			t.Errorf("%s holds servers %v, %s holds %v", n.agent.Name(), p.ServerNames(), live[0].agent.Name(), p2.ServerNames())
		}
	}
	if p2.IsServer(dead.agent.ID()) || !p2.IsServer(spare.agent.ID()) {
		t.Errorf("epoch 2 servers %v: want %s replaced by %s", p2.ServerNames(), dead.agent.Name(), spare.agent.Name())
	}
	if p2.CAFingerprint != p1.CAFingerprint {
		t.Errorf("epoch 2 changed the CA")
	}
	if want := p1.CAHolder; !caHolder && p2.CAHolder != want {
		t.Errorf("epoch 2 moved the CA holder to %s", p2.CAHolderName())
	}
	var holder *testNode
	for _, n := range live {
		if n.agent.ID() == p2.CAHolder {
			holder = n
		}
	}
	if holder == nil {
		t.Fatalf("epoch 2's CA holder %s is not a live node", p2.CAHolderName())
	}

	// The previous plan is kept as plan.json.bak on every live node.
	for _, n := range live {
		b, err := os.ReadFile(n.agent.paths.PlanFile() + ".bak")
		if err != nil {
			t.Errorf("%s: %v", n.agent.Name(), err)
			continue
		}
		var s planfile.File
		if err := json.Unmarshal(b, &s); err != nil || !s.Plan.Equal(*p1) {
			t.Errorf("%s: plan.json.bak does not hold epoch 1 (%v)", n.agent.Name(), err)
		}
	}

	// Every server of epoch 2 writes a server configuration that joins the
	// new server and not the dead one: the new server after restarting its
	// pipeline, the others in place. The new server asks for the escrowed
	// CA key, which it needs for the ACL tokens and a CA failover.
	serverConf := func(n *testNode) string {
		b, _ := os.ReadFile(filepath.Join(n.agent.paths.NomadConfigDir(), "nomad-bootstrapd-server.hcl"))
		return string(b)
	}
	waitFor(t, 30*time.Second, "every server to join the new server in Nomad's configuration", func() bool {
		for _, n := range live {
			conf := serverConf(n)
			if !strings.Contains(conf, "bootstrap_expect") || !strings.Contains(conf, `"`+spare.agent.advertise+`:4648"`) ||
				strings.Contains(conf, `"`+dead.agent.advertise+`:4648"`) {
				return false
			}
		}
		return true
	})
	waitFor(t, 30*time.Second, "the new server to receive the escrowed CA key", func() bool {
		_, err := os.Stat(filepath.Join(spare.agent.paths.CADir(), caholder.EscrowFile))
		return err == nil
	})

	// The CA holder of epoch 2 holds the CA on disk and serves it; a
	// failover is over, so status warns of nothing.
	waitFor(t, 30*time.Second, "the CA holder to serve the CA without a warning", func() bool {
		s := holder.agent.Status()
		holder.agent.mu.Lock()
		serving := holder.agent.caSrv != nil
		holder.agent.mu.Unlock()
		return serving && len(s.Warnings) == 0
	})
	if _, err := os.Stat(filepath.Join(holder.agent.paths.CADir(), caholder.KeyFile)); err != nil {
		t.Errorf("the CA holder %s keeps no CA key: %v", holder.agent.Name(), err)
	}

	// Restarting a node keeps epoch 2: it is on disk. A restarted CA
	// holder serves the CA again.
	for _, n := range []*testNode{spare, holder} {
		n.stop()
		again := c.start(n.opts)
		waitFor(t, 30*time.Second, "the restarted node to load epoch 2 and write Nomad's configuration", func() bool {
			p := planOf(again)
			return p != nil && p.Equal(p2) && again.agent.Status().Phase == status.PhaseConfigured
		})
		if n == holder {
			again.agent.mu.Lock()
			serving := again.agent.caSrv != nil
			again.agent.mu.Unlock()
			if !serving {
				t.Errorf("the restarted CA holder %s does not serve the CA", n.agent.Name())
			}
		}
	}
}

// TestAdoptOnlySuccessors feeds one agent committed plans through its loop's
// message handler: it persists the plans its protocol adopts (which plans
// those are is internal/agree's TestAdoptOnlySuccessors), keeping the
// previous one as plan.json.bak, and ignores a second plan of its epoch.
func TestAdoptOnlySuccessors(t *testing.T) {
	c := newCluster(t)
	o := c.options(0)
	o.Config.Bind = replaceAddr(0)
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	p1 := *validPlan()
	signAll(c.token, &p1)
	p2 := p1.Clone()
	p2.Epoch, p2.Genesis = 2, p1.Hash()
	p2.Servers[2] = plan.Server{ID: "d", Name: "n4", Address: "127.0.0.5"}
	other := p2.Clone()
	other.Servers[2] = plan.Server{ID: "e", Name: "n5", Address: "127.0.0.6"}
	signAll(c.token, &p2)
	signAll(c.token, &other)
	unsigned := p2.Clone()
	unsigned.Epoch = 3
	unsigned.Signatures = unsigned.Signatures[:1]
	for _, p := range []plan.Plan{p1, p2, other, unsigned} {
		a.onMessage("n9", agree.Message{Type: agree.MsgCommit, Plan: &p})
	}
	if held := a.proto.Plan(); held == nil || !held.Equal(p2) {
		t.Errorf("holds %v, want epoch 2", held)
	}
	saved, err := planfile.Load(a.paths.PlanFile(), a.cred.ClusterIDString(), a.id)
	if err != nil || saved == nil || !saved.Equal(p2) {
		t.Errorf("plan.json holds %v (%v), want epoch 2", saved, err)
	}
	b, err := os.ReadFile(a.paths.PlanFile() + ".bak")
	var s planfile.File
	if err != nil || json.Unmarshal(b, &s) != nil || !s.Plan.Equal(p1) {
		t.Errorf("plan.json.bak does not hold epoch 1: %v", err)
	}
}
