package nomadrun

import (
	"encoding/json"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/golden"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadconf"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadver"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// testKey is a fixed serf key (standard base64 of 32 bytes) for goldens.
const testKey = "+QUb8DBp48NZJUzeIBVlceFe0mRoNloSr2ifGMxElwI="

// testPlan is a committed plan of three servers, s1 the CA holder.
func testPlan() plan.Plan {
	return plan.Plan{
		Epoch:  1,
		Region: "global",
		Expect: 3,
		Servers: []plan.Server{
			{ID: "id-s1", Name: "s1", Address: "10.0.0.11"},
			{ID: "id-s2", Name: "s2", Address: "10.0.0.12"},
			{ID: "id-s3", Name: "s3", Address: "10.0.0.13"},
		},
		CAHolder: "id-s1",
	}
}

// testRunner is the runner of the node id, name, on ip, with cfg.
func testRunner(id, name, ip string, cfg config.Config) *Runner {
	return New(Options{
		Node:     Node{ID: id, Name: name, Bind: ip, Advertise: ip},
		Config:   cfg,
		Paths:    paths.New("/"),
		Features: nomadver.Must(nomadver.Oldest),
		Encrypt:  testKey,
		Network:  fakeNetwork{defaultIface: "eth0", ifaces: map[string]string{ip: "eth1"}},
	})
}

// fakeNetwork is a machine's network: the interface of its default route
// ("" for none) and the interface of each address.
type fakeNetwork struct {
	defaultIface string
	ifaces       map[string]string
}

func (f fakeNetwork) DefaultInterface() (string, error) {
	if f.defaultIface == "" {
		return "", errors.New("no default route")
	}
	return f.defaultIface, nil
}

func (f fakeNetwork) InterfaceOf(addr netip.Addr) string { return f.ifaces[addr.String()] }

// A client's tasks get the address of the default route's interface, as
// Nomad chooses it; on a machine without a default route, where Nomad's
// client would not start, that of the interface peers reach it at.
func TestNetworkInterface(t *testing.T) {
	tests := []struct {
		name    string
		ip      string
		network fakeNetwork
		want    string
	}{
		{name: "default route", ip: "10.0.0.21", network: fakeNetwork{defaultIface: "eth0", ifaces: map[string]string{"10.0.0.21": "eth1"}}},
		{name: "no default route", ip: "10.0.0.21", network: fakeNetwork{ifaces: map[string]string{"10.0.0.21": "eth1"}}, want: "eth1"},
		{name: "no default route, IPv6", ip: "fd00::21", network: fakeNetwork{ifaces: map[string]string{"fd00::21": "ens3"}}, want: "ens3"},
		{name: "no default route, address elsewhere (NAT)", ip: "203.0.113.7", network: fakeNetwork{}},
		{name: "loopback", ip: "127.0.0.21", network: fakeNetwork{}, want: loopbackInterface()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(Options{Node: Node{ID: "id-c1", Name: "c1", Bind: tt.ip, Advertise: tt.ip}, Config: config.Default(),
				Paths: paths.New("/"), Features: nomadver.Must(nomadver.Oldest), Encrypt: testKey, Network: tt.network})
			a := r.Agent(testPlan())
			if a.Client == nil || a.Client.NetworkInterface != tt.want {
				t.Fatalf("network_interface = %+v, want %q", a.Client, tt.want)
			}
			if _, err := nomadconf.Render(a); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The machine's own network names the interface of an address it holds.
func TestSystemNetwork(t *testing.T) {
	lo := loopbackInterface()
	if lo == "" {
		t.Skip("no loopback interface")
	}
	if got := (systemNetwork{}).InterfaceOf(netip.MustParseAddr("127.0.0.1")); got != lo {
		t.Errorf("InterfaceOf(127.0.0.1) = %q, want %q", got, lo)
	}
	if got := (systemNetwork{}).InterfaceOf(netip.MustParseAddr("192.0.2.254")); got != "" {
		t.Errorf("InterfaceOf(192.0.2.254) = %q, want none", got)
	}
}

func TestRunsClient(t *testing.T) {
	p := testPlan()
	tests := []struct {
		name      string
		id        string
		role      string
		dedicated bool
		want      bool
	}{
		{name: "client", id: "id-c1", role: "auto", want: true},
		{name: "client with role=client", id: "id-c1", role: "client", want: true},
		{name: "client in a cluster of dedicated servers", id: "id-c1", role: "auto", dedicated: true, want: true},
		{name: "server with role=auto", id: "id-s2", role: "auto", want: true},
		{name: "server with role=server", id: "id-s2", role: "server", want: false},
		{name: "server in a cluster of dedicated servers", id: "id-s2", role: "auto", dedicated: true, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Role, cfg.DedicatedServers = tt.role, tt.dedicated
			if got := testRunner(tt.id, "n", "10.0.0.20", cfg).RunsClient(p); got != tt.want {
				t.Errorf("RunsClient = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestAgentGolden compares the Nomad configuration of nodes under
// testPlan with testdata/agent-<case>.json; go test -update rewrites them.
func TestAgentGolden(t *testing.T) {
	batch := config.Default()
	batch.Pool, batch.IsolatePools, batch.RawExec = "batch", true, true
	dedicated := config.Default()
	dedicated.DedicatedServers = true
	tests := []struct {
		name, id, node, ip string
		cfg                config.Config
	}{
		{name: "server", id: "id-s2", node: "s2", ip: "10.0.0.12", cfg: config.Default()},
		{name: "server-dedicated", id: "id-s2", node: "s2", ip: "10.0.0.12", cfg: dedicated},
		{name: "client", id: "id-c1", node: "c1", ip: "10.0.0.21", cfg: batch},
		{name: "client-loopback", id: "id-c1", node: "c1", ip: "127.0.0.21", cfg: config.Default()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := testRunner(tt.id, tt.node, tt.ip, tt.cfg).Agent(testPlan())
			if _, err := nomadconf.Render(got); err != nil {
				t.Fatalf("Render: %v", err)
			}
			if c := got.Client; c != nil && c.NetworkInterface != "" {
				// The loopback interface is named by this machine.
				if c.NetworkInterface != loopbackInterface() {
					t.Errorf("network_interface = %q, want this machine's loopback %q", c.NetworkInterface, loopbackInterface())
				}
				c.NetworkInterface = "lo"
			}
			b, err := json.MarshalIndent(got, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, '\n')
			path := filepath.Join("testdata", "agent-"+tt.name+".json")
			golden.Check(t, path, b)
		})
	}
}
