package install

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const header = "# Managed by nomad-bootstrapd: changes are overwritten.\n"

func files(server bool) []File {
	fs := []File{{Name: "nomad-bootstrapd-agent.hcl", Content: []byte(header + "name = \"n1\"\n"), Mode: 0o644}}
	if server {
		fs = append(fs, File{Name: "nomad-bootstrapd-server.hcl", Content: []byte(header + "server {\n  enabled = true\n}\n"), Mode: 0o600})
	}
	return fs
}

func actions(cs []Change, dir string) []string {
	var out []string
	for _, c := range cs {
		rel, _ := filepath.Rel(dir, c.Path)
		out = append(out, c.Action+" "+rel)
	}
	return out
}

func TestApply(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nomad.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pkgDefault := "data_dir = \"/opt/nomad/data\"\nserver {\n  enabled = true\n  bootstrap_expect = 1\n}\n"
	os.WriteFile(filepath.Join(dir, "nomad.hcl"), []byte(pkgDefault), 0o644)
	os.WriteFile(filepath.Join(dir, "operator.hcl"), []byte("# mine\n"), 0o644)

	steps := []struct {
		name  string
		files []File
		want  []string
	}{
		{"first run", files(true), []string{"create nomad-bootstrapd-agent.hcl", "create nomad-bootstrapd-server.hcl", "backup nomad.hcl"}},
		{"second run changes nothing", files(true), nil},
		{"server role dropped", files(false), []string{"remove nomad-bootstrapd-server.hcl"}},
	}
	for _, st := range steps {
		got, err := Apply(dir, st.files)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if diff := cmp.Diff(st.want, actions(got, dir)); diff != "" {
			t.Errorf("%s: changes (-want +got):\n%s", st.name, diff)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "nomad.hcl"+BackupSuffix)); string(b) != pkgDefault {
		t.Errorf("backup holds %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "operator.hcl")); string(b) != "# mine\n" {
		t.Errorf("operator's own file changed: %q", b)
	}
	fi, _ := os.Stat(filepath.Join(dir, "nomad-bootstrapd-agent.hcl"))
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
}

func TestApplyRefusesForeignNames(t *testing.T) {
	for _, name := range []string{"", "nomad.hcl", "../nomad-bootstrapd-x.hcl", "sub/nomad-bootstrapd-x.hcl"} {
		if _, err := Apply(t.TempDir(), []File{{Name: name, Content: []byte("x"), Mode: 0o644}}); err == nil {
			t.Errorf("Apply accepted file name %q", name)
		}
	}
}

func TestDiff(t *testing.T) {
	dir := t.TempDir()
	if _, err := Apply(dir, files(true)); err != nil {
		t.Fatal(err)
	}
	if d, err := Diff(dir, files(true)); err != nil || d != "" {
		t.Fatalf("Diff after Apply = %q, %v; want empty", d, err)
	}
	changed := files(true)
	changed[0].Content = []byte(header + "name = \"n2\"\n")
	d, err := Diff(dir, changed)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "nomad-bootstrapd-agent.hcl")
	want := "--- a" + p + "\n+++ b" + p + "\n@@ -1,2 +1,2 @@\n " + strings.TrimSuffix(header, "\n") + "\n-name = \"n1\"\n+name = \"n2\"\n"
	if d != want {
		t.Errorf("Diff =\n%s\nwant\n%s", d, want)
	}
	if b, _ := os.ReadFile(p); !strings.Contains(string(b), "n1") {
		t.Error("Diff wrote the file")
	}
}

func TestUnifiedDiff(t *testing.T) {
	tests := []struct {
		name, a, b, want string
	}{
		{"equal", "x\n", "x\n", ""},
		{"new file", "", "a\nb\n", "--- /dev/null\n+++ bp\n@@ -0,0 +1,2 @@\n+a\n+b\n"},
		{"removed file", "a\n", "", "--- ap\n+++ /dev/null\n@@ -1,1 +0,0 @@\n-a\n"},
		{"two hunks", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "1\nX\n3\n4\n5\n6\n7\n8\n9\n10\nY\n12\n",
			"--- ap\n+++ bp\n@@ -1,5 +1,5 @@\n 1\n-2\n+X\n 3\n 4\n 5\n@@ -8,5 +8,5 @@\n 8\n 9\n 10\n-11\n+Y\n 12\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unifiedDiff("p", tt.a, tt.b); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
