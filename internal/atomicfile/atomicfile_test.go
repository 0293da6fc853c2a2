package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name string
		old  []byte // nil: no file before
		data []byte
		perm os.FileMode
	}{
		{"new file", nil, []byte("hello"), 0o644},
		{"replace", []byte("old content that is longer"), []byte("new"), 0o600},
		{"empty", []byte("x"), []byte{}, 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "f")
			if tt.old != nil {
				if err := os.WriteFile(p, tt.old, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteFile(p, tt.data, tt.perm); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(tt.data) {
				t.Errorf("content = %q, want %q", got, tt.data)
			}
			fi, _ := os.Stat(p)
			if fi.Mode().Perm() != tt.perm {
				t.Errorf("mode = %v, want %v", fi.Mode().Perm(), tt.perm)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("directory holds %d entries, want only the file (temp file left behind?)", len(entries))
			}
		})
	}
}

func TestWriteFileFailureKeepsOld(t *testing.T) {
	if os.Geteuid() == 0 {
		// root ignores directory permissions; use a missing directory instead.
		err := WriteFile(filepath.Join(t.TempDir(), "missing", "f"), []byte("x"), 0o600)
		if err == nil {
			t.Fatal("WriteFile into a missing directory succeeded")
		}
		return
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o755)
	if err := WriteFile(p, []byte("new"), 0o644); err == nil {
		t.Fatal("WriteFile into a read-only directory succeeded")
	}
	got, _ := os.ReadFile(p)
	if string(got) != "old" {
		t.Errorf("old file changed to %q", got)
	}
}

func TestWriteFileIfChanged(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	for i, want := range []bool{true, false} {
		changed, err := WriteFileIfChanged(p, []byte("same"), 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if changed != want {
			t.Errorf("write %d: changed = %v, want %v", i, changed, want)
		}
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := WriteFileIfChanged(p, []byte("same"), 0o600)
	if err != nil || !changed {
		t.Errorf("mode change: changed = %v, err = %v; want true, nil", changed, err)
	}
}
