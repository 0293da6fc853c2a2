package nomadconf

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	hclv1 "github.com/hashicorp/hcl"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/golden"
)

// testKey is a fixed gossip key (standard base64 of 32 bytes) for goldens.
const testKey = "+QUb8DBp48NZJUzeIBVlceFe0mRoNloSr2ifGMxElwI="

var prodTLS = TLS{
	CAFile:   "/etc/nomad.d/tls/ca.pem",
	CertFile: "/etc/nomad.d/tls/agent.pem",
	KeyFile:  "/etc/nomad.d/tls/agent-key.pem",
}

var serverJoin = []string{"10.0.0.11:4648", "10.0.0.12:4648", "10.0.0.13"}
var clientServers = []string{"10.0.0.11", "10.0.0.12:4647", "10.0.0.13:4647"}

// gpuMeta holds values that exercise escaping: quotes, backslashes, a lone
// '$' and '%', and non-ASCII text must come back unchanged from HCL v1.
var gpuMeta = map[string]string{
	"gpu_model": "nvidia-a100",
	"zone":      "rack-7",
	"note":      `say "hi" to C:\gpu at 100% of $HOME, 显卡`,
}

func baseAgent(name, ip string) Agent {
	return Agent{
		Name:          name,
		Region:        "global",
		Datacenter:    "dc1",
		DataDir:       "/opt/nomad/data",
		BindAddr:      ip,
		AdvertiseAddr: ip,
		LogLevel:      "info",
		TLS:           prodTLS,
		ACL:           true,
		Telemetry:     true,
	}
}

func client(pool string) *Client {
	return &Client{
		Servers:  clientServers,
		NodePool: pool,
		Options:  map[string]string{"driver.allowlist": "docker,exec,raw_exec"},
		RawExec:  pool == PoolBatch,
	}
}

// goldenCases are the layouts of the seed: a server that is also a warm
// client, a dedicated server, one client per pool plus a custom pool, and a
// node that lives on IPv6.
func goldenCases() map[string]Agent {
	cases := map[string]Agent{}

	a := baseAgent("server-1", "10.0.0.11")
	a.Server = &Server{BootstrapExpect: 3, Encrypt: testKey, RetryJoin: serverJoin, RetryInterval: 15 * time.Second}
	a.Client = client(PoolWarm)
	cases["server-client-warm"] = a

	a = baseAgent("server-2", "10.0.0.12")
	a.Server = &Server{BootstrapExpect: 3, Encrypt: testKey, RetryJoin: serverJoin, RetryInterval: 15 * time.Second}
	a.ManagedBy = "nomad-bootstrapd 0.1.0"
	cases["server"] = a

	for _, pool := range []string{PoolWarm, PoolBatch, PoolSpecial} {
		a = baseAgent("client-"+pool, "10.0.1.21")
		a.Client = client(pool)
		cases["client-"+pool] = a
	}

	a = baseAgent("client-batch-isolated", "10.0.1.22")
	a.Client = client(PoolBatch)
	a.Client.IsolatePool = true
	cases["client-batch-isolated"] = a

	a = baseAgent("client-gpu", "10.0.1.31")
	a.Datacenter = "dc2"
	a.LogLevel = ""
	a.Client = client("gpu")
	a.Client.Meta = gpuMeta
	a.Client.Options = map[string]string{
		"driver.allowlist":     "docker,exec",
		"fingerprint.denylist": "env_aws,env_gce,env_azure,env_digitalocean",
	}
	a.Telemetry = false
	cases["client-gpu"] = a

	// A node of the demo and the tests: a loopback address, and tasks on
	// the loopback interface too.
	a = baseAgent("client-loopback", "127.0.0.5")
	a.Client = client(PoolWarm)
	a.Client.Servers = []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	a.Client.NetworkInterface = "lo"
	a.Client.Options = map[string]string{"fingerprint.denylist": "env_aws,env_gce,env_azure,env_digitalocean"}
	a.Client.RawExec = true
	cases["client-loopback"] = a

	a = baseAgent("server-v6", "fd00:10::11")
	a.BindAddr = "::"
	a.Server = &Server{
		BootstrapExpect: 3,
		Encrypt:         testKey,
		RetryJoin:       []string{"fd00:10::11", "[fd00:10::12]:4648", "[fd00:10::13]:14648"},
		RetryInterval:   90 * time.Second,
	}
	a.Client = client(PoolSpecial)
	a.Client.Servers = []string{"[fd00:10::11]:4647", "fd00:10::12"}
	cases["server-client-ipv6"] = a
	return cases
}

