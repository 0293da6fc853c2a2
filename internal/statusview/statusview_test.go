package statusview

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/golden"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// now is the clock of every golden file.
var now = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func members() []status.MemberStatus {
	return []status.MemberStatus{
		{Name: "node1", ID: "7b0c5d1e-0001", Address: "10.0.0.5", Status: "alive", Role: "server", Pool: "warm", Zone: "a"},
		{Name: "node2", ID: "7b0c5d1e-0002", Address: "10.0.0.6", Status: "alive", Role: "server", Pool: "batch", Zone: "b"},
		{Name: "node3", ID: "7b0c5d1e-0003", Address: "10.0.0.7", Status: "alive", Role: "server", Pool: "special", Zone: "c"},
		{Name: "node4", ID: "7b0c5d1e-0004", Address: "10.0.0.8", Status: "alive", Role: "client", Pool: "warm", Zone: "a"},
		{Name: "node5", ID: "7b0c5d1e-0005", Address: "10.0.0.9", Status: "alive", Role: "client", Pool: "batch", Zone: "b"},
	}
}

func node() status.NodeStatus {
	return status.NodeStatus{Name: "node1", ID: "7b0c5d1e-0001-4a7e-9c1d-5f0e6a7b8c9d", Address: "10.0.0.5", Role: "server",
		Pool: "warm", Zone: "a", Datacenter: "dc1", Region: "global"}
}

func committed() *status.PlanStatus {
	return &status.PlanStatus{Epoch: 1, Servers: []string{"node1", "node2", "node3"}, CAHolder: "node1", Expect: 3,
		Region: "global", CAFingerprint: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
}

// certFiles describes a server's 24-hour certificates with serverLeft to
// go and a five-year CA made an hour before now.
func certFiles(serverLeft time.Duration) *status.CertStatus {
	notAfter := now.Add(serverLeft)
	notBefore := notAfter.Add(-24*time.Hour - 5*time.Minute)
	return &status.CertStatus{NotBefore: notBefore, NotAfter: notAfter, Files: []status.CertFileStatus{
		{Role: "server", Path: "/etc/nomad.d/tls/server.pem", NotBefore: notBefore, NotAfter: notAfter},
		{Role: "cli", Path: "/etc/nomad.d/tls/cli.pem", NotBefore: notBefore, NotAfter: notAfter},
		{Role: "ca", Path: "/etc/nomad.d/tls/ca.pem", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour)},
	}}
}

func healthyNomad() *status.NomadStatus {
	return &status.NomadStatus{
		Unit: "nomad.service (active/running)", Version: "1.6.3", Leader: "10.0.0.6:4647", Healthy: true,
		Peers: []string{"10.0.0.5:4647", "10.0.0.6:4647", "10.0.0.7:4647"},
		Servers: []status.NomadServerStatus{
			{Name: "node1.global", Address: "10.0.0.5", Status: "alive", Version: "1.6.3"},
			{Name: "node2.global", Address: "10.0.0.6", Status: "alive", Leader: true, Version: "1.6.3"},
			{Name: "node3.global", Address: "10.0.0.7", Status: "alive", Version: "1.6.3"},
		},
		ClientVersions: []string{"1.6.3"},
		Autopilot:      &status.AutopilotStatus{Healthy: true, FailureTolerance: 1, Voters: 3},
		Clients:        []status.PoolClientsStatus{{Pool: "batch", Ready: 2, Total: 2}, {Pool: "special", Ready: 1, Total: 1}, {Pool: "warm", Ready: 2, Total: 2}},
	}
}

func running() status.AgentStatus {
	return status.AgentStatus{Running: true, Version: "0.1.0-dev", PID: 1200, Metrics: "127.0.0.1:4652"}
}

