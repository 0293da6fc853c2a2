package nomadconf

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	hclv1 "github.com/hashicorp/hcl"
)

// validAgent is a server that is also a client, with every optional part set.
func validAgent() Agent {
	a := baseAgent("n1", "10.0.0.11")
	a.Server = &Server{BootstrapExpect: 3, Encrypt: testKey, RetryJoin: serverJoin, RetryInterval: 2 * time.Second}
	a.Client = client(PoolWarm)
	a.Client.Meta = map[string]string{"team": "infra", "rack": "r1", "owner": "ops"}
	a.Client.Options = map[string]string{"driver.allowlist": "docker", "fingerprint.denylist": "env_aws", "a.b.c": "x"}
	return a
}

func TestRenderRefuses(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Agent)
		field  string // FieldError.Field expected among the errors
	}{
		{"interpolation in name", func(a *Agent) { a.Name = "n-${node.unique.id}" }, "name"},
		{"template in name", func(a *Agent) { a.Name = "n-%{ if true }x%{ endif }" }, "name"},
		{"newline in name", func(a *Agent) { a.Name = "n1\nbootstrap_expect = 1" }, "name"},
		{"tab in name", func(a *Agent) { a.Name = "n\t1" }, "name"},
		{"NUL in name", func(a *Agent) { a.Name = "n\x001" }, "name"},
		{"DEL in name", func(a *Agent) { a.Name = "n\x7f1" }, "name"},
		{"C1 control in name", func(a *Agent) { a.Name = "n\u00851" }, "name"},
		{"invalid UTF-8 in name", func(a *Agent) { a.Name = "n\xff1" }, "name"},
		{"empty name", func(a *Agent) { a.Name = "" }, "name"},
		{"empty region", func(a *Agent) { a.Region = "" }, "region"},
		{"dotted region", func(a *Agent) { a.Region = "eu.west" }, "region"},
		{"empty datacenter", func(a *Agent) { a.Datacenter = "" }, "datacenter"},
		{"star in datacenter", func(a *Agent) { a.Datacenter = "dc*" }, "datacenter"},
		{"interpolation in datacenter", func(a *Agent) { a.Datacenter = "${dc}" }, "datacenter"},
		{"relative data_dir", func(a *Agent) { a.DataDir = "data" }, "data_dir"},
		{"hostname as bind_addr", func(a *Agent) { a.BindAddr = "node1.example" }, "bind_addr"},
		{"sockaddr template as bind_addr", func(a *Agent) { a.BindAddr = `{{ GetPrivateIP }}` }, "bind_addr"},
		{"empty advertise", func(a *Agent) { a.AdvertiseAddr = "" }, "advertise"},
		{"unspecified advertise", func(a *Agent) { a.AdvertiseAddr = "0.0.0.0" }, "advertise"},
		{"zoned advertise", func(a *Agent) { a.AdvertiseAddr = "fe80::1%eth0" }, "advertise"},
		{"unknown log level", func(a *Agent) { a.LogLevel = "verbose" }, "log_level"},
		{"relative CA file", func(a *Agent) { a.TLS.CAFile = "tls/ca.pem" }, "tls.ca_file"},
		{"relative cert file", func(a *Agent) { a.TLS.CertFile = "agent.pem" }, "tls.cert_file"},
		{"missing key file", func(a *Agent) { a.TLS.KeyFile = "" }, "tls.key_file"},
		{"newline in header", func(a *Agent) { a.ManagedBy = "me\nacl { enabled = false }" }, "header comment (ManagedBy)"},
		{"neither server nor client", func(a *Agent) { a.Server, a.Client = nil, nil }, "server, client"},

		{"bootstrap_expect 2", func(a *Agent) { a.Server.BootstrapExpect = 2 }, "server.bootstrap_expect"},
		{"bootstrap_expect 4", func(a *Agent) { a.Server.BootstrapExpect = 4 }, "server.bootstrap_expect"},
		{"bootstrap_expect 0", func(a *Agent) { a.Server.BootstrapExpect = 0 }, "server.bootstrap_expect"},
		{"bootstrap_expect 7", func(a *Agent) { a.Server.BootstrapExpect = 7 }, "server.bootstrap_expect"},
		{"missing encrypt", func(a *Agent) { a.Server.Encrypt = "" }, "server.encrypt"},
		{"16-byte encrypt", func(a *Agent) { a.Server.Encrypt = "AAAAAAAAAAAAAAAAAAAAAA==" }, "server.encrypt"},
		{"URL base64 encrypt", func(a *Agent) { a.Server.Encrypt = strings.NewReplacer("+", "-", "/", "_").Replace(testKey) }, "server.encrypt"},
		{"not base64 encrypt", func(a *Agent) { a.Server.Encrypt = "not a key" }, "server.encrypt"},
		{"no retry_join with expect 3", func(a *Agent) { a.Server.RetryJoin = nil }, "server.server_join.retry_join"},
		{"hostname in retry_join", func(a *Agent) { a.Server.RetryJoin = []string{"10.0.0.11", "nomad.example:4648"} }, "server.server_join.retry_join[1]"},
		{"cloud discovery in retry_join", func(a *Agent) { a.Server.RetryJoin = []string{"provider=aws tag_key=nomad"} }, "server.server_join.retry_join[0]"},
		{"port 0 in retry_join", func(a *Agent) { a.Server.RetryJoin = []string{"10.0.0.11:0"} }, "server.server_join.retry_join[0]"},
		{"sub-second retry_interval", func(a *Agent) { a.Server.RetryInterval = 500 * time.Millisecond }, "server.server_join.retry_interval"},

		{"no servers for the client", func(a *Agent) { a.Client.Servers = nil }, "client.servers"},
		{"bad client server", func(a *Agent) { a.Client.Servers = []string{"10.0.0.300:4647"} }, "client.servers[0]"},
		{"empty pool", func(a *Agent) { a.Client.NodePool = "" }, "client.node_pool"},
		{"interpolation in pool", func(a *Agent) { a.Client.NodePool = "${pool}" }, "client.node_pool"},
		{"newline in pool", func(a *Agent) { a.Client.NodePool = "warm\n" }, "client.node_pool"},
		{"space in pool", func(a *Agent) { a.Client.NodePool = "warm pool" }, "client.node_pool"},
		{"pool all", func(a *Agent) { a.Client.NodePool = "all" }, "client.node_pool"},
		{"template as network_interface", func(a *Agent) { a.Client.NetworkInterface = `{{ GetDefaultInterfaces }}` }, "client.network_interface"},
		{"newline in network_interface", func(a *Agent) { a.Client.NetworkInterface = "lo\nenabled = false" }, "client.network_interface"},
		{"long network_interface", func(a *Agent) { a.Client.NetworkInterface = "averyverylongname0" }, "client.network_interface"},
		{"interpolation in meta value", func(a *Agent) { a.Client.Meta = map[string]string{"team": "${attr.kernel.name}"} }, `client.meta["team"]`},
		{"template in meta value", func(a *Agent) { a.Client.Meta = map[string]string{"team": "%{ for x in y }"} }, `client.meta["team"]`},
		{"newline in meta value", func(a *Agent) { a.Client.Meta = map[string]string{"team": "a\nb"} }, `client.meta["team"]`},
		{"control char in meta key", func(a *Agent) { a.Client.Meta = map[string]string{"te\x1bam": "x"} }, "client.meta[\"te\\x1bam\"]"},
		{"dotted meta key", func(a *Agent) { a.Client.Meta = map[string]string{"a.b": "x"} }, `client.meta["a.b"]`},
		{"meta key starting with a digit", func(a *Agent) { a.Client.Meta = map[string]string{"1st": "x"} }, `client.meta["1st"]`},
		{"meta pool", func(a *Agent) { a.Client.Meta = map[string]string{"pool": "batch"} }, `client.meta["pool"]`},
		{"interpolation in option value", func(a *Agent) { a.Client.Options = map[string]string{"driver.allowlist": "${x}"} }, `client.options["driver.allowlist"]`},
		{"template in option value", func(a *Agent) { a.Client.Options = map[string]string{"driver.allowlist": "%{x}"} }, `client.options["driver.allowlist"]`},
		{"newline in option value", func(a *Agent) { a.Client.Options = map[string]string{"driver.allowlist": "docker\n"} }, `client.options["driver.allowlist"]`},
		{"interpolation in option key", func(a *Agent) { a.Client.Options = map[string]string{"${k}": "v"} }, `client.options["${k}"]`},
		{"quote in option key", func(a *Agent) { a.Client.Options = map[string]string{`a"b`: "v"} }, `client.options["a\"b"]`},
		{"empty option key segment", func(a *Agent) { a.Client.Options = map[string]string{"driver..allowlist": "v"} }, `client.options["driver..allowlist"]`},
		{"partial GC policy", func(a *Agent) { a.Client.GC = PoolPolicy{GCInterval: time.Minute} }, "client.max_kill_timeout"},
		{"GC threshold over 100", func(a *Agent) { a.Client.GC = PoolDefaults(PoolWarm); a.Client.GC.GCDiskUsageThreshold = 101 }, "client.gc_disk_usage_threshold"},
		{"negative GC interval", func(a *Agent) { a.Client.GC = PoolDefaults(PoolWarm); a.Client.GC.GCInterval = -time.Second }, "client.gc_interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := validAgent()
			tt.mutate(&a)
			files, err := Render(a)
			if err == nil {
				t.Fatalf("Render accepted it:\n%s", files[0].Content)
			}
			if files != nil {
				t.Errorf("Render returned files with an error")
			}
			var fields []string
			for _, e := range unjoin(err) {
				var fe *FieldError
				if !errors.As(e, &fe) {
					t.Fatalf("error %v (%T) is not a *FieldError", e, e)
				}
				if !strings.HasPrefix(e.Error(), "nomadconf: "+fe.Field+": ") {
					t.Errorf("error %q does not start with %q", e, "nomadconf: "+fe.Field+": ")
				}
				fields = append(fields, fe.Field)
			}
			if !slices.Contains(fields, tt.field) {
				t.Errorf("errors name %q, want %q among them:\n%v", fields, tt.field, err)
			}
			if verr := Validate(a); verr == nil || verr.Error() != err.Error() {
				t.Errorf("Validate says %v, Render says %v", verr, err)
			}
		})
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestRenderAccepts(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Agent)
	}{
		{"server only, expect 1", func(a *Agent) { a.Client = nil; a.Server.BootstrapExpect = 1; a.Server.RetryJoin = nil }},
		{"server only, expect 5", func(a *Agent) { a.Client = nil; a.Server.BootstrapExpect = 5 }},
		{"client only", func(a *Agent) { a.Server = nil }},
		{"no bind_addr, no log level", func(a *Agent) { a.BindAddr, a.LogLevel = "", "" }},
		{"lone dollar and percent", func(a *Agent) { a.Client.Meta = map[string]string{"price": "$5 or 5%", "brace": "{}"} }},
		{"default pool", func(a *Agent) { a.Client.NodePool = DefaultPool }},
		{"no ACL, no telemetry, no options", func(a *Agent) { a.ACL, a.Telemetry, a.Client.Options = false, false, nil }},
		{"IPv4-mapped IPv6", func(a *Agent) { a.AdvertiseAddr = "::ffff:10.0.0.11" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := validAgent()
			tt.mutate(&a)
			files, err := Render(a)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				var m map[string]any
				if err := hclv1.Decode(&m, string(f.Content)); err != nil {
					t.Errorf("%s: HCL v1: %v\n%s", f.Name, err, f.Content)
				}
			}
		})
	}
}

