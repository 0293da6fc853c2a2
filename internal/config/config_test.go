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

// load merges the defaults, the file at path, the environment env and the
// command line args, as the agent does.
func load(t *testing.T, path string, env map[string]string, args ...string) Config {
	t.Helper()
	file, err := ReadFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	f := RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return Merge(Defaults(), file, Env(func(k string) string { return env[k] }), f.Layer())
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
		{"both token flags are kept for Validate", []string{"-token-file", "/tmp/t", "-token", "nbd1_y"}, nil, func(c *Config) {
			c.Token, c.TokenFile = "nbd1_y", "/tmp/t"
		}},
		{"unset flags keep file values", []string{"-name", "n1"}, nil, func(c *Config) { c.Name = "n1" }},
		{"flag set to the default wins over the file", []string{"-expect", "3", "-pool", "default"}, nil, func(c *Config) {
			c.Expect, c.Pool = 3, "default"
		}},
		{"empty join flag clears the file's seeds", []string{"-join", ""}, nil, func(c *Config) { c.Join = nil }},
		{"server replace flag", []string{"-server-replace-after", "90s"}, nil, func(c *Config) { c.ServerReplaceAfter = 90 * time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := load(t, path, tt.env, tt.args...)
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

// TestMerge checks that each layer overrides the ones before it, only in
// the settings it gives.
func TestMerge(t *testing.T) {
	layer := func(source string, c Config, set ...string) Layer {
		l := Layer{Source: source, Config: c}
		for _, s := range set {
			l.set(s)
		}
		return l
	}
	file := layer("file", Config{Pool: "batch", Expect: 5, Settle: time.Minute, Token: "nbd1_file", Join: []string{"10.0.0.5"}},
		"pool", "expect", "settle", "token", "join")
	tests := []struct {
		name   string
		layers []Layer
		want   func(*Config)
	}{
		{"defaults", []Layer{Defaults()}, func(*Config) {}},
		{"file over defaults", []Layer{Defaults(), file}, func(c *Config) {
			c.Pool, c.Expect, c.Settle, c.Token, c.Join = "batch", 5, time.Minute, "nbd1_file", []string{"10.0.0.5"}
		}},
		{"file setting the zero value", []Layer{Defaults(), layer("file", Config{}, "port", "metrics_addr")}, func(c *Config) {
			c.Port, c.MetricsAddr = 0, ""
		}},
		{"environment over file", []Layer{Defaults(), file, layer("environment", Config{Token: "nbd1_env"}, "token")}, func(c *Config) {
			c.Pool, c.Expect, c.Settle, c.Token, c.Join = "batch", 5, time.Minute, "nbd1_env", []string{"10.0.0.5"}
		}},
		{"environment token clears the file's token_file", []Layer{Defaults(), layer("file", Config{TokenFile: "/t"}, "token_file"), layer("environment", Config{Token: "nbd1_env"}, "token")}, func(c *Config) {
			c.Token = "nbd1_env"
		}},
		{"flags over environment", []Layer{Defaults(), file, layer("environment", Config{Token: "nbd1_env"}, "token"), layer("flags", Config{TokenFile: "/t", Pool: "warm"}, "token_file", "pool")}, func(c *Config) {
			c.Pool, c.Expect, c.Settle, c.TokenFile, c.Join = "warm", 5, time.Minute, "/t", []string{"10.0.0.5"}
		}},
		{"flag explicitly set to the default wins over the file", []Layer{Defaults(), file, layer("flags", Default(), "expect", "pool", "settle")}, func(c *Config) {
			c.Token, c.Join = "nbd1_file", []string{"10.0.0.5"}
		}},
		{"flag not set keeps the file's value", []Layer{Defaults(), file, layer("flags", Default())}, func(c *Config) {
			c.Pool, c.Expect, c.Settle, c.Token, c.Join = "batch", 5, time.Minute, "nbd1_file", []string{"10.0.0.5"}
		}},
		{"a layer giving both tokens keeps both", []Layer{Defaults(), layer("flags", Config{Token: "a", TokenFile: "/t"}, "token", "token_file")}, func(c *Config) {
			c.Token, c.TokenFile = "a", "/t"
		}},
		{"block setting", []Layer{Defaults(), layer("file", Config{CA: CAFiles{CertFile: "c", KeyFile: "k", ChainFile: "r"}}, "ca.cert_file", "ca.key_file", "ca.chain_file")}, func(c *Config) {
			c.CA = CAFiles{CertFile: "c", KeyFile: "k", ChainFile: "r"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := Default()
			tt.want(&want)
			if diff := cmp.Diff(want, Merge(tt.layers...)); diff != "" {
				t.Errorf("Merge (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMergeCopiesLists checks that a merged Config shares no list with a
// layer.
func TestMergeCopiesLists(t *testing.T) {
	l := Layer{Config: Config{Join: []string{"a"}}, Set: map[string]bool{"join": true}}
	c := Merge(l)
	c.Join[0] = "b"
	if l.Config.Join[0] != "a" {
		t.Error("Merge shares the Join list with its layer")
	}
}

func TestEnv(t *testing.T) {
	env := map[string]string{TokenEnv: "nbd1_x", "NOMAD_BOOTSTRAPD_POOL": "warm"}
	l := Env(func(k string) string { return env[k] })
	if diff := cmp.Diff(map[string]bool{"token": true}, l.Set); diff != "" {
		t.Errorf("Env sets (-want +got):\n%s", diff)
	}
	if l.Config.Token != "nbd1_x" {
		t.Errorf("Env token = %q", l.Config.Token)
	}
	if l := Env(func(string) string { return "" }); len(l.Set) != 0 {
		t.Errorf("empty environment sets %v", l.Set)
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
		{"key of a block at the top", "cert_file = \"c\"\n", []string{"config.hcl:1", `"cert_file" is not expected`}},
		{"unknown key in a block", "ca {\n  cert_file = \"c\"\n  key_file = \"k\"\n  chain_file = \"r\"\n  port = 1\n}\n", []string{"config.hcl:5", `"port" is not expected`}},
		{"incomplete block", "ca {\n  cert_file = \"c\"\n}\n", []string{"config.hcl:1", `"key_file" is required`}},
		{"two blocks", "ca {\n  cert_file = \"c\"\n  key_file = \"k\"\n  chain_file = \"r\"\n}\nca {\n  cert_file = \"c\"\n  key_file = \"k\"\n  chain_file = \"r\"\n}\n", []string{"config.hcl:6", "Duplicate ca block"}},
		{"list of numbers", "join = [1, {}]\n", []string{"config.hcl:1", "join"}},
		{"bad cert_lifetime", "cert_lifetime = \"long\"\n", []string{"cert_lifetime", "long", `"24h"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadFile(writeFile(t, tt.content), true)
			if err == nil {
				t.Fatal("ReadFile succeeded")
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
	missing := filepath.Join(t.TempDir(), "none.hcl")
	if l, err := ReadFile(missing, false); err != nil || len(l.Set) != 0 {
		t.Errorf("optional missing file: %v, sets %v", err, l.Set)
	}
	if _, err := ReadFile(missing, true); err == nil {
		t.Error("required missing file: no error")
	}
}

// TestReadFileEveryKey writes every setting of the table into a file and
// reads it back.
func TestReadFileEveryKey(t *testing.T) {
	path := writeFile(t, `
token                = "nbd1_x"
token_file           = "/t"
join                 = ["10.0.0.5"]
bind                 = "10.0.0.1"
advertise            = "10.0.0.2"
port                 = 4700
name                 = "n1"
role                 = "server"
pool                 = "warm"
zone                 = "z"
datacenter           = "dc2"
region               = "eu"
expect               = 5
min_members          = 6
bootstrap_size       = 7
settle               = "4s"
supervise            = "process"
nomad                = "/opt/nomad"
nomad_dir            = "/opt/nomad.d"
log_level            = "debug"
ca_failover_after    = "3m"
behind_nat           = true
cert_lifetime        = "100h"
gossip_key_rotation  = "48h"
ca_rotation_percent  = 90
snapshot_interval    = "2h"
snapshot_retain      = 5
metrics_addr         = ""
server_replace_after = "20m"
dedicated_servers    = true
raw_exec             = true
isolate_pools        = true
ca {
  cert_file  = "c.pem"
  key_file   = "k.pem"
  chain_file = "r.pem"
}
`)
	l, err := ReadFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Token: "nbd1_x", TokenFile: "/t", Join: []string{"10.0.0.5"}, Bind: "10.0.0.1", Advertise: "10.0.0.2",
		Port: 4700, Name: "n1", Role: "server", Pool: "warm", Zone: "z", Datacenter: "dc2", Region: "eu",
		Expect: 5, MinMembers: 6, BootstrapSize: 7, Settle: 4 * time.Second, Supervise: "process",
		Nomad: "/opt/nomad", NomadDir: "/opt/nomad.d", LogLevel: "debug", CAFailoverAfter: 3 * time.Minute, CertLifetime: 100 * time.Hour,
		GossipKeyRotation: 48 * time.Hour, CARotationPercent: 90, SnapshotInterval: 2 * time.Hour, SnapshotRetain: 5, ServerReplaceAfter: 20 * time.Minute, DedicatedServers: true, RawExec: true, IsolatePools: true, BehindNAT: true,
		CA: CAFiles{CertFile: "c.pem", KeyFile: "k.pem", ChainFile: "r.pem"},
	}
	if diff := cmp.Diff(want, l.Config); diff != "" {
		t.Errorf("file (-want +got):\n%s", diff)
	}
	for _, f := range Fields() {
		if !l.Set[f.Name()] {
			t.Errorf("the file sets %s, the layer does not say so", f.Name())
		}
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
		{"bad supervise", func(c *Config) { c.Supervise = "docker" }, `supervise "docker" is not one of systemd, process, none`},
		{"bad port", func(c *Config) { c.Port = 70000 }, "port"},
		{"highest port", func(c *Config) { c.Port = 65534 }, ""},
		{"no port left for the CA", func(c *Config) { c.Port = 65535 }, "port 65535 is out of range 1-65534"},
		{"dotted region", func(c *Config) { c.Region = "eu.west" }, `region "eu.west" is invalid: use one DNS label`},
		{"region with an underscore", func(c *Config) { c.Region = "eu_west" }, `region "eu_west" is invalid`},
		{"region ending in a hyphen", func(c *Config) { c.Region = "eu-" }, `region "eu-" is invalid`},
		{"region of 64 characters", func(c *Config) { c.Region = strings.Repeat("a", 64) }, "is invalid"},
		{"region of 63 characters", func(c *Config) { c.Region = strings.Repeat("a", 63) }, ""},
		{"empty region", func(c *Config) { c.Region = "" }, `region "" is invalid`},
		{"region with a hyphen", func(c *Config) { c.Region = "eu-west-1" }, ""},
		{"bad log level", func(c *Config) { c.LogLevel = "trace" }, `log_level "trace" is not one of debug, info, warn, error`},
		{"zero server_replace_after", func(c *Config) { c.ServerReplaceAfter = 0 }, "server_replace_after"},
		{"cert_lifetime of an hour", func(c *Config) { c.CertLifetime = time.Hour }, ""},
		{"cert_lifetime of 90 days", func(c *Config) { c.CertLifetime = 90 * 24 * time.Hour }, ""},
		{"cert_lifetime under an hour", func(c *Config) { c.CertLifetime = 59 * time.Minute }, "cert_lifetime 59m0s is shorter than 1h0m0s"},
		{"cert_lifetime of a minute", func(c *Config) { c.CertLifetime = time.Minute }, "shorter than"},
		{"renewal within the CA failover", func(c *Config) { c.CertLifetime, c.CAFailoverAfter = 2*time.Hour, time.Hour },
			"cert_lifetime 2h0m0s is renewed at half, 1h0m0s before expiry, which is not longer than ca_failover_after 1h0m0s"},
		{"renewal just outlasts the CA failover", func(c *Config) { c.CertLifetime, c.CAFailoverAfter = 2*time.Hour, 59*time.Minute }, ""},
		{"gossip_key_rotation off", func(c *Config) { c.GossipKeyRotation = 0 }, ""},
		{"gossip_key_rotation of an hour", func(c *Config) { c.GossipKeyRotation = time.Hour }, ""},
		{"gossip_key_rotation of a minute", func(c *Config) { c.GossipKeyRotation = time.Minute }, "gossip_key_rotation 1m0s is shorter than 1h0m0s; use 0"},
		{"ca_rotation_percent off", func(c *Config) { c.CARotationPercent = 0 }, ""},
		{"ca_rotation_percent of 50", func(c *Config) { c.CARotationPercent = 50 }, ""},
		{"ca_rotation_percent of 99", func(c *Config) { c.CARotationPercent = 99 }, ""},
		{"ca_rotation_percent of 10", func(c *Config) { c.CARotationPercent = 10 }, "ca_rotation_percent 10 is outside 50..99; use 0"},
		{"ca_rotation_percent of 100", func(c *Config) { c.CARotationPercent = 100 }, "ca_rotation_percent 100 is outside 50..99"},
		{"snapshot_interval off", func(c *Config) { c.SnapshotInterval = 0 }, ""},
		{"snapshot_interval of 30s", func(c *Config) { c.SnapshotInterval = 30 * time.Second }, ""},
		{"snapshot_interval of 5s", func(c *Config) { c.SnapshotInterval = 5 * time.Second }, "snapshot_interval 5s is shorter than 30s; use 0"},
		{"snapshot_retain of 1", func(c *Config) { c.SnapshotRetain = 1 }, ""},
		{"snapshot_retain of 0", func(c *Config) { c.SnapshotRetain = 0 }, "snapshot_retain 0 must be at least 1"},
		{"nomad_dir relative", func(c *Config) { c.NomadDir = "bin" }, "nomad_dir \"bin\" must be an absolute path"},
		{"nomad_dir absolute", func(c *Config) { c.NomadDir = "/opt/nomad.d" }, ""},
		{"seeds of every form", func(c *Config) {
			c.Join = []string{"10.0.0.5", "10.0.0.6:4650", "[fd00::1]:4650", "n1.example.com", "dns+srv://_gossip._tcp.example.com"}
		}, ""},
		{"seed with a bad port", func(c *Config) { c.Join = []string{"10.0.0.5:0"} }, `config: join: "10.0.0.5:0" has a bad port`},
		{"seed with a path", func(c *Config) { c.Join = []string{"http://10.0.0.5/"} }, `config: join: "http://10.0.0.5/" is not an address`},
		{"malformed SRV seed", func(c *Config) { c.Join = []string{"dns+srv://_gossip._tcp.example.com:4650"} }, "is not a DNS SRV seed"},
		{"ca_rotation_percent negative", func(c *Config) { c.CARotationPercent = -1 }, "ca_rotation_percent -1 is outside"},
		{"zero ca_failover_after", func(c *Config) { c.CAFailoverAfter = 0 }, "ca_failover_after 0s must be positive"},
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
