package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// The fault suite (RELIABILITY.md). Each scenario prints one line
//
//	RELIABILITY scenario=<name> rounds=<n> failures=<n> recover_median=<d> recover_max=<d>
//
// that `make reliability` collects. Its agents bind in 127.21.0.0/16, apart
// from the other end-to-end tests' 127.0.x.

// faultRounds is the number of rounds of the repeated scenarios: the
// RELIABILITY_ROUNDS environment variable, 3 by default (make test).
func faultRounds(t *testing.T) int {
	s := os.Getenv("RELIABILITY_ROUNDS")
	if s == "" {
		return 3
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 100 {
		t.Fatalf("RELIABILITY_ROUNDS=%q: want a number of rounds from 1 to 100", s)
	}
	return n
}

// figures prints the scenario's line for make reliability.
func figures(t *testing.T, scenario string, rounds, failures int, recovery []time.Duration) {
	t.Helper()
	med, worst := time.Duration(0), time.Duration(0)
	if len(recovery) > 0 {
		sort.Slice(recovery, func(i, j int) bool { return recovery[i] < recovery[j] })
		med, worst = recovery[len(recovery)/2], recovery[len(recovery)-1]
	}
	line := fmt.Sprintf("RELIABILITY scenario=%s rounds=%d failures=%d recover_median=%s recover_max=%s",
		scenario, rounds, failures, med.Round(100*time.Millisecond), worst.Round(100*time.Millisecond))
	t.Log(line)
	fmt.Println(line)
}

// faultCluster starts n agents on 127.21.<net>.1..n, all joining the first,
// with supervise=none.
func faultCluster(t *testing.T, net, n int, extra ...string) []*proc {
	t.Helper()
	_, procs := clusterAt(t, fmt.Sprintf("127.21.%d", net), n, func(int) []string { return extra })
	return procs
}

// settled reports whether every proc reports the same committed plan whose
// servers are all among procs, each at least configured; it returns the plan.
func settled(t *testing.T, procs []*proc) (*status.PlanStatus, bool) {
	var first *status.PlanStatus
	names := map[string]bool{}
	for _, p := range procs {
		names[p.name] = true
	}
	for _, p := range procs {
		s, code := statusJSON(t, p.root)
		if code == 2 || s.Plan == nil || s.Phase < status.PhaseConfigured || s.Phase == status.PhaseDegraded {
			return nil, false
		}
		if first == nil {
			first = s.Plan
		} else if planKey(s.Plan) != planKey(first) {
			return nil, false
		}
	}
	for _, s := range first.Servers {
		if !names[s] {
			return nil, false
		}
	}
	return first, true
}

// waitSettled waits until settled(procs), explaining the cluster's state if
// it times out, and returns the plan's key.
func waitSettled(t *testing.T, procs []*proc, timeout time.Duration, what string) string {
	t.Helper()
	var key string
	waitForOr(t, timeout, what, func() bool {
		p, ok := settled(t, procs)
		key = planKey(p)
		return ok
	}, explainCluster(t, procs))
	return key
}

// Scenario 1: at a random moment of the election kill a node: one of the
// servers if a plan is committed by then, any node before; the survivors
// end with one committed plan and three live servers (a dead server
// replaced after server_replace_after).
func TestFaultKillDuringElection(t *testing.T) {
	rounds := faultRounds(t)
	var failures int
	var recovery []time.Duration
	for r := range rounds {
		ok := t.Run(fmt.Sprintf("round%d", r+1), func(t *testing.T) {
			procs := faultCluster(t, 1+r, 5, "-min-members", "3", "-server-replace-after", "3s", "-ca-failover-after", "1s")
			time.Sleep(time.Duration(rand.Int64N(int64(3 * time.Second))))
			// Kill one of the servers once a plan is committed, any node
			// (maybe a server to be) before.
			victim, when := rand.IntN(len(procs)), "before commit"
			if s, code := statusJSON(t, procs[0].root); code != 2 && s.Plan != nil {
				name := s.Plan.Servers[rand.IntN(len(s.Plan.Servers))]
				victim = slices.IndexFunc(procs, func(p *proc) bool { return p.name == name })
				when = "server after commit"
			}
			procs[victim].stop(syscall.SIGKILL)
			killed := time.Now()
			live := slices.Delete(slices.Clone(procs), victim, victim+1)
			var p *status.PlanStatus
			deadline := killed.Add(90 * time.Second)
			for {
				var done bool
				if p, done = settled(t, live); done {
					break
				}
				if time.Now().After(deadline) {
					for _, q := range live {
						s, _ := statusJSON(t, q.root)
						t.Logf("%s: %s %s plan %s %q", q.name, s.Phase, s.Reason, planKey(s.Plan), s.Warnings)
					}
					for i, q := range procs {
						select {
						case <-q.done:
							if i != victim {
								t.Logf("%s exited:\n%s", q.name, q.log)
							}
						default:
						}
					}
					t.Fatalf("killed %s: no single plan with three live servers after 90s", procs[victim].name)
				}
				time.Sleep(200 * time.Millisecond)
			}
			took := time.Since(killed)
			recovery = append(recovery, took)
			t.Logf("killed %s (%s); plan %s after %s", procs[victim].name, when, planKey(p), took.Round(100*time.Millisecond))
		})
		if !ok {
			failures++
		}
	}
	figures(t, "kill-during-election", rounds, failures, recovery)
}

// Scenario 6 (state file): a truncated or corrupted plan.json stops the
// agent with an error that names the recovery, never a new election, and
// leaves the file as it was.
func TestFaultCorruptedStateFile(t *testing.T) {
	procs := faultCluster(t, 100, 3)
	waitSettled(t, procs, 60*time.Second, "the cluster to commit a plan")
	for _, p := range procs {
		p.stop(syscall.SIGTERM)
	}
	victim := procs[1]
	planFile := paths.New(victim.root).PlanFile()
	good, err := os.ReadFile(planFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", good[:len(good)/2], "corrupted"},
		{"garbage", bytes.Repeat([]byte{0xff, 0x00}, 64), "corrupted"},
		{"empty", nil, "corrupted"},
		{"wrong version", bytes.Replace(good, []byte(`"version": 1`), []byte(`"version": 9`), 1), "version 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(planFile, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, stderr, code := run(t, append([]string{"agent", "-root", victim.root, "-name", victim.name}, victim.args...)...)
			if code == 0 || !strings.Contains(stderr, tt.want) || !strings.Contains(stderr, ".bak") {
				t.Errorf("exit %d, stderr %q; want non-zero, %q and the recovery from plan.json.bak", code, stderr, tt.want)
			}
			if after, _ := os.ReadFile(planFile); !bytes.Equal(after, tt.data) {
				t.Errorf("the state file changed")
			}
		})
	}
	// The documented recovery: restore the file and the node is back with
	// the same plan.
	if err := os.WriteFile(planFile, good, 0o600); err != nil {
		t.Fatal(err)
	}
	for i, p := range procs {
		procs[i] = start(t, p.root, p.name, p.args...)
		procs[i].addr = p.addr
	}
	waitSettled(t, procs, 60*time.Second, "the restored cluster to report its plan")
}

