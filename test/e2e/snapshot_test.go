package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agent"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/snapshot"
)

// TestSnapshots runs three servers of real Nomad with a 30 s snapshot
// schedule that keeps two. Every server saves scheduled snapshots, mode
// 0600, that hold a snapshot `nomad operator snapshot inspect` reads and
// Nomad's root keys, and keeps only the newest two. snapshot save writes
// one on demand and refuses to overwrite a file. After the job and the
// Variable are deleted, snapshot restore brings both back, the Variable
// readable, and the state it replaced is saved first. A damaged snapshot
// and one of another cluster are refused, and change nothing.
func TestSnapshots(t *testing.T) {
	const prefix = "127.22.9"
	bin, dir := nomadBin(t), t.TempDir()
	_, procs := clusterAt(t, prefix, 3, func(int) []string {
		return []string{"-min-members", "3", "-supervise", "process", "-nomad", bin, "-snapshot-interval", "30s", "-snapshot-retain", "2"}
	})
	waitForOr(t, 120*time.Second, "every agent to run a healthy Nomad", allRunning(t, procs), explainCluster(t, procs))
	server := procs[0]
	env := append(nomadEnv(server.root, server.addr), "NOMAD_TOKEN="+managementToken(t, server.root))

	// The first scheduled snapshot is due as soon as a server's ACLs are
	// set up.
	waitForOr(t, 60*time.Second, "every server's first scheduled snapshot", func() bool {
		for _, p := range procs {
			if s, _ := statusJSON(t, p.root); s.Snapshots == nil || s.Snapshots.Kept == 0 {
				return false
			}
		}
		return true
	}, explainCluster(t, procs))
	stored, err := snapshot.List(paths.New(server.root).SnapshotsDir())
	if err != nil || len(stored) == 0 {
		t.Fatalf("scheduled snapshots: %v %v", stored, err)
	}
	first := stored[0]
	checkSnapshotFile(t, bin, first.Path)
	if fi, err := os.Stat(paths.New(server.root).SnapshotsDir()); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the snapshots directory: %v, %v", fi, err)
	}

	// Only the management token, which only the servers hold, takes a
	// snapshot from Nomad: the strongest of the other tokens is refused.
	for _, name := range []string{"ops-admin", "readonly"} {
		tokenEnv := append(nomadEnv(server.root, server.addr), "NOMAD_TOKEN="+readToken(t, server.root, name))
		if out, err := nomadCLI(t, bin, tokenEnv, "operator", "snapshot", "save", filepath.Join(dir, name+".snap")); err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("nomad operator snapshot save with the %s token: %v\n%s", name, err, out)
		}
	}

	runUnplacedJob(t, bin, env, dir)
	if out, err := nomadOnce(t, bin, env, "var", "put", "backup/check", "value=before-the-snapshot"); err != nil {
		t.Fatalf("var put: %v\n%s", err, out)
	}

	file := filepath.Join(dir, "manual.snap")
	out, stderr, code := runWithin(t, 2*time.Minute, "snapshot", "save", "-json", "-root", server.root, file)
	var ans agent.SnapshotAnswer
	if code != 0 || json.Unmarshal([]byte(out), &ans) != nil || ans.File != file || ans.Keys < 1 || ans.Size == 0 || ans.Node != server.name {
		t.Fatalf("snapshot save: exit %d, %q, %q", code, out, stderr)
	}
	checkSnapshotFile(t, bin, file)
	if _, stderr, code := run(t, "snapshot", "save", "-root", server.root, file); code != 1 || !strings.Contains(stderr, "exists already") {
		t.Errorf("snapshot save over an existing file: exit %d, %q", code, stderr)
	}

	// Lose the job and the Variable.
	if out, err := nomadOnce(t, bin, env, "job", "stop", "-purge", "-detach", "keep"); err != nil {
		t.Fatalf("job stop: %v\n%s", err, out)
	}
	if out, err := nomadOnce(t, bin, env, "var", "purge", "backup/check"); err != nil {
		t.Fatalf("var purge: %v\n%s", err, out)
	}
	if out, err := nomadOnce(t, bin, env, "job", "status", "keep"); err == nil {
		t.Fatalf("the job is still there after its purge:\n%s", out)
	}

	// A damaged snapshot and one of another cluster are refused.
	raw, _ := os.ReadFile(file)
	damaged := bytes.Clone(raw)
	damaged[len(damaged)-2048] ^= 0xff // inside Nomad's snapshot, the last entry
	damagedFile := filepath.Join(dir, "damaged.snap")
	os.WriteFile(damagedFile, damaged, 0o600)
	if _, stderr, code := run(t, "snapshot", "restore", "-root", server.root, damagedFile); code != 1 || !strings.Contains(stderr, "not a nomad-bootstrapd snapshot") {
		t.Errorf("restoring a damaged snapshot: exit %d, %q", code, stderr)
	}
	foreign := filepath.Join(dir, "foreign.snap")
	arc, err := snapshot.ReadFile(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := arc.Manifest
	m.Cluster = strings.Repeat("0", 32)
	if _, err := snapshot.ReadFile(file, func(r io.Reader) error {
		_, err := snapshot.Write(foreign, m, arc.Files, r)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := run(t, "snapshot", "restore", "-root", server.root, foreign); code != 1 || !strings.Contains(stderr, "run snapshot restore -other-cluster on the CA holder") {
		t.Errorf("restoring another cluster's snapshot: exit %d, %q", code, stderr)
	}
	if out, err := nomadOnce(t, bin, env, "job", "status", "keep"); err == nil {
		t.Fatalf("a refused restore brought the job back:\n%s", out)
	}

	// The restore, through another server than the one that saved it.
	other := procs[1]
	out, stderr, code = runWithin(t, 3*time.Minute, "snapshot", "restore", "-json", "-root", other.root, file)
	ans = agent.SnapshotAnswer{}
	if code != 0 || json.Unmarshal([]byte(out), &ans) != nil || ans.Before == "" || len(ans.KeysAdded) != 0 {
		t.Fatalf("snapshot restore: exit %d, %q, %q", code, out, stderr)
	}
	checkSnapshotFile(t, bin, ans.Before)
	if out, err := nomadOnce(t, bin, env, "job", "status", "-short", "keep"); err != nil || !strings.Contains(out, "keep") {
		t.Errorf("the job after the restore: %v\n%s", err, out)
	}
	if out, err := nomadOnce(t, bin, env, "var", "get", "-item", "value", "backup/check"); err != nil || strings.TrimSpace(out) != "before-the-snapshot" {
		t.Errorf("the Variable after the restore: %v\n%s", err, out)
	}
	for _, p := range procs {
		if s, code := statusJSON(t, p.root); code != 0 || s.Nomad == nil || s.Nomad.Leader == "" {
			t.Errorf("%s after the restore: exit %d, %+v", p.name, code, s.Nomad)
		}
	}

	// The schedule keeps the newest two.
	waitForOr(t, 120*time.Second, "the first scheduled snapshot to be removed, two kept", func() bool {
		s, err := snapshot.List(paths.New(server.root).SnapshotsDir())
		return err == nil && len(s) == 2 && s[0].TakenAt.After(first.TakenAt)
	}, func() {
		s, err := snapshot.List(paths.New(server.root).SnapshotsDir())
		t.Logf("snapshots: %v %v\n%s", s, err, server.log.String())
	})
	if s, _ := statusJSON(t, server.root); s.Snapshots == nil || s.Snapshots.Kept != 2 || s.Snapshots.Retain != 2 || s.Snapshots.Next.IsZero() {
		t.Errorf("status of the snapshots: %+v", s.Snapshots)
	}
	if out, err := nomadOnce(t, bin, env, "job", "stop", "-purge", "-detach", "keep"); err != nil {
		t.Errorf("job stop: %v\n%s", err, out)
	}

	// Every server of the cluster is lost; a cluster built anew takes
	// the snapshot saved on demand.
	deployer := readToken(t, server.root, "deployer")
	for _, p := range procs {
		p.stop(syscall.SIGTERM)
	}
	restoreIntoNewCluster(t, bin, file, managementToken(t, server.root), deployer)
}

// restoreIntoNewCluster restores the snapshot at file, of a cluster whose
// management and deployer tokens are given, into a new cluster of three
// servers: refused without -other-cluster and on a server that is not the
// CA holder; on the CA holder the snapshot's root keys are added, and the
// job, the Variable (decrypted with the old cluster's root key) and the old
// cluster's tokens are back, while every server sets its ACLs up again with
// the old management token and runs.
func restoreIntoNewCluster(t *testing.T, bin, file, mgmt, deployer string) {
	t.Helper()
	_, procs := clusterAt(t, "127.22.10", 3, func(int) []string {
		return []string{"-min-members", "3", "-supervise", "process", "-nomad", bin, "-snapshot-interval", "0"}
	})
	running := func() bool {
		for _, p := range procs {
			if s, code := statusJSON(t, p.root); code != 0 || s.Phase.String() != "running" || s.ACL == nil || s.ACL.State != "bootstrapped" {
				return false
			}
		}
		return true
	}
	waitForOr(t, 120*time.Second, "every agent of the new cluster to run a healthy Nomad", running, explainCluster(t, procs))
	s, _ := statusJSON(t, procs[0].root)
	var holder, other *proc
	for _, p := range procs {
		if p.name == s.Plan.CAHolder {
			holder = p
		} else {
			other = p
		}
	}
	if s.Snapshots == nil || s.Snapshots.Interval != "off" || s.Snapshots.Kept != 0 {
		t.Errorf("status of the snapshots with the schedule off: %+v", s.Snapshots)
	}
	if _, stderr, code := run(t, "snapshot", "restore", "-root", holder.root, file); code != 1 || !strings.Contains(stderr, "-other-cluster") {
		t.Errorf("restoring another cluster's snapshot without -other-cluster: exit %d, %q", code, stderr)
	}
	if _, stderr, code := run(t, "snapshot", "restore", "-other-cluster", "-root", other.root, file); code != 1 || !strings.Contains(stderr, "run it on the CA holder, "+holder.name) {
		t.Errorf("restoring another cluster's snapshot on a server that is not the CA holder: exit %d, %q", code, stderr)
	}
	out, stderr, code := runWithin(t, 4*time.Minute, "snapshot", "restore", "-other-cluster", "-json", "-root", holder.root, file)
	var ans agent.SnapshotAnswer
	if code != 0 || json.Unmarshal([]byte(out), &ans) != nil || len(ans.KeysAdded) == 0 {
		explainCluster(t, procs)()
		t.Fatalf("snapshot restore -other-cluster: exit %d, %q, %q", code, out, stderr)
	}
	waitForOr(t, 120*time.Second, "every server to set its ACLs up again with the old cluster's management token", func() bool {
		for _, p := range procs {
			if b, err := os.ReadFile(filepath.Join(paths.New(p.root).ACLDir(), "management.token")); err != nil || strings.TrimSpace(string(b)) != mgmt {
				return false
			}
		}
		return running()
	}, explainCluster(t, procs))
	env := append(nomadEnv(holder.root, holder.addr), "NOMAD_TOKEN="+mgmt)
	if out, err := nomadOnce(t, bin, env, "job", "status", "-short", "keep"); err != nil || !strings.Contains(out, "keep") {
		t.Errorf("the job in the new cluster: %v\n%s", err, out)
	}
	waitForOr(t, 60*time.Second, "the Variable to be readable in the new cluster", func() bool {
		out, err := nomadOnce(t, bin, env, "var", "get", "-item", "value", "backup/check")
		return err == nil && strings.TrimSpace(out) == "before-the-snapshot"
	}, func() {
		out, err := nomadOnce(t, bin, env, "var", "get", "-item", "value", "backup/check")
		t.Logf("var get: %v\n%s", err, out)
	})
	dep := append(nomadEnv(other.root, other.addr), "NOMAD_TOKEN="+deployer)
	if out, err := nomadOnce(t, bin, dep, "job", "status", "-short", "keep"); err != nil {
		t.Errorf("the old cluster's deployer token in the new cluster: %v\n%s", err, out)
	}
	if out, err := nomadOnce(t, bin, env, "job", "stop", "-purge", "-detach", "keep"); err != nil {
		t.Errorf("job stop: %v\n%s", err, out)
	}
}

// checkSnapshotFile checks that the snapshot at path is private, holds a
// root key, and holds a snapshot that Nomad reads.
func checkSnapshotFile(t *testing.T, bin, path string) {
	t.Helper()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, %v", path, fi, err)
	}
	inner := filepath.Join(t.TempDir(), "nomad.snap")
	arc, err := snapshot.ReadFile(path, func(r io.Reader) error {
		f, err := os.Create(inner)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(f, r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(arc.Keystore()) == 0 {
		t.Errorf("%s holds no root key", path)
	}
	if _, ok := arc.File(snapshot.PlanEntry); !ok {
		t.Errorf("%s holds no plan", path)
	}
	if out, err := nomadCLI(t, bin, nil, "operator", "snapshot", "inspect", inner); err != nil || !strings.Contains(out, "Index") {
		t.Errorf("nomad operator snapshot inspect %s: %v\n%s", path, err, out)
	}
}

// runUnplacedJob registers the job "keep", which no client can run, so that
// no task outlives the test.
func runUnplacedJob(t *testing.T, bin string, env []string, dir string) {
	t.Helper()
	job := filepath.Join(dir, "keep.nomad.hcl")
	os.WriteFile(job, []byte(`job "keep" {
  constraint {
    attribute = "${attr.kernel.name}"
    value     = "nowhere"
  }
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/true"
      }
    }
  }
}
`), 0o644)
	if out, err := nomadOnce(t, bin, env, "job", "run", "-detach", job); err != nil {
		t.Fatalf("job run: %v\n%s", err, out)
	}
}
