package agent

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkConvergence measures the time from the last agent's start to the
// committed plan on every agent, with real memberlist on loopback, each
// agent on its own address. The settle time is excluded and reported apart.
// Run it with -benchtime 1x: each iteration builds a whole cluster.
func BenchmarkConvergence(b *testing.B) {
	const settle = 500 * time.Millisecond
	for _, n := range []int{3, 10, 100} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			var total, first time.Duration
			for range b.N {
				all, one := convergeOnce(b, n, settle)
				total += all
				first += one
			}
			b.ReportMetric((total / time.Duration(b.N)).Seconds(), "s-to-commit")
			b.ReportMetric((first / time.Duration(b.N)).Seconds(), "s-to-first-commit")
			b.ReportMetric(settle.Seconds(), "s-settle-excluded")
		})
	}
}

// convergeOnce returns the time to commit on every agent and on the first.
func convergeOnce(b *testing.B, n int, settle time.Duration) (all, first time.Duration) {
	b.StopTimer()
	defer b.StartTimer()
	c := &cluster{net: nextSubnet(), token: testToken(b, 7)}
	var nodes []*testNode
	defer func() {
		for _, nd := range nodes {
			nd.stop()
		}
	}()
	for i := range n {
		o := c.optionsFor(b.TempDir(), i)
		o.Config.Settle = settle
		o.Config.MinMembers = n
		o.GossipTuning = nil // memberlist's LAN defaults, as in production
		nd, err := startNode(o)
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, nd)
	}
	lastStart := time.Now()
	deadline := lastStart.Add(2 * time.Minute)
	for {
		done := 0
		for _, nd := range nodes {
			if nd.agent.Status().Plan != nil {
				done++
			}
		}
		if done > 0 && first == 0 {
			first = time.Since(lastStart) - settle
		}
		if done == n {
			return time.Since(lastStart) - settle, first
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d agents committed within 2 minutes", done, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