func TestRenderDeterministic(t *testing.T) {
	first, err := Render(validAgent())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		// Fresh maps each time, so Go's randomized map order gets a chance
		// to show through.
		a := validAgent()
		a.Client.Meta = maps.Clone(a.Client.Meta)
		again, err := Render(a)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(first, again); diff != "" {
			t.Fatalf("render %d differs (-first +again):\n%s", i, diff)
		}
	}
}

func TestRenderFiles(t *testing.T) {
	files, err := Render(validAgent())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]os.FileMode{AgentFile: 0o644, ClientFile: 0o644, ServerFile: 0o600, TLSFile: 0o644}
	got := map[string]os.FileMode{}
	var names []string
	for _, f := range files {
		got[f.Name] = f.Mode
		names = append(names, f.Name)
		if !bytes.HasPrefix(f.Content, []byte(Header(""))) {
			t.Errorf("%s does not start with the header:\n%s", f.Name, f.Content)
		}
		if !strings.HasSuffix(f.Name, ".hcl") {
			t.Errorf("%s: Nomad only reads *.hcl and *.json from a directory", f.Name)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files and modes (-want +got):\n%s", diff)
	}
	if !slices.IsSorted(names) {
		t.Errorf("files not sorted by name: %v", names)
	}
	for _, f := range files {
		if f.Name != ServerFile && bytes.Contains(f.Content, []byte(testKey)) {
			t.Errorf("the gossip key leaked into %s (mode %v)", f.Name, f.Mode)
		}
	}

	a := validAgent()
	a.Server = nil
	files, err = Render(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Name == ServerFile {
			t.Errorf("a client-only agent got %s", ServerFile)
		}
		if f.Mode != 0o644 {
			t.Errorf("%s: mode %v, want 0644", f.Name, f.Mode)
		}
	}
}

