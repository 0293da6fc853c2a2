package systemd

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
)

// The packaged default configuration is checked here, next to the packaged
// unit, so that packaging/ is tested by go test.
const packagedConfig = "../../packaging/config.hcl"

// TestPackagedConfig checks the packaged configuration file against the
// table of settings: it documents every setting, sets only token_file, and
// its commented examples are every setting but token, valid together.
func TestPackagedConfig(t *testing.T) {
	src, err := os.ReadFile(packagedConfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range config.Fields() {
		re := `(?m)^(# )?` + regexp.QuoteMeta(f.Key) + ` = `
		if f.Block != "" {
			re = `(?m)^# ` + regexp.QuoteMeta(f.Block) + ` \{\n(#  +[a-z_]+ += .*\n)*#  +` + regexp.QuoteMeta(f.Key) + ` += `
		}
		if !regexp.MustCompile(re).Match(src) {
			t.Errorf("%s does not document %s", packagedConfig, f.Name())
		}
	}

	// As shipped: only token_file is set.
	file, err := config.ReadFile(packagedConfig, true)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default()
	want.TokenFile = "/etc/nomad-bootstrapd/token"
	if diff := cmp.Diff(want, config.Merge(config.Defaults(), file)); diff != "" {
		t.Errorf("shipped config (-defaults with token_file +shipped):\n%s", diff)
	}

	// Every example, uncommented (but token, which excludes token_file),
	// is accepted and valid.
	re := regexp.MustCompile(`(?m)^# ([a-z_]+ = .*|[a-z_]+ \{|  +[a-z_]+ += .*|\})$`)
	var b strings.Builder
	for _, m := range re.FindAllSubmatch(src, -1) {
		if !strings.HasPrefix(string(m[1]), "token ") {
			b.Write(m[1])
			b.WriteByte('\n')
		}
	}
	p := filepath.Join(t.TempDir(), "config.hcl")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	examples, err := config.ReadFile(p, true)
	if err != nil {
		t.Fatalf("uncommented examples: %v\n%s", err, b.String())
	}
	c := config.Merge(config.Defaults(), examples)
	if err := c.Validate(); err != nil {
		t.Errorf("uncommented examples do not validate: %v\n%s", err, b.String())
	}
	for _, f := range config.Fields() {
		if example := examples.Set[f.Name()]; example != (f.Name() != "token" && f.Name() != "token_file") {
			t.Errorf("%s: commented example %v, want one for every setting but token and token_file", f.Name(), example)
		}
	}
}
