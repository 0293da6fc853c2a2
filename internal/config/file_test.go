package config

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Only a regular file is read as the configuration file; anything else is
// refused at once, without waiting for a writer.
func TestReadFileRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(regular, []byte("expect = 5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.hcl")
	if err := os.Symlink(regular, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	big := filepath.Join(dir, "big.hcl")
	if err := os.WriteFile(big, []byte(strings.Repeat("# a comment line\n", maxFileSize/16)), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, want string // want: "" for a file that is read
	}{
		{regular, ""},
		{link, ""},
		{fifo, "is a named pipe, not a regular file"},
		{sock, "is a socket, not a regular file"},
		{"/dev/null", "is a device, not a regular file"},
		{dir, "is a directory; name the configuration file in it, such as " + regular},
		{big, "is larger than 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(strings.TrimPrefix(tt.path, dir), func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				l, err := ReadFile(tt.path, true)
				if err == nil && (len(l.Set) != 1 || l.Config.Expect != 5) {
					t.Errorf("ReadFile = %+v; want expect = 5", l)
				}
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("ReadFile blocked")
			}
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("ReadFile: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("ReadFile = %v; want an error with %q", err, tt.want)
			}
		})
	}
}
