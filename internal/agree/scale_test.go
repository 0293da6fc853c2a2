package agree

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// BenchmarkSimulationScale runs the first election of clusters of 1,000 and
// 10,000 simulated nodes, started together with bootstrap_size set, on a
// network without faults that delays each message by up to 20 ms. It reports
// the virtual time until every node has persisted the plan and the CPU time
// the simulation spent per node (every node's protocol work, and the
// simulator's).
func BenchmarkSimulationScale(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			for b.Loop() {
				cpu0 := cpuTime()
				s := newScaleSim(n, 1)
				s.run()
				cpu := cpuTime() - cpu0
				if len(s.violations) > 0 || s.converged == 0 {
					b.Fatalf("%d nodes: no convergence: %v", n, s.violations)
				}
				b.ReportMetric(s.converged.Seconds(), "virtual-s")
				b.ReportMetric(cpu.Seconds()/float64(n)*1000, "cpu-ms/node")
			}
		})
	}
}

// TestSimulationScale is the 1,000-node run as a test: it converges.
func TestSimulationScale(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	s := newScaleSim(1000, 1)
	s.run()
	if len(s.violations) > 0 || s.converged == 0 {
		t.Fatalf("1,000 nodes did not converge: %v", s.violations)
	}
	t.Logf("1,000 nodes hold the plan after %s of virtual time", s.converged)
}

func newScaleSim(nodes int, seed uint64) *sim {
	r := rand.New(rand.NewPCG(seed, seed))
	sc := scenario{
		nodes: nodes, expect: 3, minMembers: nodes/2 + 1, bootstrap: nodes,
		settle: 5 * time.Second, replace: time.Minute, maxDelay: 20 * time.Millisecond,
		broadcast: 1400, timings: DefaultTimings(),
	}
	if nodes <= 1000 {
		sc.startSpan = 2 * time.Second
	}
	s := newSim(sc, r, bugs{}, false)
	s.scale = true
	return s
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
