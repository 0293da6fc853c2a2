package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agent"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/clusterstate"
)

// nomadOldBin returns Nomad v1.6.0, which the upgrade tests roll from:
// $NOMAD_OLD_BIN (set by make), else the one `make nomad-old` links under
// .cache. Without either the test is skipped, never faked.
func nomadOldBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("NOMAD_OLD_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("NOMAD_OLD_BIN=%s: %v", p, err)
		}
		return p
	}
	p, _ := filepath.Abs("../../.cache/nomad-v1.6.0")
	if _, err := os.Stat(p); err != nil {
		t.Skip("Nomad v1.6.0 is not built; run make nomad-old")
	}
	return p
}

// TestRollingUpgrade runs five agents on Nomad 1.6.0 (three servers, a
// client in the default pool and one in its own pool) with a service job
// of two allocations, and rolls them onto 1.6.3 from a nomad_dir. Every
// 250 ms poll of the servers finds a leader, except during the one
// election that the leader's own restart costs (Nomad 1.6 cannot hand its
// leadership over; from 1.7 the roll does so first); at the end `nomad server
// members` shows 1.6.3 for every server, every client runs it, the job
// runs two healthy allocations, and only allocations on the drained
// clients were replaced. The roll went servers first, the leader last,
// then the clients. A client whose nomad_dir lacks the version stops the
// roll after -node-timeout, saying so in its status and in upgrade status;
// once the binary is there, the same command again finishes the roll. A version the servers cannot install, a downgrade, a
// line newer than this release configures, and the command on a client
// are refused and change nothing; the same roll again says there is
// nothing to do, and a machine that joins afterwards with 1.6.0 starts
// 1.6.3.
func TestRollingUpgrade(t *testing.T) {
	const prefix = "127.22.12"
	oldBin, newBin, dir := nomadOldBin(t), nomadBin(t), t.TempDir()
	nomadDir := filepath.Join(dir, "nomad-versions")
	os.MkdirAll(nomadDir, 0o755)
	if err := os.Symlink(newBin, filepath.Join(nomadDir, "nomad-1.6.3")); err != nil {
		t.Fatal(err)
	}
	// node5's directory lacks 1.6.3 until the roll stopped on it.
	lacking := filepath.Join(dir, "node5-versions")
	os.MkdirAll(lacking, 0o755)
	token := newToken(t)
	clientToken := clientTokenFile(t, dir, token)
	base := realNomadArgs(oldBin, clientToken)
	_, procs := clusterWith(t, token, prefix, 5, func(i int) []string {
		if i == 4 {
			return append(base(i), "-nomad-dir", lacking)
		}
		return append(base(i), "-nomad-dir", nomadDir)
	})
	waitForOr(t, 120*time.Second, "every agent to run a healthy Nomad 1.6.0", allRunning(t, procs), explainCluster(t, procs))
	s, _ := statusJSON(t, procs[0].root)
	servers := s.Plan.Servers
	server := procs[slices.IndexFunc(procs, func(p *proc) bool { return p.name == servers[0] })]
	mgmt := append(nomadEnv(server.root, server.addr), "NOMAD_TOKEN="+managementToken(t, server.root))
	for _, p := range procs {
		if st, _ := statusJSON(t, p.root); st.Nomad == nil || st.Nomad.Version != "1.6.0" {
			t.Fatalf("%s does not run Nomad 1.6.0: %+v", p.name, st.Nomad)
		}
	}

	// A service job of two allocations in the default pool: on the
	// servers' clients and the warm client.
	job := filepath.Join(dir, "web.nomad.hcl")
	os.WriteFile(job, []byte(`job "web" {
  node_pool = "default"
  group "g" {
    count = 2
    update {
      min_healthy_time = "1s"
    }
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "while true; do sleep 1; done # `+filepath.Dir(dir)+`"]
      }
    }
  }
}
`), 0o644)
	if out, err := nomadCLI(t, newBin, mgmt, "job", "run", job); err != nil {
		t.Fatalf("job run: %v\n%s", err, out)
	}
	var once sync.Once
	stopJob := func() {
		once.Do(func() {
			if out, err := nomadOnce(t, newBin, mgmt, "job", "stop", "-purge", "web"); err != nil {
				t.Logf("job stop: %v\n%s", err, out)
			}
			for range 40 {
				if len(taskProcesses(filepath.Dir(dir))) == 0 {
					return
				}
				time.Sleep(500 * time.Millisecond)
			}
			killTaskProcesses(t, filepath.Dir(dir))
		})
	}
	t.Cleanup(stopJob)
	type alloc struct {
		ID, ClientStatus, DesiredStatus, NodeName string
	}
	allocs := func() []alloc {
		out, err := nomadOnce(t, newBin, mgmt, "job", "allocs", "-json", "web")
		var as []alloc
		if err != nil || json.Unmarshal([]byte(out), &as) != nil {
			return nil
		}
		return as
	}
	running := func() []alloc {
		var r []alloc
		for _, a := range allocs() {
			if a.ClientStatus == "running" && a.DesiredStatus == "run" {
				r = append(r, a)
			}
		}
		return r
	}
	waitFor(t, 60*time.Second, "the job's two allocations to run", func() bool { return len(running()) == 2 })
	before := allocs()

	// Refused before anything changes: a version no nomad_dir holds, a
	// downgrade, a line newer than this release configures, a client.
	for _, tc := range []struct {
		root, version, want string
	}{
		{server.root, "1.6.2", "put its binary at " + filepath.Join(nomadDir, "nomad-1.6.2")},
		{server.root, "1.5.6", "too old"},
		{server.root, "2.1.0", "newer than the 2.0 line"},
		{server.root, "latest", `"latest" is not a Nomad version`},
		{procs[3].root, "1.6.3", "runs on a Nomad server"},
	} {
		if _, stderr, code := runWithin(t, 2*time.Minute, "upgrade", "nomad", "-root", tc.root, tc.version); code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("upgrade nomad %s: exit %d, %q, want %q", tc.version, code, stderr, tc.want)
		}
	}
	if _, stderr, code := run(t, "upgrade", "nomad", "-batch", "0", "-root", server.root, "1.6.3"); code != 1 || !strings.Contains(stderr, "-batch 0") {
		t.Errorf("upgrade nomad -batch 0: exit %d, %q", code, stderr)
	}
	if out, _, code := run(t, "upgrade", "status", "-root", server.root); code != 0 || !strings.Contains(out, "No Nomad upgrade has been started") {
		t.Errorf("upgrade status before any: exit %d, %q", code, out)
	}

	// The roll, with a leader asked for every 250 ms.
	polls := pollAnyLeader(t, procs[:3])
	out, stderr, code := runWithin(t, 2*time.Minute, "upgrade", "nomad", "-json", "-drain-deadline", "1m", "-node-timeout", "30s", "-root", server.root, "1.6.3")
	var ans agent.UpgradeAnswer
	if code != 0 || json.Unmarshal([]byte(out), &ans) != nil || !ans.Started || ans.Upgrade.Version != "1.6.3" || ans.Upgrade.Stage != clusterstate.UpgradeServers {
		t.Fatalf("upgrade nomad 1.6.3: exit %d, %q, %q", code, out, stderr)
	}
	// Again while it runs: under way already, nothing new.
	if out, _, code := runWithin(t, 2*time.Minute, "upgrade", "nomad", "-root", server.root, "1.6.3"); code != 0 || !strings.Contains(out, "under way already") {
		t.Errorf("upgrade nomad again during the roll: exit %d, %q", code, out)
	}
	var order []string
	rollEnds := func() agent.UpgradeAnswer {
		var last agent.UpgradeAnswer
		waitForOr(t, 8*time.Minute, "the roll to end", func() bool {
			out, _, code := run(t, "upgrade", "status", "-json", "-root", procs[3].root)
			var a agent.UpgradeAnswer
			if code != 0 || json.Unmarshal([]byte(out), &a) != nil {
				return false
			}
			for _, n := range turnOf(t, procs) {
				if !slices.Contains(order, n) {
					order = append(order, n)
				}
			}
			last = a
			return !a.Upgrade.Active()
		}, func() {
			out, _, _ := run(t, "upgrade", "status", "-root", server.root)
			t.Logf("upgrade status:\n%s", out)
			explainCluster(t, procs)()
		})
		return last
	}

	// The roll stops on node5, the first client (pool batch), which
	// cannot install the version.
	stopped := rollEnds()
	if stopped.Upgrade.Stage != clusterstate.UpgradeFailed || !strings.Contains(stopped.Upgrade.Failure, "waited 30s for node5 to run Nomad 1.6.3 (runs 1.6.0)") || stopped.Upgrade.Upgraded != 3 {
		t.Fatalf("the roll with node5 lacking the version ended %+v", stopped.Upgrade)
	}
	if st, _ := statusJSON(t, procs[4].root); !slices.ContainsFunc(st.Warnings, func(w string) bool {
		return strings.Contains(w, "no Nomad 1.6.3 in nomad_dir: put its binary at "+filepath.Join(lacking, "nomad-1.6.3"))
	}) {
		t.Errorf("node5's status does not say why it cannot upgrade: %q", st.Warnings)
	}
	if st, _ := statusJSON(t, server.root); st.Cluster == nil || st.Cluster.NomadUpgrade == nil || st.Cluster.NomadUpgrade.Stage != "failed" {
		t.Errorf("status on a server does not show the stopped roll: %+v", st.Cluster)
	}
	if out, _, code := run(t, "upgrade", "status", "-root", server.root); code != 0 || !strings.Contains(out, "stopped: waited 30s for node5") {
		t.Errorf("upgrade status of the stopped roll: exit %d, %q", code, out)
	}

	// With the binary in place, the same command finishes the roll.
	if err := os.Symlink(newBin, filepath.Join(lacking, "nomad-1.6.3")); err != nil {
		t.Fatal(err)
	}
	if out, stderr, code := runWithin(t, 2*time.Minute, "upgrade", "nomad", "-drain-deadline", "1m", "-node-timeout", "30s", "-root", server.root, "1.6.3"); code != 0 || !strings.Contains(out, "Started the rolling upgrade") {
		t.Fatalf("upgrade nomad again after the stop: exit %d, %q, %q", code, out, stderr)
	}
	last := rollEnds()
	p := polls()
	t.Logf("leader polls: %d, %d without a leader in %d runs (longest %d), leaders %v; roll order %v", p.n, p.leaderless, p.runs, p.longest, p.leaders, order)
	if last.Upgrade.Stage != clusterstate.UpgradeDone || last.Upgrade.Upgraded != 2 {
		t.Fatalf("the roll ended %+v", last.Upgrade)
	}
	if st, _ := statusJSON(t, procs[4].root); slices.ContainsFunc(st.Warnings, func(w string) bool { return strings.Contains(w, "nomad_dir") }) {
		t.Errorf("node5 still warns after its upgrade: %q", st.Warnings)
	}
	// One election at most, when the leader restarted; bounded well
	// beyond Nomad's election timeouts.
	if p.runs > 1 || p.longest > 40 {
		t.Errorf("%d of %d polls found no leader, in %d runs (longest %d): more than the leader's one election", p.leaderless, p.n, p.runs, p.longest)
	}

	// Servers first, the leader last, then the clients.
	if len(order) != 5 || !slices.Contains(servers, order[0]) || !slices.Contains(servers, order[2]) || slices.Contains(servers, order[3]) {
		t.Errorf("roll order %v, servers %v", order, servers)
	}
	out, err := nomadOnce(t, newBin, mgmt, "server", "members")
	if err != nil || strings.Count(out, " 1.6.3 ") != 3 || strings.Contains(out, "1.6.0") {
		t.Errorf("nomad server members after the roll: %v\n%s", err, out)
	}
	out, err = nomadOnce(t, newBin, mgmt, "node", "status", "-verbose")
	if err != nil || strings.Count(out, "1.6.3") != 5 || strings.Contains(out, "1.6.0") || strings.Contains(out, "ineligible") {
		t.Errorf("nomad node status after the roll: %v\n%s", err, out)
	}
	for _, p := range procs {
		if st, _ := statusJSON(t, p.root); st.Nomad == nil || st.Nomad.Version != "1.6.3" || st.Phase.String() != "running" {
			t.Errorf("%s after the roll: %s %+v", p.name, st.Phase, st.Nomad)
		}
	}
	waitFor(t, 60*time.Second, "the job's two allocations to run", func() bool { return len(running()) == 2 })
	serverNames := map[string]bool{}
	for _, s := range servers {
		serverNames[s] = true
	}
	for _, a := range before {
		if !serverNames[a.NodeName] {
			continue // on a drained client: it may have moved
		}
		if !slices.ContainsFunc(running(), func(r alloc) bool { return r.ID == a.ID }) {
			t.Errorf("allocation %s on server %s was replaced, not by a drain", a.ID, a.NodeName)
		}
	}
	if out, err := nomadOnce(t, newBin, mgmt, "job", "status", "web"); err != nil || !strings.Contains(out, "Status        = running") {
		t.Errorf("job status after the roll: %v\n%s", err, out)
	}

	// Done: the same roll has nothing to do, and a downgrade is refused.
	if out, _, code := runWithin(t, 2*time.Minute, "upgrade", "nomad", "-root", server.root, "1.6.3"); code != 0 || !strings.Contains(out, "runs Nomad 1.6.3 already") {
		t.Errorf("upgrade nomad 1.6.3 once done: exit %d, %q", code, out)
	}
	os.Symlink(oldBin, filepath.Join(nomadDir, "nomad-1.6.0"))
	if _, stderr, code := runWithin(t, 2*time.Minute, "upgrade", "nomad", "-root", server.root, "1.6.0"); code != 1 || !strings.Contains(stderr, "Nomad does not support downgrades") {
		t.Errorf("upgrade nomad to 1.6.0: exit %d, %q", code, stderr)
	}
	if out, _, code := run(t, "upgrade", "status", "-root", server.root); code != 0 || !strings.Contains(out, "Upgrade to Nomad 1.6.3: done") {
		t.Errorf("upgrade status once done: exit %d, %q", code, out)
	}

	// A machine that joins afterwards with Nomad 1.6.0 starts 1.6.3.
	late := start(t, filepath.Join(dir, "node6"), "node6", "-bind", prefix+".6", "-join", prefix+".1", "-settle", "1s",
		"-supervise", "process", "-nomad", oldBin, "-nomad-dir", nomadDir, "-raw-exec", "-role", "client", "-pool", "warm", "-token-file", clientToken)
	late.addr = prefix + ".6"
	waitForOr(t, 120*time.Second, "a machine joining after the roll to run", func() bool {
		st, _ := statusJSON(t, late.root)
		return st.Phase.String() == "running"
	}, explainCluster(t, []*proc{late}))
	if st, _ := statusJSON(t, late.root); st.Nomad == nil || st.Nomad.Version != "1.6.3" {
		t.Errorf("a machine joining after the roll runs %+v", st.Nomad)
	}
	stopJob()
}

