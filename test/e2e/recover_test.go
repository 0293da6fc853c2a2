package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agent"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadrun"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
)

// TestRecoverLostMajority destroys two of three servers of real Nomad for
// good (agents and Nomad stopped, their state removed): Nomad has no
// leader, and the survivor cannot replace them on its own. recover refuses
// until the lost servers have been down for server_replace_after, and
// without -confirm changes nothing; recover -confirm on the survivor
// commits a recovery plan that gives their seats to the two spares, and
// gives Nomad a leader again with three raft peers; the job, a Variable
// and the ACL tokens are intact. Running it again finds nothing to do.
func TestRecoverLostMajority(t *testing.T) {
	bin := nomadBin(t)
	const replaceAfter = 15 * time.Second
	_, procs := clusterAt(t, "127.22.11", 5, func(int) []string {
		return []string{"-min-members", "5", "-supervise", "process", "-nomad", bin,
			"-server-replace-after", replaceAfter.String(), "-snapshot-interval", "0"}
	})
	dir := filepath.Dir(procs[0].root)
	t.Cleanup(func() {
		for _, p := range procs {
			p.stop(syscall.SIGTERM)
		}
		killLeftovers(t, dir)
	})
	waitForOr(t, 120*time.Second, "every agent to run a healthy Nomad", allRunning(t, procs), explainCluster(t, procs))
	s, _ := statusJSON(t, procs[0].root)
	var survivor *proc
	var lost, rest []*proc
	for _, p := range procs {
		switch {
		case p.name == s.Plan.CAHolder:
			survivor = p
		case slices.Contains(s.Plan.Servers, p.name):
			lost = append(lost, p)
		default:
			rest = append(rest, p)
		}
	}
	env := append(nomadEnv(survivor.root, survivor.addr), "NOMAD_TOKEN="+managementToken(t, survivor.root))
	deployer := readToken(t, survivor.root, "deployer")
	runUnplacedJob(t, bin, env, dir)
	if out, err := nomadOnce(t, bin, env, "var", "put", "recover/check", "value=kept"); err != nil {
		t.Fatalf("var put: %v\n%s", err, out)
	}

	// Two servers are destroyed for good.
	for _, p := range lost {
		p.stop(syscall.SIGTERM)
		if err := os.RemoveAll(p.root); err != nil {
			t.Fatal(err)
		}
	}
	procs = append([]*proc{survivor}, rest...)
	if _, stderr, code := run(t, "recover", "-root", rest[0].root); code != 1 || !strings.Contains(stderr, "not a server") {
		t.Errorf("recover on a spare: exit %d, %q", code, stderr)
	}
	waitForOr(t, 30*time.Second, "the survivor to see the lost servers down", func() bool {
		st, _ := statusJSON(t, survivor.root)
		down := 0
		for _, m := range st.Members {
			if (m.Name == lost[0].name || m.Name == lost[1].name) && m.Status != "alive" {
				down++
			}
		}
		return down == 2
	}, explainCluster(t, procs))
	if _, stderr, code := run(t, "recover", "-root", survivor.root); code != 1 || !strings.Contains(stderr, "only: recover once it has been down for server_replace_after") {
		t.Errorf("recover right after the loss: exit %d, %q", code, stderr)
	}
	var out, stderr string
	var code int
	waitForOr(t, replaceAfter+30*time.Second, "recover without -confirm to say what it would do", func() bool {
		out, stderr, code = run(t, "recover", "-root", survivor.root)
		return code == 0
	}, func() { t.Logf("recover: exit %d, %q, %q", code, out, stderr) })
	if !strings.Contains(out, "Would commit recovery plan epoch 2") || !strings.Contains(out, "Would write Nomad's raft/peers.json") {
		t.Fatalf("recover without -confirm: exit %d, %q, %q", code, out, stderr)
	}
	if st, _ := statusJSON(t, survivor.root); st.Plan == nil || st.Plan.Epoch != 1 {
		t.Errorf("recover without -confirm changed the plan: %+v", st.Plan)
	}
	if _, err := os.Stat(nomadrun.PeersFile(paths.New(survivor.root).NomadDataDir())); err == nil {
		t.Error("recover without -confirm wrote peers.json")
	}

	out, stderr, code = runWithin(t, 6*time.Minute, "recover", "-confirm", "-json", "-root", survivor.root)
	var ans agent.RecoverAnswer
	if code != 0 || json.Unmarshal([]byte(out), &ans) != nil || !ans.Done || ans.Epoch != 2 || ans.Leader == "" || len(ans.Lost) != 2 {
		explainCluster(t, procs)()
		t.Fatalf("recover -confirm: exit %d, %q, %q", code, out, stderr)
	}
	for _, p := range rest {
		if !slices.Contains(ans.Servers, p.name) {
			t.Errorf("the recovery plan's servers %v leave out the spare %s", ans.Servers, p.name)
		}
	}
	waitForOr(t, 180*time.Second, "the survivor and the two new servers to run, with three raft peers", func() bool {
		if !allRunning(t, procs)() {
			return false
		}
		st, _ := statusJSON(t, survivor.root)
		return st.Nomad != nil && st.Nomad.Leader != "" && len(st.Nomad.Peers) == 3
	}, func() {
		explainCluster(t, procs)()
		st, _ := statusJSON(t, survivor.root)
		t.Logf("survivor's Nomad: %+v", st.Nomad)
		for _, args := range [][]string{{"server", "members"}, {"operator", "raft", "list-peers"}} {
			out, err := nomadCLI(t, bin, env, args...)
			t.Logf("nomad %v: %v\n%s", args, err, out)
		}
		for _, p := range procs {
			b, _ := os.ReadFile(paths.New(p.root).NomadLog())
			if len(b) > 3000 {
				b = b[len(b)-3000:]
			}
			t.Logf("%s's Nomad log:\n%s", p.name, b)
		}
	})
	for _, p := range procs {
		if st, _ := statusJSON(t, p.root); st.Plan == nil || st.Plan.Epoch != 2 || st.Node.Role != "server" {
			t.Errorf("%s after the recovery: %+v, role %s", p.name, st.Plan, st.Node.Role)
		}
	}
	if out, err := nomadOnce(t, bin, env, "job", "status", "-short", "keep"); err != nil || !strings.Contains(out, "keep") {
		t.Errorf("the job after the recovery: %v\n%s", err, out)
	}
	if out, err := nomadOnce(t, bin, env, "var", "get", "-item", "value", "recover/check"); err != nil || strings.TrimSpace(out) != "kept" {
		t.Errorf("the Variable after the recovery: %v\n%s", err, out)
	}
	dep := append(nomadEnv(rest[0].root, rest[0].addr), "NOMAD_TOKEN="+deployer)
	if out, err := nomadOnce(t, bin, dep, "job", "status", "-short", "keep"); err != nil {
		t.Errorf("the deployer token through a new server: %v\n%s", err, out)
	}
	if _, stderr, code := run(t, "recover", "-root", survivor.root); code != 1 || !strings.Contains(stderr, "nothing to recover") {
		t.Errorf("recover once recovered: exit %d, %q", code, stderr)
	}
	if out, err := nomadOnce(t, bin, env, "job", "stop", "-purge", "-detach", "keep"); err != nil {
		t.Errorf("job stop: %v\n%s", err, out)
	}
}
