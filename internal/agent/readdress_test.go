package agent

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// readdressCluster starts three servers and a client, each joining all the
// others, and waits until each has written Nomad's configuration. It
// returns the plan they hold.
func readdressCluster(t *testing.T) (*cluster, plan.Plan) {
	c := newCluster(t)
	c.startN(4, func(i int, o *Options) {
		o.Config.Join = []string{c.addr(0), c.addr(1), c.addr(2), c.addr(3)}
		if i == 3 {
			o.Config.Role = "client"
		}
	})
	waitFor(t, 30*time.Second, "every node to write Nomad's configuration", func() bool {
		for _, n := range c.nodes {
			if n.agent.Status().Phase != status.PhaseConfigured {
				return false
			}
		}
		return true
	})
	return c, *planOf(c.nodes[0])
}

// nodeOf returns the node of c whose ID is id.
func (c *cluster) nodeOf(id string) int {
	return slices.IndexFunc(c.nodes, func(n *testNode) bool { return n.agent.ID() == id })
}

// A server that starts again on another address, the CA holder here, is
// recorded there by a successor plan on every node, which changes nothing
// else, and Nomad's configuration on every node names it there.
func TestServerReaddress(t *testing.T) {
	c, p1 := readdressCluster(t)
	i := c.nodeOf(p1.CAHolder)
	moved := c.nodes[i]
	moved.stop()
	opts := moved.opts
	opts.Config.Bind = c.addr(9)
	c.nodes[i] = c.start(opts)

	want, err := plan.Readdress(p1, map[string]string{p1.CAHolder: c.addr(9)})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "every node to record the CA holder at "+c.addr(9), func() bool {
		for _, n := range c.nodes {
			if p := planOf(n); p == nil || !p.Equal(want) {
				return false
			}
		}
		return true
	})
	// Each follows the successor at its next look, rewriting Nomad's
	// configuration.
	waitFor(t, 30*time.Second, "every node's Nomad configuration to name the CA holder at "+c.addr(9)+" only", func() bool {
		for _, n := range c.nodes {
			hcl := strings.Join(slices.Collect(maps.Values(filesUnder(t, n.agent.paths.NomadConfigDir()))), "\n")
			if !strings.Contains(hcl, `"`+c.addr(9)+":") || strings.Contains(hcl, `"`+c.addr(i)+":") {
				return false
			}
		}
		return true
	})
	for _, n := range c.nodes {
		if s := n.agent.Status(); s.Phase != status.PhaseConfigured || !slices.Contains(s.Plan.ServerAddresses, c.addr(9)) {
			t.Errorf("%s: phase %s, plan %+v", n.opts.Config.Name, s.Phase, s.Plan)
		}
	}
}

// nopHandler is a gossip.Handler that ignores everything.
type nopHandler struct{}

func (nopHandler) HandleMessage(string, []byte)  {}
func (nopHandler) MergeRemoteState([]byte, bool) {}
func (nopHandler) MembersChanged()               {}
func (nopHandler) LocalState(bool) []byte        { return nil }

// A holder of the gossip key that announces a server that is down, under
// its name and with a copy of its ID, identity key and endorsement, from
// another address, does not get the plan to record the server there: the
// server would have to promise it with its own identity key.
func TestServerReaddressNeedsTheServer(t *testing.T) {
	c, p1 := readdressCluster(t)
	var victim plan.Server
	for _, s := range p1.Servers {
		if s.ID != p1.CAHolder && s.ID != p1.Servers[0].ID {
			victim = s
		}
	}
	v := c.nodes[c.nodeOf(victim.ID)]
	var meta gossip.Meta
	for _, m := range c.nodes[3].agent.tr.Members() {
		if m.Name == victim.Name {
			meta = m.Meta
		}
	}
	v.stop()
	waitFor(t, 30*time.Second, victim.Name+" to be seen down", func() bool {
		for _, n := range c.nodes {
			if n != v && slices.ContainsFunc(n.agent.tr.Members(), func(m gossip.Member) bool {
				return m.Name == victim.Name && m.State == gossip.StateAlive
			}) {
				return false
			}
		}
		return true
	})
	rogue, err := gossip.Start(gossip.Config{Name: victim.Name, BindAddr: c.addr(20), Key: c.token.GossipKey(),
		Label: c.token.GossipLabel(), Meta: meta, Handler: nopHandler{}, Tuning: fastGossip})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rogue.Shutdown() })
	if joined, err := rogue.Join([]string{c.addr(0), c.addr(1), c.addr(2), c.addr(3)}); joined == 0 {
		t.Fatalf("the copy could not join: %v", err)
	}
	coord := c.nodes[c.nodeOf(p1.Servers[0].ID)]
	waitFor(t, 30*time.Second, "the first server to see the copy at "+c.addr(20), func() bool {
		return slices.ContainsFunc(coord.agent.tr.Members(), func(m gossip.Member) bool {
			return m.Name == victim.Name && m.Address == c.addr(20) && m.State == gossip.StateAlive
		})
	})
	// Proposals come every second and time out after 3: give several
	// their chance.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range c.nodes {
			if n == v {
				continue
			}
			if p := planOf(n); p == nil || !p.Equal(p1) {
				t.Fatalf("%s adopted %+v; want the plan of epoch %d unchanged", n.opts.Config.Name, p, p1.Epoch)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if w := coord.agent.Status().Warnings; !slices.ContainsFunc(w, func(s string) bool {
		return strings.Contains(s, "server "+victim.Name+" at "+c.addr(20)) && strings.Contains(s, "did not agree to record the new address")
	}) {
		t.Errorf("the first server's warnings do not say that the new address was not agreed: %q", w)
	}
}
