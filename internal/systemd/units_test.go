package systemd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/golden"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadver"

	"github.com/coreos/go-systemd/v22/unit"
)

// packagedUnit is the unit the .deb and .rpm ship; it must stay what
// AgentUnit renders for the packaged binary.
const packagedUnit = "../../packaging/nomad-bootstrapd.service"

func TestGolden(t *testing.T) {
	tests := []struct {
		file string
		got  []byte
	}{
		{"testdata/nomad-bootstrapd.service", AgentUnit("/usr/bin/nomad-bootstrapd")},
		{packagedUnit, AgentUnit("/usr/bin/nomad-bootstrapd")},
	}
	// nomad.service for each supported Nomad line: Type= follows whether
	// that Nomad tells systemd it is ready.
	for _, v := range nomadver.Lines {
		tests = append(tests, struct {
			file string
			got  []byte
		}{"testdata/nomad-" + v.Line() + ".service", NomadUnit("/usr/bin/nomad", "/etc/nomad.d", nomadver.Must(v).NotifyReady)})
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) { golden.Check(t, tt.file, tt.got) })
	}
}

// TestUnitsParse checks that systemd's own syntax, as go-systemd reads it,
// gives back the values the units were built from.
func TestUnitsParse(t *testing.T) {
	get := func(t *testing.T, content []byte) map[string]string {
		t.Helper()
		opts, err := unit.DeserializeOptions(strings.NewReader(string(content)))
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, o := range opts {
			m[o.Section+"."+o.Name] = o.Value
		}
		return m
	}
	nomad := get(t, NomadUnit("/opt/nomad/bin/nomad", "/srv/nomad.d", true))
	for k, want := range map[string]string{
		"Service.Type":            "notify",
		"Service.ExecStart":       "/opt/nomad/bin/nomad agent -config /srv/nomad.d",
		"Service.EnvironmentFile": "-/srv/nomad.d/nomad.env",
		"Service.KillMode":        "process",
		"Service.KillSignal":      "SIGINT",
		"Service.OOMScoreAdjust":  "-1000",
		"Install.WantedBy":        "multi-user.target",
	} {
		if nomad[k] != want {
			t.Errorf("nomad.service %s = %q, want %q", k, nomad[k], want)
		}
	}
	agent := get(t, AgentUnit("/usr/local/bin/nomad-bootstrapd"))
	for k, want := range map[string]string{
		"Service.Type":             "notify",
		"Service.ExecStart":        "/usr/local/bin/nomad-bootstrapd agent",
		"Service.RuntimeDirectory": "nomad-bootstrapd",
		"Service.StateDirectory":   "nomad-bootstrapd",
		"Install.WantedBy":         "multi-user.target",
	} {
		if agent[k] != want {
			t.Errorf("nomad-bootstrapd.service %s = %q, want %q", k, agent[k], want)
		}
	}
}

func TestExecLine(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"/usr/bin/nomad", "agent"}, "/usr/bin/nomad agent"},
		{[]string{"/tmp/my dir/nomad", "-config", "/etc/nomad.d"}, `"/tmp/my dir/nomad" -config /etc/nomad.d`},
		{[]string{"/x/100%/nomad"}, "/x/100%%/nomad"},
		{[]string{"/x/$HOME/nomad"}, "/x/$$HOME/nomad"},
		{[]string{`/x/a"b`}, `"/x/a\"b"`},
		{[]string{`/x/a\b`}, `/x/a\\b`},
		{[]string{""}, `""`},
	}
	for _, tt := range tests {
		if got := execLine(tt.args...); got != tt.want {
			t.Errorf("execLine(%q) = %s, want %s", tt.args, got, tt.want)
		}
	}
}

func TestWriteUnit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "systemd", "system") // created by WriteUnit
	p := filepath.Join(dir, NomadService)
	content := NomadUnit("/usr/bin/nomad", "/etc/nomad.d", true)

	changed, err := WriteUnit(dir, NomadService, content)
	if err != nil || !changed {
		t.Fatalf("first write: changed=%v err=%v, want true, nil", changed, err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v, want 0644", fi.Mode().Perm())
	}

	// The same content again: nothing is written, not even the mtime.
	old := time.Unix(1_000_000, 0)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	changed, err = WriteUnit(dir, NomadService, content)
	if err != nil || changed {
		t.Fatalf("second write: changed=%v err=%v, want false, nil", changed, err)
	}
	if fi, _ := os.Stat(p); !fi.ModTime().Equal(old) {
		t.Errorf("unchanged unit was rewritten (mtime %v)", fi.ModTime())
	}

	// A wrong mode is repaired.
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err = WriteUnit(dir, NomadService, content); err != nil || !changed {
		t.Fatalf("after chmod: changed=%v err=%v, want true, nil", changed, err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v, want 0644", fi.Mode().Perm())
	}

	// New content replaces the old.
	other := NomadUnit("/opt/nomad", "/etc/nomad.d", true)
	if changed, err = WriteUnit(dir, NomadService, other); err != nil || !changed {
		t.Fatalf("new content: changed=%v err=%v, want true, nil", changed, err)
	}
	if got, _ := os.ReadFile(p); string(got) != string(other) {
		t.Errorf("content not replaced")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the unit (temporary files left?)", len(entries))
	}

	for _, bad := range []string{"", "../nomad.service", "a/b.service"} {
		if _, err := WriteUnit(dir, bad, content); err == nil {
			t.Errorf("WriteUnit(%q) succeeded, want an error", bad)
		}
	}
}

func TestUnitExists(t *testing.T) {
	root := t.TempDir()
	lib := filepath.Join(root, "lib")
	usr := filepath.Join(root, "usr")
	etc := filepath.Join(root, "etc")
	for _, d := range []string{lib, usr, etc} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(lib, NomadService), []byte("[Unit]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/null", filepath.Join(etc, "masked.service")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dirs []string
		want bool
	}{
		{NomadService, []string{usr, lib}, true},
		{NomadService, []string{usr}, false},
		{NomadService, []string{etc}, false},
		{"masked.service", []string{etc}, false},
		{"absent.service", []string{usr, lib, etc}, false},
	}
	for _, tt := range tests {
		if got := UnitExists(tt.name, tt.dirs...); got != tt.want {
			t.Errorf("UnitExists(%q, %v) = %v, want %v", tt.name, tt.dirs, got, tt.want)
		}
	}
}
