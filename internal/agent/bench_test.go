package agent

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip/droptransport"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// benchNet hands every benchmark cluster its own 127.11.<n>.0/24 (real
// loopback) or, at 500 nodes, 127.12+<n>.0.0/16 (in memory): addresses no
// other test of the repository uses.
var benchNet atomic.Int32

// BenchmarkConvergence measures the time from the last agent's start to the
// committed plan on every agent, each agent on its own address. N = 3, 10
// and 100 run real memberlist over loopback UDP and TCP with its LAN
// defaults; N = 500 runs memberlist over an in-memory transport that drops
// packets when a node's queue is full (500 sockets' worth of real gossip in
// one process on two cores mostly measures the scheduler) with WAN
// timings. The settle time is excluded and reported apart. Run it with
// -benchtime 1x: each iteration builds a whole cluster.
func BenchmarkConvergence(b *testing.B) {
	const settle = 500 * time.Millisecond
	for _, n := range []int{3, 10, 100, 500} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			var total, first time.Duration
			var dropped float64
			for range b.N {
				r := convergeOnce(b, n, settle)
				total += r.all
				first += r.first
				dropped += r.dropped
			}
			b.ReportMetric((total / time.Duration(b.N)).Seconds(), "s-to-commit")
			b.ReportMetric((first / time.Duration(b.N)).Seconds(), "s-to-first-commit")
			b.ReportMetric(settle.Seconds(), "s-settle-excluded")
			if n >= 500 {
				b.ReportMetric(dropped/float64(b.N), "dropped-packet-%")
			}
		})
	}
}

// convergence is one run's result.
type convergence struct {
	all, first time.Duration // to the plan on every agent, on the first
	dropped    float64       // percentage of in-memory packets dropped
}

// convergeOnce builds a cluster of n agents and times its agreement.
func convergeOnce(b *testing.B, n int, settle time.Duration) convergence {
	b.StopTimer()
	defer b.StartTimer()
	inMemory := n >= 500
	k := int(benchNet.Add(1))
	addr := func(i int) string { return fmt.Sprintf("127.11.%d.%d", k, i+1) }
	var mem *droptransport.Network
	if inMemory {
		mem = &droptransport.Network{}
		addr = func(i int) string { return fmt.Sprintf("127.%d.%d.%d", 12+k%8, i/250, i%250+1) }
	}
	token := testToken(b, 7)
	dir := b.TempDir()
	var nodes []*testNode
	defer func() {
		// In parallel: one by one, 500 agents take minutes to stop.
		var wg sync.WaitGroup
		for _, nd := range nodes {
			wg.Go(nd.stop)
		}
		wg.Wait()
	}()
	for i := range n {
		cfg := config.Default()
		cfg.Name = fmt.Sprintf("n%03d", i)
		cfg.Bind = addr(i)
		cfg.Join = []string{addr(0)}
		cfg.Settle = settle
		cfg.MinMembers = n
		cfg.Supervise = config.SuperviseNone
		o := Options{
			Config:     cfg,
			Credential: certs.ServerCredential(token),
			Root:       filepath.Join(dir, cfg.Name),
			Sources:    fakeSources(2+i%3, 1024*(1+i%4)),
			// nil: memberlist's LAN defaults, as in production
		}
		if inMemory {
			tr, err := mem.NewTransport(fmt.Sprintf("%s:%d", cfg.Bind, cfg.Port))
			if err != nil {
				b.Fatal(err)
			}
			o.GossipTuning = func(c *memberlist.Config) {
				wan := memberlist.DefaultWANConfig()
				c.Transport = tr
				c.GossipInterval, c.GossipNodes = wan.GossipInterval, wan.GossipNodes
				c.ProbeInterval, c.ProbeTimeout = wan.ProbeInterval, wan.ProbeTimeout
				c.SuspicionMult, c.PushPullInterval = wan.SuspicionMult, wan.PushPullInterval
				c.TCPTimeout = wan.TCPTimeout
			}
		}
		nd, err := startNode(o)
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, nd)
	}
	lastStart := time.Now()
	var r convergence
	const limit = 3 * time.Minute
	deadline := lastStart.Add(limit)
	committed := make([]bool, n)
	done := 0
	for {
		for i, nd := range nodes {
			if !committed[i] && hasPlan(nd.agent) {
				committed[i] = true
				done++
			}
		}
		if done > 0 && r.first == 0 {
			r.first = time.Since(lastStart) - settle
		}
		if done == n {
			r.all = time.Since(lastStart) - settle
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d agents committed within %s", done, n, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if mem != nil && mem.Sent()+mem.Dropped() > 0 {
		r.dropped = 100 * float64(mem.Dropped()) / float64(mem.Sent()+mem.Dropped())
	}
	b.Logf("N=%d: every agent %.3fs, first %.3fs after the last start (settle %s excluded)", n, r.all.Seconds(), r.first.Seconds(), settle)
	return r
}

// hasPlan reports whether a holds a committed plan; cheaper than Status,
// which copies the member list, so polling does not slow large clusters.
func hasPlan(a *Agent) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.plan != nil
}

// BenchmarkIdle runs five agents in this process with memberlist's LAN
// defaults and, once every one holds the plan and has written Nomad's
// configuration, lets them idle for 30 s. It reports nothing of its own:
// it is there to profile what an idle agent spends its CPU on
// (go test -run '^$' -bench Idle -benchtime 1x -cpuprofile cpu.prof).
func BenchmarkIdle(b *testing.B) {
	for range b.N {
		b.StopTimer()
		k := int(benchNet.Add(1))
		token := testToken(b, 7)
		dir := b.TempDir()
		var nodes []*testNode
		for i := range 5 {
			cfg := config.Default()
			cfg.Name = fmt.Sprintf("n%03d", i)
			cfg.Bind = fmt.Sprintf("127.11.%d.%d", k, i+1)
			cfg.Join = []string{fmt.Sprintf("127.11.%d.1", k)}
			cfg.Settle = 500 * time.Millisecond
			cfg.MinMembers = 5
			cfg.Supervise = config.SuperviseNone
			nd, err := startNode(Options{Config: cfg, Credential: certs.ServerCredential(token), Root: filepath.Join(dir, cfg.Name), Sources: fakeSources(2, 2048)})
			if err != nil {
				b.Fatal(err)
			}
			defer nd.stop()
			nodes = append(nodes, nd)
		}
		deadline := time.Now().Add(time.Minute)
		for _, nd := range nodes {
			for p := nd.agent.Status().Phase; p < status.PhaseConfigured || p == status.PhaseDegraded; p = nd.agent.Status().Phase {
				if time.Now().After(deadline) {
					b.Fatalf("%s: phase %s after a minute", nd.agent.Name(), p)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		b.StartTimer()
		time.Sleep(30 * time.Second)
	}
}
