package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// Scenario 2 of the fault suite: a 3|2 partition during the bootstrap.
//
// Five hosts are network namespaces, each with one veth into a "switch"
// namespace that holds two bridges: hosts 1-3 on the majority's, hosts 4-5
// on the minority's. A veth pair joins the two bridges; it is down while
// the network is partitioned and brought up to heal it. Addresses are in
// 198.19.0.0/24 (the benchmarking range, apart from make test-system's
// 198.18.0.0/24); nothing is routed to or from the host's own namespace.

// partitionNet is the test network: the namespaces' names and the link
// between the two sides.
type partitionNet struct {
	sw    string   // the switch namespace
	hosts []string // one namespace per host
}

// The switch's interface names; the two ends of the link between the sides.
const (
	partitionLinkA = "link-maj"
	partitionLinkB = "link-min"
)

// ipCmd runs ip(8) with args, bounded by 10 s.
func ipCmd(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// needNetns skips the test unless it can make network namespaces.
func needNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the partition scenario creates network namespaces, bridges and veth pairs")
	}
	for _, tool := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (iproute2, util-linux) for network namespaces: %v", tool, err)
		}
	}
}

// newPartitionNet builds the namespaces for hosts hosts, the first
// majority of them on one side, and removes them when the test ends. The
// link between the sides starts down.
func newPartitionNet(t *testing.T, hosts, majority int) *partitionNet {
	t.Helper()
	// Names unique to this process, so that concurrent runs never share
	// a namespace.
	prefix := fmt.Sprintf("nbdp%d-", os.Getpid())
	n := &partitionNet{sw: prefix + "sw"}
	for i := range hosts {
		n.hosts = append(n.hosts, fmt.Sprintf("%sh%d", prefix, i+1))
	}
	// Deleting a namespace deletes its interfaces and their veth peers;
	// registered first, this runs after the agents have stopped.
	t.Cleanup(func() {
		for _, ns := range append([]string{n.sw}, n.hosts...) {
			if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
				if err := ipCmd("netns", "delete", ns); err != nil {
					t.Errorf("removing the test network: %v", err)
				}
			}
		}
	})
	must := func(args ...string) {
		t.Helper()
		if err := ipCmd(args...); err != nil {
			t.Fatalf("setting up the test network: %v", err)
		}
	}
	must("netns", "add", n.sw)
	for _, br := range []string{"br-maj", "br-min"} {
		must("-n", n.sw, "link", "add", br, "type", "bridge")
		must("-n", n.sw, "link", "set", br, "up")
	}
	must("-n", n.sw, "link", "add", partitionLinkA, "type", "veth", "peer", "name", partitionLinkB)
	must("-n", n.sw, "link", "set", partitionLinkA, "master", "br-maj")
	must("-n", n.sw, "link", "set", partitionLinkB, "master", "br-min")
	for i, ns := range n.hosts {
		br := "br-maj"
		if i >= majority {
			br = "br-min"
		}
		port := fmt.Sprintf("port%d", i+1)
		must("netns", "add", ns)
		must("-n", n.sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
		must("-n", n.sw, "link", "set", port, "master", br)
		must("-n", n.sw, "link", "set", port, "up")
		must("-n", ns, "addr", "add", n.addr(i)+"/24", "dev", "eth0")
		must("-n", ns, "link", "set", "eth0", "up")
		must("-n", ns, "link", "set", "lo", "up")
	}
	return n
}

// addr is host i's address.
func (n *partitionNet) addr(i int) string { return fmt.Sprintf("198.19.0.%d", 11+i) }

// heal brings the link between the two sides up.
func (n *partitionNet) heal(t *testing.T) {
	t.Helper()
	for _, l := range []string{partitionLinkA, partitionLinkB} {
		if err := ipCmd("-n", n.sw, "link", "set", l, "up"); err != nil {
			t.Fatal(err)
		}
	}
}

// startIn is start with the agent in network namespace ns.
func startIn(t *testing.T, ns, root, name string, args ...string) *proc {
	t.Helper()
	// nsenter execs the agent: the process is the agent itself.
	return startWith(t, []string{"nsenter", "--net=" + filepath.Join("/run/netns", ns), "--"}, root, name, args...)
}

// samePlan returns the plan every proc reports, or false while they do not
// all report one and the same.
func samePlan(t *testing.T, procs []*proc) (*status.PlanStatus, bool) {
	var first *status.PlanStatus
	for _, p := range procs {
		s, code := statusJSON(t, p.root)
		if code == 2 || s.Plan == nil {
			return nil, false
		}
		if first == nil {
			first = s.Plan
		} else if planKey(s.Plan) != planKey(first) || s.Plan.CAFingerprint != first.CAFingerprint {
			return nil, false
		}
	}
	return first, true
}