func TestGolden(t *testing.T) {
	for name, a := range goldenCases() {
		t.Run(name, func(t *testing.T) {
			files, err := Render(a)
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join("testdata", name)
			if golden.Update() {
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				for _, f := range files {
					if err := os.WriteFile(filepath.Join(dir, f.Name), f.Content, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			var names []string
			for _, f := range files {
				names = append(names, f.Name)
				want, err := os.ReadFile(filepath.Join(dir, f.Name))
				if err != nil {
					t.Fatalf("%v (run go test -update to create the golden files)", err)
				}
				if diff := cmp.Diff(string(want), string(f.Content)); diff != "" {
					t.Errorf("%s differs from its golden (-golden +got), run go test -update if intended:\n%s", f.Name, diff)
				}
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if !slices.Contains(names, e.Name()) {
					t.Errorf("stale golden %s: Render no longer produces it", filepath.Join(dir, e.Name()))
				}
			}
		})
	}
}

// TestGoldenHCLv1 decodes every golden file the way Nomad does, with HCL v1,
// and checks the values that escaping could have changed.
func TestGoldenHCLv1(t *testing.T) {
	for name := range goldenCases() {
		t.Run(name, func(t *testing.T) {
			paths, err := filepath.Glob(filepath.Join("testdata", name, "*.hcl"))
			if err != nil || len(paths) == 0 {
				t.Fatalf("no golden files for %s (%v)", name, err)
			}
			for _, p := range paths {
				src, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				var m map[string]any
				if err := hclv1.Decode(&m, string(src)); err != nil {
					t.Errorf("%s: HCL v1: %v", p, err)
					continue
				}
				if len(m) == 0 {
					t.Errorf("%s: HCL v1 decoded nothing", p)
				}
			}
		})
	}

	src, err := os.ReadFile(filepath.Join("testdata", "client-gpu", ClientFile))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := hclv1.Decode(&m, string(src)); err != nil {
		t.Fatal(err)
	}
	cl := block(t, m, "client")
	meta := map[string]string{}
	for k, v := range block(t, cl, "meta") {
		meta[k], _ = v.(string)
	}
	want := map[string]string{"pool": "gpu"}
	for k, v := range gpuMeta {
		want[k] = v
	}
	if diff := cmp.Diff(want, meta); diff != "" {
		t.Errorf("client.meta after HCL v1 (-want +got):\n%s", diff)
	}
	opts := block(t, cl, "options")
	if got := opts["fingerprint.denylist"]; got != "env_aws,env_gce,env_azure,env_digitalocean" {
		t.Errorf("client.options[fingerprint.denylist] = %q", got)
	}
	for _, k := range []string{"gc_interval", "max_kill_timeout"} {
		s, _ := cl[k].(string)
		if _, err := time.ParseDuration(s); err != nil {
			t.Errorf("client.%s = %q: %v", k, s, err)
		}
	}
}

// TestGoldenLooseBlocks checks the keys of the blocks `nomad config
// validate` does not check: Nomad decodes consul blocks with mapstructure
// and plugin configs with the plugin's own spec, so a misspelt key there
// passes validate and is silently ignored.
func TestGoldenLooseBlocks(t *testing.T) {
	known := map[string][]string{
		// nomad/structs/config/consul.go, mapstructure tags
		"consul": {"auto_advertise", "client_auto_join", "server_auto_join"},
		// drivers/rawexec/driver.go, configSpec
		"plugin.raw_exec.config": {"denied_envvars", "denied_host_gids", "denied_host_uids", "enabled"},
	}
	checked := map[string]bool{}
	for name := range goldenCases() {
		paths, _ := filepath.Glob(filepath.Join("testdata", name, "*.hcl"))
		for _, p := range paths {
			src, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := hclv1.Decode(&m, string(src)); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if _, ok := m["consul"]; ok {
				for k := range block(t, m, "consul") {
					if !slices.Contains(known["consul"], k) {
						t.Errorf("%s: consul.%s is not a Nomad consul key", p, k)
					}
				}
				checked["consul"] = true
			}
			if _, ok := m["plugin"]; ok {
				plugins := block(t, m, "plugin")
				for name := range plugins {
					if name != "raw_exec" {
						t.Errorf("%s: unexpected plugin %q", p, name)
						continue
					}
					cfg := block(t, block(t, plugins, "raw_exec"), "config")
					for k := range cfg {
						if !slices.Contains(known["plugin.raw_exec.config"], k) {
							t.Errorf("%s: plugin.raw_exec.config.%s is not a raw_exec option", p, k)
						}
					}
					checked["plugin"] = true
				}
			}
		}
	}
	if !checked["consul"] || !checked["plugin"] {
		t.Errorf("goldens lack a consul block or a raw_exec plugin: %v", checked)
	}
}

// block returns the single object HCL v1 decodes a block (or an object
// attribute) into: a one-element []map[string]any.
func block(t *testing.T, m map[string]any, key string) map[string]any {
	t.Helper()
	list, ok := m[key].([]map[string]any)
	if !ok || len(list) != 1 {
		t.Fatalf("%s: want one block, got %#v", key, m[key])
	}
	return list[0]
}

// nomadBinary finds the real Nomad: $NOMAD_BIN, else the binary `make nomad`
// caches in the repository.
func nomadBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("NOMAD_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("NOMAD_BIN: %v", err)
		}
		return p
	}
	p, err := filepath.Abs(filepath.Join("..", "..", ".cache", "nomad-v1.6.3"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Skip("real nomad not built; run make nomad")
	}
	return p
}

// TestNomadConfigValidate runs the real `nomad config validate` on each
// golden layout, rendered into a temporary directory with real (throwaway)
// TLS files and data_dir.
//
// What Nomad 1.6.3's validate checks (command/config_validate.go and
// agent.Command.IsValidConfig): every *.hcl of the directory decodes with
// HCL v1 into the agent config with no unknown key at any level (consul and
// plugin blocks are decoded loosely), durations parse, the merged config
// has server or client enabled, region/datacenter have no NUL (or '*'),
// the telemetry intervals are positive, the server encrypt key is base64,
// data_dir is absolute, client meta keys are valid dotted names, the node
// pool matches ^[a-zA-Z0-9-_]{1,128}$ and is not "all", dynamic port ranges
// are sane. It does not check that data_dir exists. It only warns — exit
// status 0 — when mTLS is off, when the TLS files cannot be read, for
// bootstrap_expect 1 or an even bootstrap_expect; so the test also fails on
// any WARNING in the output.
func TestNomadConfigValidate(t *testing.T) {
	bin := nomadBinary(t)
	for name, a := range goldenCases() {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			a.TLS = writeDummyTLS(t, dir)
			a.DataDir = filepath.Join(dir, "data")
			files, err := Render(a)
			if err != nil {
				t.Fatal(err)
			}
			confDir := filepath.Join(dir, "nomad.d")
			if err := os.Mkdir(confDir, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				if err := os.WriteFile(filepath.Join(confDir, f.Name), f.Content, f.Mode); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "config", "validate", confDir)
			cmd.Env = append(os.Environ(), "NOMAD_ADDR=", "NOMAD_TOKEN=")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("nomad config validate: %v\n%s", err, out)
			}
			if !bytes.Contains(out, []byte("Configuration is valid!")) ||
				bytes.Contains(out, []byte("WARNING")) || bytes.Contains(out, []byte("Error")) {
				t.Fatalf("nomad config validate accepted the files but said:\n%s", out)
			}
		})
	}
}

