package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.hcl")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLayers(t *testing.T) {
	path := writeFile(t, `
token_file = "/etc/nomad-bootstrapd/token"
join       = ["10.0.0.5", "10.0.0.6:4650"]
pool       = "batch"
zone       = "a"
expect     = 5
settle     = "10s"
`)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(*Config)
	}{
		{"file only", nil, nil, func(c *Config) {}},
		{"flags override file", []string{"-pool", "warm", "-join", "10.0.0.9, 10.0.0.10", "-settle", "1s"}, nil, func(c *Config) {
			c.Pool = "warm"
			c.Join = []string{"10.0.0.9", "10.0.0.10"}
			c.Settle = time.Second
		}},
		{"env token overrides file token_file", nil, map[string]string{TokenEnv: "nbd1_x"}, func(c *Config) {
			c.Token, c.TokenFile = "nbd1_x", ""
		}},
		{"flag token overrides env", []string{"-token-file", "/tmp/t"}, map[string]string{TokenEnv: "nbd1_x"}, func(c *Config) {
			c.Token, c.TokenFile = "", "/tmp/t"
		}},
		{"unset flags keep file values", []string{"-name", "n1"}, nil, func(c *Config) { c.Name = "n1" }},
		{"server replace flag", []string{"-server-replace-after", "90s"}, nil, func(c *Config) { c.ServerReplaceAfter = 90 * time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			if err := c.LoadFile(path, true); err != nil {
				t.Fatal(err)
			}
			fs := flag.NewFlagSet("agent", flag.ContinueOnError)
			f := RegisterFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			c.ApplyEnv(func(k string) string { return tt.env[k] })
			f.Apply(&c)

			want := Default()
			want.TokenFile = "/etc/nomad-bootstrapd/token"
			want.Join = []string{"10.0.0.5", "10.0.0.6:4650"}
			want.Pool, want.Zone, want.Expect, want.Settle = "batch", "a", 5, 10*time.Second
			tt.want(&want)
			if diff := cmp.Diff(want, c); diff != "" {
				t.Errorf("config mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []string // substrings of the error
	}{
		{"unknown key", "pool = \"warm\"\nbogus = 1\n", []string{"config.hcl:2", `"bogus" is not expected`}},
		{"wrong type", "expect = \"three\"\n", []string{"config.hcl:1", "expect"}},
		{"syntax", "pool = \n", []string{"config.hcl:1"}},
		{"bad duration", "settle = \"soon\"\n", []string{"settle", "soon"}},
		{"bad server_replace_after", "server_replace_after = \"later\"\n", []string{"server_replace_after", "later", "10m"}},
		{"block not allowed", "server {\n}\n", []string{"config.hcl:1", "server"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			err := c.LoadFile(writeFile(t, tt.content), true)
			if err == nil {
				t.Fatal("LoadFile succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadFileMissing(t *testing.T) {
	c := Default()
	missing := filepath.Join(t.TempDir(), "none.hcl")
	if err := c.LoadFile(missing, false); err != nil {
		t.Errorf("optional missing file: %v", err)
	}
	if err := c.LoadFile(missing, true); err == nil {
		t.Error("required missing file: no error")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string // "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"even expect", func(c *Config) { c.Expect = 4 }, "even"},
		{"bad role", func(c *Config) { c.Role = "leader" }, "role"},
		{"min members below expect", func(c *Config) { c.MinMembers = 2 }, "min_members"},
		{"bootstrap size", func(c *Config) { c.BootstrapSize = 5 }, ""},
		{"negative bootstrap size", func(c *Config) { c.BootstrapSize = -1 }, "bootstrap_size -1 is negative"},
		{"bootstrap size below expect", func(c *Config) { c.BootstrapSize = 2 }, "bootstrap_size 2 is less than expect 3"},
		{"min members above bootstrap size", func(c *Config) { c.BootstrapSize, c.MinMembers = 4, 5 }, "min_members 5 is more than bootstrap_size 4"},
		{"bad pool", func(c *Config) { c.Pool = "my pool" }, "pool"},
		{"bad supervise", func(c *Config) { c.Supervise = "docker" }, "supervise"},
		{"bad port", func(c *Config) { c.Port = 70000 }, "port"},
		{"bad log level", func(c *Config) { c.LogLevel = "trace" }, "log_level"},
		{"zero server_replace_after", func(c *Config) { c.ServerReplaceAfter = 0 }, "server_replace_after"},
		{"metrics off", func(c *Config) { c.MetricsAddr = "" }, ""},
		{"metrics on all addresses", func(c *Config) { c.MetricsAddr = "0.0.0.0:9100" }, ""},
		{"metrics on localhost", func(c *Config) { c.MetricsAddr = "localhost:9100" }, ""},
		{"metrics on IPv6 loopback", func(c *Config) { c.MetricsAddr = "[::1]:4652" }, ""},
		{"metrics without port", func(c *Config) { c.MetricsAddr = "127.0.0.1" }, "metrics_addr"},
		{"metrics on a host name", func(c *Config) { c.MetricsAddr = "metrics.example:4652" }, "not an IP address"},
		{"metrics port out of range", func(c *Config) { c.MetricsAddr = "127.0.0.1:0" }, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestResolveToken(t *testing.T) {
	dir := t.TempDir()
	tf := filepath.Join(dir, "token")
	if err := os.WriteFile(tf, []byte("nbd1_abc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var warned []string
	c := Config{TokenFile: tf}
	got, err := c.ResolveToken(func(s string) { warned = append(warned, s) })
	if err != nil || got != "nbd1_abc" {
		t.Fatalf("ResolveToken = %q, %v", got, err)
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "chmod 600") {
		t.Errorf("warnings = %q, want one about the file mode", warned)
	}
	for _, c := range []Config{{}, {Token: "a", TokenFile: tf}, {TokenFile: filepath.Join(dir, "missing")}} {
		if _, err := c.ResolveToken(nil); err == nil {
			t.Errorf("ResolveToken(%+v) succeeded", c)
		}
	}
}

func TestEffectiveMinMembers(t *testing.T) {
	tests := []struct {
		expect, min, size, want int
	}{
		{expect: 3, want: 3},
		{expect: 3, min: 4, want: 4},
		{expect: 3, size: 5, want: 3},
		{expect: 3, size: 7, want: 4},
		{expect: 3, size: 100, want: 51},
		{expect: 5, size: 6, want: 5},
		{expect: 3, min: 3, size: 9, want: 3},
	}
	for _, tt := range tests {
		c := Default()
		c.Expect, c.MinMembers, c.BootstrapSize = tt.expect, tt.min, tt.size
		if got := c.EffectiveMinMembers(); got != tt.want {
			t.Errorf("expect %d, min_members %d, bootstrap_size %d: EffectiveMinMembers = %d, want %d", tt.expect, tt.min, tt.size, got, tt.want)
		}
	}
}
