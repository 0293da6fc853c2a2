package systemd

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
)

// The packaged default configuration is checked here, next to the packaged
// unit, so that packaging/ is tested by go test.
const packagedConfig = "../../packaging/config.hcl"

// configKeys are the keys of the agent's configuration file.
var configKeys = []string{
	"token", "token_file", "join", "bind", "advertise", "port", "name", "role",
	"pool", "zone", "datacenter", "region", "expect", "min_members", "bootstrap_size", "settle",
	"supervise", "nomad", "log_level", "dedicated_servers", "raw_exec", "isolate_pools",
}

func TestPackagedConfig(t *testing.T) {
	src, err := os.ReadFile(packagedConfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range configKeys {
		if !regexp.MustCompile(`(?m)^(# )?` + k + ` = `).Match(src) {
			t.Errorf("%s does not document %s", packagedConfig, k)
		}
	}

	// As shipped: only token_file is set.
	file, err := config.ReadFile(packagedConfig, true)
	if err != nil {
		t.Fatal(err)
	}
	c := config.Merge(config.Defaults(), file)
	want := config.Default()
	want.TokenFile = "/etc/nomad-bootstrapd/token"
	if c.TokenFile != want.TokenFile || c.Port != want.Port || c.Expect != want.Expect || c.Token != "" || c.Join != nil {
		t.Errorf("shipped config = %+v, want the defaults with token_file", c)
	}

	// Every example, uncommented (but token, which excludes token_file),
	// is accepted and valid.
	re := regexp.MustCompile(`(?m)^# ([a-z_]+ = .*)$`)
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
	c = config.Merge(config.Defaults(), examples)
	if err := c.Validate(); err != nil {
		t.Errorf("uncommented examples do not validate: %v\n%s", err, b.String())
	}
	if got := strings.Count(b.String(), "\n"); got != len(configKeys)-2 {
		t.Errorf("%d commented examples, want %d (every key but token and token_file)", got, len(configKeys)-2)
	}
}