// TestNomadConfigValidateRejects makes sure the validate test can fail: an
// unknown key and a bad duration in a file of ours are refused.
func TestNomadConfigValidateRejects(t *testing.T) {
	bin := nomadBinary(t)
	for name, extra := range map[string]string{
		"unknown key":  "client {\n  gc_intervals = \"1m\"\n}\n",
		"bad duration": "client {\n  gc_interval = \"5 minutes\"\n}\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			a := goldenCases()["client-warm"]
			a.TLS = writeDummyTLS(t, dir)
			files, err := Render(a)
			if err != nil {
				t.Fatal(err)
			}
			confDir := filepath.Join(dir, "nomad.d")
			if err := os.Mkdir(confDir, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				if err := os.WriteFile(filepath.Join(confDir, f.Name), f.Content, f.Mode); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(confDir, "zz-operator.hcl"), []byte(extra), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "config", "validate", confDir).CombinedOutput()
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) {
				t.Fatalf("nomad config validate: want a non-zero exit, got %v\n%s", err, out)
			}
		})
	}
}

// writeDummyTLS writes a throwaway self-signed ECDSA certificate and key
// into dir and returns the TLS paths pointing at them.
func writeDummyTLS(t *testing.T, dir string) TLS {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "server.global.nomad"},
		DNSNames:              []string{"server.global.nomad", "client.global.nomad", "localhost"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	tls := TLS{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "agent.pem"),
		KeyFile:  filepath.Join(dir, "agent-key.pem"),
	}
	for path, data := range map[string][]byte{tls.CAFile: certPEM, tls.CertFile: certPEM, tls.KeyFile: keyPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return tls
}
