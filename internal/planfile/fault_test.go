package planfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSaveDiskFullOrReadOnly writes plans into a small tmpfs, fills
// it, then remounts it read-only: a failed write is an error and leaves the
// plan and its backup as they were. It needs root to mount.
func TestSaveDiskFullOrReadOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	path := filepath.Join(dir, "plan.json")
	p1 := testPlan()
	p2 := p1.Clone()
	p2.Epoch, p2.Servers[2].Name, p2.Servers[2].ID = 2, "n4", "d"
	if err := Save(path, "c1", "a", p1, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := Save(path, "c1", "a", p2, time.Now()); err != nil {
		t.Fatal(err)
	}
	wantPlan, _ := os.ReadFile(path)
	wantBak, _ := os.ReadFile(path + ".bak")
	intact := func(what string) {
		t.Helper()
		gotPlan, _ := os.ReadFile(path)
		gotBak, _ := os.ReadFile(path + ".bak")
		if !bytes.Equal(gotPlan, wantPlan) || !bytes.Equal(gotBak, wantBak) {
			t.Errorf("%s: plan.json or plan.json.bak changed", what)
		}
		if p, err := Load(path, "c1", "a"); err != nil || p == nil || !p.Equal(p2) {
			t.Errorf("%s: Load = %v, %v; want epoch 2", what, p, err)
		}
	}
	p3 := p2.Clone()
	p3.Epoch = 3

	// Fill the file system.
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	block := bytes.Repeat([]byte{'x'}, 4096)
	for range 64 {
		if _, err = f.Write(block); err != nil {
			break
		}
	}
	f.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the tmpfs: %v, want ENOSPC", err)
	}
	if err := Save(path, "c1", "a", p3, time.Now()); err == nil {
		t.Error("Save on a full disk succeeded")
	}
	intact("disk full")

	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT|syscall.MS_RDONLY, "size=64k"); err != nil {
		t.Fatalf("remounting read-only: %v", err)
	}
	if err := Save(path, "c1", "a", p3, time.Now()); err == nil {
		t.Error("Save on a read-only file system succeeded")
	}
	intact("read-only")
}