func TestRenderGCPolicy(t *testing.T) {
	decodeClient := func(t *testing.T, a Agent) map[string]any {
		t.Helper()
		files, err := Render(a)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if f.Name == ClientFile {
				var m map[string]any
				if err := hclv1.Decode(&m, string(f.Content)); err != nil {
					t.Fatal(err)
				}
				return block(t, m, "client")
			}
		}
		t.Fatal("no client file")
		return nil
	}
	for _, pool := range []string{PoolWarm, PoolBatch, PoolSpecial, DefaultPool, "gpu"} {
		for _, isolate := range []bool{false, true} {
			name := pool
			nodePool := DefaultPool
			if isolate {
				name, nodePool = pool+"-isolated", pool
			}
			t.Run(name, func(t *testing.T) {
				a := validAgent()
				a.Client.NodePool = pool
				a.Client.IsolatePool = isolate
				cl := decodeClient(t, a)
				p := PoolDefaults(pool)
				want := map[string]any{
					"gc_interval":              FormatDuration(p.GCInterval),
					"gc_disk_usage_threshold":  p.GCDiskUsageThreshold,
					"gc_inode_usage_threshold": p.GCInodeUsageThreshold,
					"gc_max_allocs":            p.GCMaxAllocs,
					"gc_parallel_destroys":     p.GCParallelDestroys,
					"max_kill_timeout":         FormatDuration(p.MaxKillTimeout),
					"node_pool":                nodePool,
					"node_class":               pool,
				}
				for k, v := range want {
					if cl[k] != v {
						t.Errorf("client.%s = %#v, want %#v", k, cl[k], v)
					}
				}
			})
		}
	}

	a := validAgent()
	a.Client.GC = PoolPolicy{GCInterval: 90 * time.Second, MaxKillTimeout: 5 * time.Minute,
		GCDiskUsageThreshold: 60, GCInodeUsageThreshold: 50, GCMaxAllocs: 7, GCParallelDestroys: 3}
	cl := decodeClient(t, a)
	if cl["gc_interval"] != "1m30s" || cl["max_kill_timeout"] != "5m" || cl["gc_max_allocs"] != 7 {
		t.Errorf("explicit policy not rendered: %#v", cl)
	}
}

