package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestJoinWritesConfigOnce(t *testing.T) {
	root := t.TempDir()
	token := newToken(t)
	args := []string{"join", "-root", root, "-token", token, "-join", "10.0.0.5,10.0.0.6", "-pool", "batch", "-zone", "b"}
	if out, stderr, code := run(t, args...); code != 0 || !strings.Contains(out, "not starting") {
		t.Fatalf("join exited %d: %s %s", code, out, stderr)
	}
	cfg := filepath.Join(root, "etc", "nomad-bootstrapd", "config.hcl")
	tok := filepath.Join(root, "etc", "nomad-bootstrapd", "token")
	for path, mode := range map[string]os.FileMode{cfg: 0o600, tok: 0o600} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != mode {
			t.Fatalf("%s: %v, mode %v; want %v", path, err, fi.Mode().Perm(), mode)
		}
	}
	content, _ := os.ReadFile(cfg)
	for _, want := range []string{`"10.0.0.5"`, `pool`, `"batch"`, `zone`, tok} {
		if !strings.Contains(string(content), want) {
			t.Errorf("config lacks %s:\n%s", want, content)
		}
	}
	if strings.Contains(string(content), token) {
		t.Error("the config file holds the token itself")
	}
	before, _ := os.Stat(cfg)
	time.Sleep(20 * time.Millisecond)
	if _, _, code := run(t, args...); code != 0 {
		t.Fatalf("second join exited %d", code)
	}
	if after, _ := os.Stat(cfg); !after.ModTime().Equal(before.ModTime()) {
		t.Error("a second identical join rewrote the config")
	}
	// The agent accepts what join wrote.
	if out, stderr, code := run(t, "agent", "-root", root, "-dry-run", "-bind", "127.0.207.1"); code != 0 || !strings.Contains(out, "10.0.0.5") {
		t.Errorf("agent -dry-run on join's config exited %d: %s %s", code, out, stderr)
	}

	other := t.TempDir()
	if _, stderr, code := run(t, "join", "-root", other, "-token", "nbd1_bad", "-join", "10.0.0.5"); code == 0 || !strings.Contains(stderr, "token") {
		t.Errorf("join with a bad token: exit %d, %q", code, stderr)
	}
	if entries, _ := os.ReadDir(other); len(entries) != 0 {
		t.Errorf("join with a bad token wrote %d entries", len(entries))
	}
}