// nodeFiles returns what must not change across restarts on a node: its
// plan file and its certificates and keys.
func nodeFiles(t *testing.T, p *proc) map[string]string {
	t.Helper()
	out := map[string]string{}
	pp := paths.New(p.root)
	files, _ := filepath.Glob(filepath.Join(pp.NomadTLSDir(), "*"))
	for _, f := range append(files, pp.PlanFile()) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		out[f] = string(b)
	}
	return out
}

// Scenario 3: restart every agent one by one, then all at once: the same
// plan, the same plan file and the same certificates.
func TestFaultRestartEveryAgent(t *testing.T) {
	procs := faultCluster(t, 101, 4)
	before := waitSettled(t, procs, 60*time.Second, "the cluster to settle")
	snaps := map[string]map[string]string{}
	for _, p := range procs {
		snaps[p.name] = nodeFiles(t, p)
	}
	restart := func(i int) {
		p := procs[i]
		p.stop(syscall.SIGTERM)
		procs[i] = start(t, p.root, p.name, p.args...)
		procs[i].addr = p.addr
	}
	var recovery []time.Duration
	failures := 0
	check := func(what string) {
		t.Helper()
		began := time.Now()
		after := waitSettled(t, procs, 60*time.Second, "the cluster to settle "+what)
		recovery = append(recovery, time.Since(began))
		if after != before {
			failures++
			t.Errorf("%s: plan %s, was %s", what, after, before)
		}
		for _, p := range procs {
			for f, b := range nodeFiles(t, p) {
				if snaps[p.name][f] != b {
					failures++
					t.Errorf("%s: %s changed on %s", what, filepath.Base(f), p.name)
				}
			}
		}
	}
	for i := range procs {
		restart(i)
		check(fmt.Sprintf("after restarting %s", procs[i].name))
	}
	for _, p := range procs {
		p.stop(syscall.SIGTERM)
	}
	for i, p := range procs {
		procs[i] = start(t, p.root, p.name, p.args...)
		procs[i].addr = p.addr
	}
	check("after restarting every agent at once")
	figures(t, "restart-every-agent", len(procs)+1, failures, recovery)
}

// Scenario 4: the CA holder is lost for good; after ca_failover_after
// another server signs, and a node joining afterwards gets its certificate
// from it, under the pinned CA.
func TestFaultCAHolderLost(t *testing.T) {
	procs := faultCluster(t, 102, 4, "-ca-failover-after", "1s")
	var p *status.PlanStatus
	waitFor(t, 60*time.Second, "the cluster to settle", func() bool { var ok bool; p, ok = settled(t, procs); return ok })
	holder := slices.IndexFunc(procs, func(q *proc) bool { return q.name == p.CAHolder })
	procs[holder].stop(syscall.SIGKILL)
	lost := time.Now()
	live := slices.Delete(slices.Clone(procs), holder, holder+1)
	args := slices.Clone(live[0].args)
	for i, a := range args {
		if a == "-bind" {
			args[i+1] = "127.21.102.9"
		}
		if a == "-join" {
			args[i+1] = live[0].addr
		}
	}
	late := start(t, filepath.Join(filepath.Dir(live[0].root), "late"), "late", args...)
	failures := 0
	waitFor(t, 90*time.Second, "the late node to get its certificate", func() bool {
		s, code := statusJSON(t, late.root)
		return code != 2 && s.Certs != nil && s.Phase >= status.PhaseConfigured && s.Phase != status.PhaseDegraded
	})
	took := time.Since(lost)
	s, _ := statusJSON(t, late.root)
	if s.Plan == nil || s.Plan.CAFingerprint != p.CAFingerprint {
		failures++
		t.Errorf("the late node holds plan %s, want the cluster's CA %s", planKey(s.Plan), p.CAFingerprint)
	}
	figures(t, "ca-holder-lost", 1, failures, []time.Duration{took})
}
