package agent

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/discover"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// srvRecords is a DNS SRV name whose records a test changes.
type srvRecords struct {
	mu      sync.Mutex
	targets []string // IP addresses; none: the name does not exist
	port    uint16
	lookups int
}

func (r *srvRecords) set(targets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.targets = targets
}

func (r *srvRecords) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lookups
}

func (r *srvRecords) resolver() discover.Resolver {
	return discover.Resolver{LookupSRV: func(_ context.Context, name string) ([]*net.SRV, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.lookups++
		if name != "_gossip._tcp.cluster.test." || len(r.targets) == 0 {
			return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
		}
		var recs []*net.SRV
		for _, t := range r.targets {
			recs = append(recs, &net.SRV{Target: t + ".", Port: r.port})
		}
		return recs, nil
	}}
}

// Agents whose only seed is a DNS SRV name find the cluster through its
// records: while the name does not resolve, an agent says so and does not
// take itself for the first node; once it does, the agent joins. When the
// records change, a restarted agent follows them.
func TestSRVSeeds(t *testing.T) {
	c := newCluster(t)
	dns := &srvRecords{port: 4650}
	const seed = "dns+srv://_gossip._tcp.cluster.test"
	c.startN(4, func(i int, o *Options) {
		o.Config.Join = nil
		if i > 0 {
			o.Config.Join = []string{seed}
			o.Resolver = dns.resolver()
		}
	})
	waitFor(t, 10*time.Second, "the agents to say that the seed does not resolve", func() bool {
		for _, n := range c.nodes[1:] {
			if s := n.agent.Status(); !strings.Contains(s.Reason, "cannot look the seeds up yet") ||
				!strings.Contains(s.Reason, "looking up "+seed) {
				return false
			}
		}
		return true
	})
	for _, n := range c.nodes {
		if s := n.agent.Status(); s.Plan != nil || len(s.Members) > 1 {
			t.Fatalf("%s: plan %v, %d members before any seed resolved", n.opts.Config.Name, s.Plan, len(s.Members))
		}
	}

	dns.set(c.addr(0))
	c.waitCommitted(c.nodes, 30*time.Second)

	// The records name another node now; the first one leaves.
	dns.set(c.addr(1))
	c.nodes[0].stop()
	last := c.nodes[3]
	last.stop()
	before := dns.count()
	c.nodes[3] = c.start(last.opts)
	waitFor(t, 30*time.Second, "the restarted agent to join through the new record", func() bool {
		s := c.nodes[3].agent.Status()
		alive := 0
		for _, m := range s.Members {
			if m.Status == "alive" {
				alive++
			}
		}
		return alive == 3 && s.Phase >= status.PhaseCommitted
	})
	if dns.count() == before {
		t.Error("the restarted agent did not look the seed up")
	}
}