// cases are the screens an operator meets: each has a .txt and a .json
// golden file.
func cases() map[string]status.Status {
	acl := &status.ACLStatus{State: "bootstrapped", TokensDir: "/var/lib/nomad-bootstrapd/acl"}

	healthy := status.Status{Node: node(), Phase: status.PhaseRunning, Plan: committed(), Members: members(),
		Certs: certFiles(17 * time.Hour), Nomad: healthyNomad(), ACL: acl, Agent: running(),
		Snapshots: &status.SnapshotStatus{Dir: "/var/lib/nomad-bootstrapd/snapshots", Interval: "1h0m0s", Retain: 24, Kept: 24,
			Last: now.Add(-20 * time.Minute), LastFile: "/var/lib/nomad-bootstrapd/snapshots/nomad-bootstrapd-20261201T094000Z.snap",
			LastSize: 3 << 20, Next: now.Add(40 * time.Minute)}}

	electing := status.Status{Node: node(), Phase: status.PhaseElecting,
		Reason:  "waiting for 3 members to be alive (2 are)",
		Members: members()[:2], Agent: running()}
	electing.Node.Role = "auto"
	for i := range electing.Members {
		electing.Members[i].Role = "auto"
	}

	dead := healthy
	dead.Members = members()
	dead.Members[2].Status = "dead"
	dead.Phase, dead.Reason = status.PhaseStarting, "Nomad is not healthy"
	dn := healthyNomad()
	dn.Healthy = false
	dn.Peers = dn.Peers[:2]
	dn.Servers[2].Status = "failed"
	dn.Autopilot = &status.AutopilotStatus{Healthy: false, FailureTolerance: 0, Voters: 3}
	dead.Nomad = dn
	dead.Warnings = []string{"Nomad server node3 (10.0.0.7) of the plan has not been alive in gossip for 4m10s"}

	expiring := healthy
	expiring.Certs = certFiles(5 * time.Hour)
	expiring.Warnings = []string{"this node's certificate expires in 5 hours (2026-12-01T15:00:00Z); renewal has not succeeded: see the agent's log"}

	mixed := healthy
	mn := healthyNomad()
	mn.Servers[0].Version = "1.10.0"
	mn.ClientVersions = []string{"1.6.3", "1.10.0"}
	mixed.Nomad = mn
	mixed.Warnings = []string{"Nomad server node2.global runs 1.6.3, older than clients that run 1.10.0: upgrade every server before the clients"}

	down := status.Status{Node: node(), Phase: status.PhaseStopped,
		Reason: "the agent is not running; start it with: systemctl start nomad-bootstrapd",
		Plan:   committed(), Members: []status.MemberStatus{}, Certs: certFiles(17 * time.Hour)}

	// After a client token rotation, an eviction and two rotations of
	// Nomad's gossip key, a third under way, and a CA rotation under way,
	// on the CA holder.
	rotated := healthy
	rotated.Cluster = &status.ClusterStatus{Version: 6,
		Evicted:        []status.EvictedStatus{{Name: "worker-7", ID: "0b6e0c1e-8d6b-4d5a-9a55-0f7c1e0b9d31", At: now.Add(-26 * time.Hour)}},
		ClientToken:    status.ClientTokenStatus{Generation: 1, RotatedAt: now.Add(-26 * time.Hour), PreviousUntil: now.Add(-25 * time.Hour)},
		NomadGossipKey: status.KeyStatus{Generation: 2, RotatedAt: now.Add(-72 * time.Hour), NextRotation: now.Add(27 * 24 * time.Hour), Rotating: "install generation 3"},
		AgentGossipKey: status.KeyStatus{Generation: 4, RotatedAt: now.Add(-48 * time.Hour), NextRotation: now.Add(28 * 24 * time.Hour), Rotating: "use generation 5"},
		CA:             status.KeyStatus{Generation: 1, Rotating: "trust generation 1", NextRotation: now.Add(4 * 365 * 24 * time.Hour)},
	}

	// A rolling upgrade of Nomad draining a client, and one that stopped.
	upgrading := healthy
	upgrading.Cluster = &status.ClusterStatus{Version: 9, Evicted: []status.EvictedStatus{},
		NomadUpgrade: &status.UpgradeStatus{Version: "1.6.3", Stage: "clients", Turn: []string{"worker-1", "worker-2"}, Step: "drain",
			Upgraded: 3, StartedAt: now.Add(-6 * time.Minute)}}
	stopped := healthy
	stopped.Cluster = &status.ClusterStatus{Version: 9, Evicted: []status.EvictedStatus{},
		NomadUpgrade: &status.UpgradeStatus{Version: "1.6.3", Stage: "failed", Upgraded: 1,
			Failure:   "waited 10m0s for node2 to run Nomad 1.6.3 (runs 1.6.0)",
			StartedAt: now.Add(-16 * time.Minute), FinishedAt: now.Add(-5 * time.Minute)}}

	return map[string]status.Status{
		"upgrading":               upgrading,
		"upgrade-stopped":         stopped,
		"rotated":                 rotated,
		"healthy":                 healthy,
		"electing":                electing,
		"degraded-dead-server":    dead,
		"degraded-expiring-cert":  expiring,
		"degraded-mixed-versions": mixed,
		"agent-down":              down,
	}
}

func TestGolden(t *testing.T) {
	for name, s := range cases() {
		t.Run(name, func(t *testing.T) {
			var txt, js bytes.Buffer
			Table(&txt, s, Options{Now: now})
			if err := JSON(&js, s); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", name+".txt"), txt.Bytes())
			golden.Check(t, filepath.Join("testdata", name+".json"), js.Bytes())
			if strings.Contains(txt.String(), "\x1b[") {
				t.Error("colours without Options.Color")
			}
		})
	}
}

