package systemd

import (
	"os"
	"path/filepath"
	"testing"
)

func TestServiceNeedsWrite(t *testing.T) {
	ours := NomadUnit("/usr/bin/nomad", "/etc/nomad.d", false)
	admin := []byte("[Service]\nExecStart=/opt/nomad agent\n")
	tests := []struct {
		name    string
		shipped []byte // the unit a package shipped; nil: none
		inDir   []byte // the unit already in Dir; nil: none
		follow  bool
		want    bool
	}{
		{name: "nothing installed", want: true},
		{name: "nothing installed, follow", follow: true, want: true},
		{name: "a package shipped it", shipped: admin, want: false},
		{name: "a package shipped it, follow", shipped: admin, follow: true, want: false},
		{name: "a package shipped it, ours in dir", shipped: admin, inDir: ours, follow: true, want: false},
		{name: "ours in dir", inDir: ours, want: false},
		{name: "ours in dir, follow", inDir: ours, follow: true, want: true},
		{name: "an administrator's in dir", inDir: admin, want: false},
		{name: "an administrator's in dir, follow", inDir: admin, follow: true, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir, lib := filepath.Join(root, "etc"), filepath.Join(root, "lib")
			for d, content := range map[string][]byte{dir: tt.inDir, lib: tt.shipped} {
				if content == nil {
					continue
				}
				if _, err := WriteUnit(d, NomadService, content); err != nil {
					t.Fatal(err)
				}
			}
			s := Service{Name: NomadService, Dir: dir, Shipped: []string{lib}, Content: ours, Follow: tt.follow}
			if got := s.needsWrite(); got != tt.want {
				t.Errorf("needsWrite = %v, want %v", got, tt.want)
			}
		})
	}
}

// A Service without Shipped directories does not look at the machine's own
// unit directories.
func TestServiceNeedsWriteNoShipped(t *testing.T) {
	dir := t.TempDir()
	s := Service{Name: NomadService, Dir: dir}
	if !s.needsWrite() {
		t.Fatal("needsWrite = false for an empty directory and no shipped directories")
	}
	if err := os.WriteFile(filepath.Join(dir, NomadService), []byte("[Service]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s.needsWrite() {
		t.Fatal("needsWrite = true with a unit in the directory")
	}
}