func TestPoolDefaults(t *testing.T) {
	if diff := cmp.Diff(PoolDefaults(DefaultPool), PoolDefaults("gpu")); diff != "" {
		t.Errorf("a custom pool should get the default policy:\n%s", diff)
	}
	seen := map[PoolPolicy]string{}
	for _, pool := range []string{PoolWarm, PoolBatch, PoolSpecial, DefaultPool} {
		p := PoolDefaults(pool)
		v := &validator{}
		v.policy(p)
		if err := errors.Join(v.errs...); err != nil {
			t.Errorf("%s: %v", pool, err)
		}
		if other, dup := seen[p]; dup {
			t.Errorf("pools %s and %s share a policy", other, pool)
		}
		seen[p] = pool
	}
}

func TestFormatDuration(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{30 * time.Second, "30s"},
		{time.Minute, "1m"},
		{5 * time.Minute, "5m"},
		{90 * time.Second, "1m30s"},
		{time.Hour, "1h"},
		{90 * time.Minute, "1h30m"},
		{time.Hour + time.Second, "1h0m1s"},
		{500 * time.Millisecond, "500ms"},
		{2*time.Minute + 500*time.Millisecond, "2m0.5s"},
		{0, "0s"},
	} {
		got := FormatDuration(tt.d)
		if got != tt.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
		if back, err := time.ParseDuration(got); err != nil || back != tt.d {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", got, back, err, tt.d)
		}
	}
}

func TestHostPort(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"10.0.0.1", "10.0.0.1:4648"},
		{"10.0.0.1:14648", "10.0.0.1:14648"},
		{"fd00::1", "[fd00::1]:4648"},
		{"[fd00::1]:4648", "[fd00::1]:4648"},
		{"[FD00:0::1]:4648", "[fd00::1]:4648"},
		{"::ffff:10.0.0.1", "10.0.0.1:4648"},
	} {
		got, err := hostPort(tt.in, SerfPort)
		if err != nil || got != tt.want {
			t.Errorf("hostPort(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "host:4648", "10.0.0.1:", "10.0.0.1:99999", "[fd00::1]", "0.0.0.0:4648", "::", "10.0.0.1 "} {
		if got, err := hostPort(bad, SerfPort); err == nil {
			t.Errorf("hostPort(%q) = %q, want an error", bad, got)
		}
	}
}
