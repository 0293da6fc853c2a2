package paths

import "testing"

func TestLayout(t *testing.T) {
	tests := []struct {
		root string
		got  func(Paths) string
		want string
	}{
		{"", Paths.ConfigFile, "/etc/nomad-bootstrapd/config.hcl"},
		{"/", Paths.PlanFile, "/var/lib/nomad-bootstrapd/plan.json"},
		{"/", Paths.NodeIDFile, "/var/lib/nomad-bootstrapd/node-id"},
		{"/", Paths.LockFile, "/var/lib/nomad-bootstrapd/agent.lock"},
		{"/", Paths.Socket, "/run/nomad-bootstrapd/agent.sock"},
		{"/tmp/n1", Paths.Socket, "/tmp/n1/run/nomad-bootstrapd/agent.sock"},
		{"/tmp/n1", Paths.NomadTLSDir, "/tmp/n1/etc/nomad.d/tls"},
	}
	for _, tt := range tests {
		if got := tt.got(New(tt.root)); got != tt.want {
			t.Errorf("root %q: got %s, want %s", tt.root, got, tt.want)
		}
	}
}