func TestColorKeepsAlignment(t *testing.T) {
	s := cases()["degraded-dead-server"]
	var plainOut, colored bytes.Buffer
	Table(&plainOut, s, Options{Now: now})
	Table(&colored, s, Options{Now: now, Color: true})
	golden.Check(t, filepath.Join("testdata", "degraded-dead-server.color.txt"), colored.Bytes())
	stripped := ansi.ReplaceAllString(colored.String(), "")
	if diff := cmp.Diff(plainOut.String(), stripped); diff != "" {
		t.Errorf("the coloured table, without its colours, differs from the plain one (-plain +colour):\n%s", diff)
	}
}

func TestJSONRoundTrips(t *testing.T) {
	for name, s := range cases() {
		var b bytes.Buffer
		if err := JSON(&b, s); err != nil {
			t.Fatal(err)
		}
		got, err := decode(b.Bytes())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(s, got); diff != "" {
			t.Errorf("%s: JSON does not round-trip (-want +got):\n%s", name, diff)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "expired"},
		{0, "expired"},
		{90 * time.Second, "1m"},
		{119 * time.Minute, "119m"},
		{5 * time.Hour, "5h"},
		{47 * time.Hour, "47h"},
		{81 * 24 * time.Hour, "81d"},
	}
	for _, tt := range tests {
		if got := humanDuration(tt.d); got != tt.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestExpiryColor(t *testing.T) {
	day := 24 * time.Hour
	leaf := func(left time.Duration) status.CertFileStatus {
		return status.CertFileStatus{NotBefore: now.Add(left - day), NotAfter: now.Add(left)}
	}
	tests := []struct {
		name string
		f    status.CertFileStatus
		want string
	}{
		{"fresh leaf", leaf(23 * time.Hour), ""},
		{"leaf due for renewal", leaf(12 * time.Hour), ""},
		{"leaf a third left", leaf(8*time.Hour + time.Second), ""},
		{"leaf under a third left", leaf(8 * time.Hour), yellow},
		{"leaf about to expire", leaf(time.Minute), yellow},
		{"leaf expired", leaf(0), red},
		{"CA with years left", status.CertFileStatus{NotBefore: now.Add(-day), NotAfter: now.Add(5 * 365 * day)}, ""},
		{"CA with a month left", status.CertFileStatus{NotBefore: now.Add(-5 * 365 * day), NotAfter: now.Add(30 * day)}, yellow},
		{"no start, 40 days left", status.CertFileStatus{NotAfter: now.Add(40 * day)}, ""},
		{"no start, 20 days left", status.CertFileStatus{NotAfter: now.Add(20 * day)}, yellow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := expiryColor(tt.f, now); got != tt.want {
				t.Errorf("expiryColor = %q, want %q", got, tt.want)
			}
		})
	}
}

// Nothing in a status, whoever put it there, reaches the terminal as a
// control character: names, reasons, warnings and Nomad's answers are
// shown escaped.
func TestTableEscapesControlCharacters(t *testing.T) {
	s := status.Status{
		Node:     node(),
		Phase:    status.PhaseRunning,
		Reason:   "waiting\r\x1b[2Kfor nothing",
		Plan:     committed(),
		Nomad:    healthyNomad(),
		Members:  members(),
		Warnings: []string{"bell\a and \x1b]0;title\a"},
		Agent:    status.AgentStatus{Running: true, Version: "0.1.0", PID: 42},
	}
	s.Members[1].Name = "evil\x1b[31mname"
	s.Members[2].Pool = "bad\xffbyte"
	s.Nomad.Servers[0].Name = "line\nbreak"
	for _, color := range []bool{false, true} {
		var b bytes.Buffer
		Table(&b, s, Options{Now: now, Color: color})
		out := b.String()
		if color {
			// The table's own colours are the only escape sequences.
			for _, c := range []string{reset, bold, red, green, yellow} {
				out = strings.ReplaceAll(out, c, "")
			}
		}
		for i, r := range out {
			if r == '\n' {
				continue
			}
			if unicode.IsControl(r) || r == utf8.RuneError {
				t.Fatalf("color=%v: control character %q at %d in:\n%s", color, r, i, out)
			}
		}
		for _, want := range []string{`evil\x1b[31mname`, `bad\xffbyte`, `line\nbreak`, `bell\a and`} {
			if !strings.Contains(out, want) {
				t.Errorf("color=%v: %q not shown escaped in:\n%s", color, want, out)
			}
		}
	}
}
