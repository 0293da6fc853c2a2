package agent

import (
	"encoding/base64"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/clusterstate"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/identity"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// A cluster state that a server publishes reaches every member, and a late
// joiner through push/pull; the node it evicts stops and leaves, is listed
// as evicted, and cannot start again; a state signed by a client-token
// node is adopted by no one.
func TestEvictedNodeLeaves(t *testing.T) {
	c := newCluster(t)
	client := certs.ClientCredential(c.token.Client(time.Time{}))
	c.startN(5, func(i int, o *Options) {
		o.Config.MinMembers = 5
		o.Config.BootstrapSize = 5
		if i >= 3 {
			o.Credential = client
		}
	})
	plans := c.waitCommitted(c.nodes, 30*time.Second)
	server := c.nodeNamed(plans[0].Servers[0])
	victim, bystander := c.nodes[4], c.nodes[3]
	cluster := c.token.ClusterIDString()

	// A client-token node cannot vouch for a state: no endorsement.
	forged, _, _ := clusterstate.State{Cluster: cluster}.Evict(clusterstate.Eviction{ID: server.agent.ID(), Name: server.agent.Name(), At: time.Now()})
	sg, err := clusterstate.Sign(forged, bystander.agent.ID(), bystander.agent.idKey, make([]byte, 64))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes {
		n.agent.ev.post(func() { n.agent.adoptClusterState(bystander.agent.Name(), sg.Encode()) })
	}

	key := identity.Public(victim.agent.idKey)
	st, _, err := clusterstate.State{Cluster: cluster}.Evict(clusterstate.Eviction{
		ID: victim.agent.ID(), Name: victim.agent.Name(), Key: base64.StdEncoding.EncodeToString(key), At: time.Now().UTC(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := server.agent.publishClusterState(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	select {
	case <-victim.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the evicted node is still running 20 s after the state was published")
	}
	if !errors.Is(victim.err, ErrEvicted) {
		t.Fatalf("the evicted node's Run returned %v, want ErrEvicted", victim.err)
	}
	for _, n := range c.nodes[:4] {
		waitFor(t, 10*time.Second, n.agent.Name()+" to hold the cluster state and list the victim as evicted", func() bool {
			s := n.agent.Status()
			if s.Cluster == nil || s.Cluster.Version != 1 || len(s.Cluster.Evicted) != 1 || s.Cluster.Evicted[0].ID != victim.agent.ID() {
				return false
			}
			i := slices.IndexFunc(s.Members, func(m status.MemberStatus) bool { return m.ID == victim.agent.ID() })
			return i >= 0 && s.Members[i].Status == "evicted"
		})
		if _, err := os.Stat(n.agent.paths.ClusterStateFile()); err != nil {
			t.Errorf("%s did not keep the cluster state: %v", n.agent.Name(), err)
		}
		if n.agent.refuses(n.agent.tr.Members()[0].Meta) && n.agent.tr.Members()[0].Meta.ID != victim.agent.ID() {
			t.Errorf("%s refuses a member that is not evicted", n.agent.Name())
		}
	}
	// The evicted node does not start again.
	if _, err := New(victim.opts); !errors.Is(err, ErrEvicted) {
		t.Fatalf("New on the evicted node's root: %v, want ErrEvicted", err)
	}
	// A machine that joins later learns of the eviction in a push/pull.
	late := c.start(c.options(5))
	waitFor(t, 40*time.Second, "the late joiner to hold the cluster state", func() bool {
		s := late.agent.Status()
		return s.Cluster != nil && s.Cluster.Version == 1
	})
}

// nodeNamed returns the cluster's node called name.
func (c *cluster) nodeNamed(name string) *testNode {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.agent.Name() == name {
			return n
		}
	}
	c.t.Fatalf("no node named %s", name)
	return nil
}
