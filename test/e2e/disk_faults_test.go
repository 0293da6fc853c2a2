package e2e

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
)

// mountReadOnly bind-mounts dir read-only onto itself until the test ends.
func mountReadOnly(t *testing.T, dir string) {
	t.Helper()
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mounting %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remounting %s read-only: %v", dir, err)
	}
}

// fullTmpfs mounts a small tmpfs on dir and fills it; removing the returned
// file frees it.
func fullTmpfs(t *testing.T, dir string) (filler string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		t.Fatalf("mounting a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	filler = filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := bytes.Repeat([]byte{'x'}, 4096)
	for range 128 {
		if _, err = f.Write(block); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the tmpfs: %v, want ENOSPC", err)
	}
	return filler
}

// Scenario 7: a node whose state and Nomad configuration directories are
// read-only restarts into the same plan without writing (it has nothing new
// to write); a new node whose disk is full stops with an error that names
// the file and the cause, and joins once there is room. Nothing of the
// cluster changes.
func TestFaultStateDirReadOnlyOrDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount file systems")
	}
	_, procs := clusterAt(t, "127.21.105", 3, func(int) []string { return nil })
	before := waitSettled(t, procs, 60*time.Second, "the cluster to settle")
	failures := 0
	var recovery []time.Duration

	t.Run("read-only state", func(t *testing.T) {
		p := procs[2]
		snap := nodeFiles(t, p)
		p.stop(syscall.SIGTERM)
		pp := paths.New(p.root)
		mountReadOnly(t, pp.StateDir())
		mountReadOnly(t, pp.NomadConfigDir())
		began := time.Now()
		procs[2] = start(t, p.root, p.name, p.args...)
		procs[2].addr = p.addr
		got := waitSettled(t, procs, 60*time.Second, "the node with read-only state to report its plan")
		recovery = append(recovery, time.Since(began))
		if got != before {
			failures++
			t.Errorf("plan %s, was %s", got, before)
		}
		for f, b := range nodeFiles(t, procs[2]) {
			if snap[f] != b {
				failures++
				t.Errorf("%s changed", filepath.Base(f))
			}
		}
		procs[2].stop(syscall.SIGTERM)
	})

	// The node is back on its own writable directories.
	p := procs[2]
	procs[2] = start(t, p.root, p.name, p.args...)
	procs[2].addr = p.addr

	t.Run("disk full", func(t *testing.T) {
		root := filepath.Join(filepath.Dir(procs[0].root), "node4")
		filler := fullTmpfs(t, root)
		args := slices.Clone(procs[0].args)
		args[slices.Index(args, "-bind")+1] = "127.21.105.4"
		_, stderr, code := run(t, append([]string{"agent", "-root", root, "-name", "node4", "-metrics-addr", ""}, args...)...)
		if code == 0 || !strings.Contains(stderr, "no space left on device") || !strings.Contains(stderr, "identity.key") && !strings.Contains(stderr, "node-id") {
			failures++
			t.Errorf("exit %d, stderr %q; want non-zero and the file that could not be written", code, stderr)
		}
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		late := start(t, root, "node4", args...)
		late.addr = "127.21.105.4"
		live := append(slices.Clone(procs), late)
		got := waitSettled(t, live, 60*time.Second, "the node to join once there is room")
		recovery = append(recovery, time.Since(began))
		if got != before {
			failures++
			t.Errorf("the cluster with the new node holds plan %s, want %s", got, before)
		}
		late.stop(syscall.SIGTERM)
	})
	figures(t, "read-only-or-full-disk", 2, failures, recovery)
}