// Scenario 2: partition 3|2 during the bootstrap with min_members 3. The
// majority commits a plan of its own nodes; the minority, whose two nodes
// see each other, commits nothing; once the link is back both sides merge
// and every node holds the majority's plan, the minority's nodes with
// their certificates.
func TestFaultPartition(t *testing.T) {
	const hosts, majority = 5, 3
	needNetns(t)
	rounds := faultRounds(t)
	var failures int
	var recovery []time.Duration
	for r := range rounds {
		ok := t.Run(fmt.Sprintf("round%d", r+1), func(t *testing.T) {
			// A network of its own each round: no neighbour cache or
			// connection left from the round before.
			network := newPartitionNet(t, hosts, majority)
			// Seeds on both sides: each side can form its own pool.
			seeds := network.addr(0) + "," + network.addr(majority)
			dir := t.TempDir()
			tokenFile := filepath.Join(dir, "token")
			if err := os.WriteFile(tokenFile, []byte(newToken(t)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			var procs []*proc
			for i, ns := range network.hosts {
				name := fmt.Sprintf("node%d", i+1)
				p := startIn(t, ns, filepath.Join(dir, name), name, "-bind", network.addr(i), "-join", seeds,
					"-token-file", tokenFile, "-settle", "1s", "-min-members", "3", "-supervise", "none")
				p.addr = network.addr(i)
				procs = append(procs, p)
			}
			maj, minority := procs[:majority], procs[majority:]
			explain := explainCluster(t, procs)

			var committed *status.PlanStatus
			waitForOr(t, 60*time.Second, "the majority to commit one plan", func() bool {
				var ok bool
				committed, ok = samePlan(t, maj)
				return ok
			}, explain)
			if committed.Epoch != 1 {
				t.Errorf("the majority committed epoch %d, want 1", committed.Epoch)
			}
			for _, s := range committed.Servers {
				if !slices.ContainsFunc(maj, func(p *proc) bool { return p.name == s }) {
					t.Errorf("the majority's plan %s names %s, which it cannot reach", planKey(committed), s)
				}
			}

			// The minority formed a pool of its own and waits.
			waitForOr(t, 30*time.Second, "the minority's nodes to see each other", func() bool {
				for _, p := range minority {
					s, code := statusJSON(t, p.root)
					if code == 2 || aliveMembers(s) != len(minority) {
						return false
					}
				}
				return true
			}, explain)
			// Keep the partition for three times the settle time and up to
			// 12 s more, long enough for re-joins across it to fail and
			// back off.
			partition := 3*time.Second + rand.N(12*time.Second)
			hold := time.Now().Add(partition)
			for time.Now().Before(hold) {
				for _, p := range minority {
					s, code := statusJSON(t, p.root)
					if code == 2 {
						t.Fatalf("%s in the minority stopped answering:\n%s", p.name, p.log)
					}
					if s.Plan != nil {
						t.Fatalf("%s in the minority committed %s", p.name, planKey(s.Plan))
					}
					if !strings.Contains(s.Reason, "waiting for 3 members") {
						t.Fatalf("%s in the minority: phase %s, reason %q; want a reason saying it waits for 3 members", p.name, s.Phase, s.Reason)
					}
					if _, err := os.Stat(paths.New(p.root).PlanFile()); !errors.Is(err, os.ErrNotExist) {
						t.Fatalf("%s in the minority has a plan file: %v", p.name, err)
					}
				}
				time.Sleep(200 * time.Millisecond)
			}

			network.heal(t)
			healed := time.Now()
			var merged *status.PlanStatus
			waitForOr(t, 90*time.Second, "every node to report one plan after healing", func() bool {
				var ok bool
				merged, ok = samePlan(t, procs)
				return ok
			}, explain)
			took := time.Since(healed)
			if planKey(merged) != planKey(committed) || merged.CAFingerprint != committed.CAFingerprint {
				t.Fatalf("after healing every node reports %s, the majority had committed %s", planKey(merged), planKey(committed))
			}
			waitForOr(t, 60*time.Second, "the minority's nodes to be configured with certificates", func() bool {
				for _, p := range minority {
					s, code := statusJSON(t, p.root)
					if code == 2 || s.Certs == nil || s.Phase < status.PhaseConfigured || s.Phase == status.PhaseDegraded {
						return false
					}
				}
				return true
			}, explain)
			waitForOr(t, 30*time.Second, "every node to see every node alive", func() bool {
				for _, p := range procs {
					if s, _ := statusJSON(t, p.root); aliveMembers(s) != hosts {
						return false
					}
				}
				return true
			}, explainMembers(t, procs))
			for _, p := range procs {
				s, _ := statusJSON(t, p.root)
				for _, w := range s.Warnings {
					if strings.Contains(w, "another committed plan") {
						t.Errorf("%s: %s", p.name, w)
					}
				}
			}
			recovery = append(recovery, took)
			t.Logf("partition kept %s after the minority formed its pool; plan %s on every node %s after healing",
				partition.Round(100*time.Millisecond), planKey(merged), took.Round(100*time.Millisecond))
			for _, p := range procs {
				p.stop(syscall.SIGTERM)
			}
		})
		if !ok {
			failures++
		}
	}
	figures(t, "partition-3-2", rounds, failures, recovery)
}

// aliveMembers counts the members a status reports alive.
func aliveMembers(s status.Status) int {
	n := 0
	for _, m := range s.Members {
		if m.Status == "alive" {
			n++
		}
	}
	return n
}

// explainMembers logs the members each agent sees.
func explainMembers(t *testing.T, procs []*proc) func() {
	return func() {
		t.Helper()
		for _, p := range procs {
			s, _ := statusJSON(t, p.root)
			var ms []string
			for _, m := range s.Members {
				ms = append(ms, m.Name+"="+m.Status)
			}
			t.Logf("%s: %s", p.name, strings.Join(ms, " "))
			if os.Getenv("E2E_AGENT_LOGS") != "" {
				t.Logf("%s log:\n%s", p.name, p.log)
			}
		}
	}
}
