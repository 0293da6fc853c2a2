package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// previousRelease builds the agent of the commit that
// testdata/previous-release names, the release before this one, from the
// repository's history, once per machine (cached under the user's cache
// directory), and returns its path. A shallow clone has no such history:
// the test is skipped there, saying so.
func previousRelease(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/previous-release")
	if err != nil {
		t.Fatal(err)
	}
	commit := strings.TrimSpace(string(b))
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(cache, "nomad-bootstrapd", "agent-"+commit)
	if _, err := os.Stat(out); err == nil {
		return out
	}
	repo, _ := filepath.Abs("../..")
	if err := exec.Command("git", "-C", repo, "cat-file", "-e", commit+"^{commit}").Run(); err != nil {
		shallow, _ := exec.Command("git", "-C", repo, "rev-parse", "--is-shallow-repository").Output()
		if strings.TrimSpace(string(shallow)) == "true" {
			t.Skipf("the previous release %s is not in this shallow clone: clone with history to run this test", commit)
		}
		t.Fatalf("the previous release %s is not in the repository: %v", commit, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	src := t.TempDir()
	archive := exec.CommandContext(ctx, "sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", repo, commit, src)
	if b, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("extracting %s: %v\n%s", commit, err, b)
	}
	os.MkdirAll(filepath.Dir(out), 0o755)
	build := exec.CommandContext(ctx, "go", "build", "-o", out+".tmp", "./cmd/nomad-bootstrapd")
	build.Dir = src
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the previous release %s: %v\n%s", commit, err, b)
	}
	if err := os.Rename(out+".tmp", out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMixedReleases runs three servers with real Nomad, the third on the
// previous release of the agent, as during a rolling upgrade of the agents:
// they agree on one plan and run Nomad with ACLs, and a change of the
// cluster state made on a server of either release (token rotate -client)
// is taken by every agent.
func TestMixedReleases(t *testing.T) {
	const prefix = "127.22.14"
	previous, nomad := previousRelease(t), nomadBin(t)
	token := newToken(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	var procs []*proc
	for i := range 3 {
		addr, name := prefix+"."+string(rune('1'+i)), "node"+string(rune('1'+i))
		agent := bin
		if i == 2 {
			agent = previous
		}
		p := startBinary(t, agent, nil, filepath.Join(dir, name), name, "-bind", addr, "-join", prefix+".1", "-token-file", tokenFile,
			"-settle", "1s", "-min-members", "3", "-supervise", "process", "-nomad", nomad)
		p.addr = addr
		procs = append(procs, p)
		if i == 0 {
			waitFor(t, 30*time.Second, "the seed agent to answer", func() bool {
				_, code := statusJSON(t, p.root)
				return code != 2
			})
		}
	}
	waitForOr(t, 120*time.Second, "every agent, of either release, to run a healthy Nomad", allRunning(t, procs), explainCluster(t, procs))
	waitSamePlan(t, procs, 30*time.Second)

	// A change made on this release's server, then one made on the
	// previous release's, each taken by all three.
	version := uint64(0)
	for _, via := range []struct {
		agent string
		p     *proc
	}{{bin, procs[0]}, {previous, procs[2]}} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, via.agent, "token", "rotate", "-client", "-root", via.p.root).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("token rotate -client on %s: %v\n%s", via.p.name, err, out)
		}
		version++
		waitForOr(t, 30*time.Second, "every agent to take the cluster state of the rotation on "+via.p.name, func() bool {
			for _, p := range procs {
				if s, _ := statusJSON(t, p.root); s.Cluster == nil || s.Cluster.Version < version || s.Cluster.ClientToken.Generation != uint32(version) {
					return false
				}
			}
			return true
		}, explainCluster(t, procs))
	}
	for _, p := range procs {
		if s, code := statusJSON(t, p.root); code != 0 {
			t.Errorf("%s: status exits %d: %q", p.name, code, s.Warnings)
		}
	}
}