// turnOf returns the names of the nodes in the roll's turn, as the
// servers' upgrade status reports it.
func turnOf(t *testing.T, procs []*proc) []string {
	for _, p := range procs[:3] {
		out, _, code := run(t, "upgrade", "status", "-json", "-root", p.root)
		var a agent.UpgradeAnswer
		if code == 0 && json.Unmarshal([]byte(out), &a) == nil && len(a.Nodes) > 0 {
			return a.Turn
		}
	}
	return nil
}

// anyLeaderPolls is what pollAnyLeader saw.
type anyLeaderPolls struct {
	n, leaderless, runs, longest int
	leaders                      map[string]int
}

// pollAnyLeader asks every server's Nomad for its leader every 250 ms
// (over mTLS, each request bounded by 1 s) until the returned function is
// called: a poll finds a leader when a server names one. A restarting
// server does not answer, and the others still name the leader.
func pollAnyLeader(t *testing.T, servers []*proc) func() anyLeaderPolls {
	t.Helper()
	client := nomadHTTPS(t, servers[0].root, time.Second)
	polls := anyLeaderPolls{leaders: map[string]int{}}
	streak := 0
	stop := pollEvery(t, func() {
		polls.n++
		type answer struct{ leader string }
		answers := make(chan answer, len(servers))
		for _, s := range servers {
			go func() {
				var leader string
				resp, err := client.Get("https://" + s.addr + ":4646/v1/status/leader")
				if err == nil {
					if resp.StatusCode == http.StatusOK {
						json.NewDecoder(resp.Body).Decode(&leader)
					}
					resp.Body.Close()
				}
				answers <- answer{leader}
			}()
		}
		found := ""
		for range servers {
			if a := <-answers; a.leader != "" {
				found = a.leader
			}
		}
		if found == "" {
			polls.leaderless++
			if streak == 0 {
				polls.runs++
			}
			streak++
			polls.longest = max(polls.longest, streak)
			return
		}
		streak = 0
		polls.leaders[found]++
	})
	return func() anyLeaderPolls {
		stop()
		return polls
	}
}
