package nomadrun

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadver"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

func TestMixedVersions(t *testing.T) {
	srv := func(name, v, state string) status.NomadServerStatus {
		return status.NomadServerStatus{Name: name, Version: v, Status: state}
	}
	tests := []struct {
		name    string
		servers []status.NomadServerStatus
		clients []string
		want    string
	}{
		{name: "all the same", servers: []status.NomadServerStatus{srv("a", "1.6.3", "alive"), srv("b", "1.6.3", "alive")}, clients: []string{"1.6.3"}},
		{name: "servers newer (upgrade under way, safe)", servers: []status.NomadServerStatus{srv("a", "1.10.0", "alive")}, clients: []string{"1.6.3", "1.10.0"}},
		{name: "a client newer than a server", servers: []status.NomadServerStatus{srv("a", "1.10.0", "alive"), srv("b", "1.6.3", "alive")}, clients: []string{"1.6.3", "1.10.0"},
			want: "Nomad server b runs 1.6.3, older than clients that run 1.10.0"},
		{name: "a server that left does not count", servers: []status.NomadServerStatus{srv("a", "1.10.0", "alive"), srv("b", "1.6.3", "left")}, clients: []string{"1.10.0"}},
		{name: "no clients", servers: []status.NomadServerStatus{srv("a", "1.6.3", "alive")}},
		{name: "unknown server version", servers: []status.NomadServerStatus{srv("a", "", "alive")}, clients: []string{"2.0.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mixedVersions(tt.servers, tt.clients)
			if (tt.want == "") != (got == "") || !strings.HasPrefix(got, tt.want) {
				t.Errorf("mixedVersions = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMixedWarning(t *testing.T) {
	srv := func(name, v string) status.NomadServerStatus {
		return status.NomadServerStatus{Name: name, Version: v, Status: "alive"}
	}
	tests := []struct {
		name    string
		servers []status.NomadServerStatus
		clients []string
		want    Warning
		ok      bool
	}{
		{name: "no server answered keeps the warning"},
		{name: "safe versions clear it", servers: []status.NomadServerStatus{srv("a", "1.10.0")}, clients: []string{"1.6.3"},
			want: Warning{Key: WarnMixed}, ok: true},
		{name: "a client newer than a server shows it", servers: []status.NomadServerStatus{srv("a", "1.6.3")}, clients: []string{"1.10.0"},
			want: Warning{Key: WarnMixed, Msg: "Nomad server a runs 1.6.3, older than clients that run 1.10.0: upgrade every server before the clients"}, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := mixedWarning(tt.servers, tt.clients)
			if got != tt.want || ok != tt.ok {
				t.Errorf("mixedWarning = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestRunningWarning(t *testing.T) {
	tests := []struct {
		name, detected, running string
		want                    Warning
		ok                      bool
	}{
		{name: "nothing reported keeps the warning", detected: "1.6.3"},
		{name: "an unreadable version keeps it", detected: "1.6.3", running: "junk"},
		{name: "the same line clears it", detected: "1.6.3", running: "1.6.5", want: Warning{Key: WarnVersion}, ok: true},
		{name: "another line shows it", detected: "1.6.3", running: "1.10.0", ok: true,
			want: Warning{Key: WarnVersion, Msg: "Nomad 1.10.0 is running but nomad-bootstrapd rendered its configuration for 1.6.3: restart nomad-bootstrapd to render for the running version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := nomadver.Parse(tt.detected)
			if err != nil {
				t.Fatal(err)
			}
			r := New(Options{Features: nomadver.Must(v)})
			got, ok := r.runningWarning(tt.running)
			if got != tt.want || ok != tt.ok {
				t.Errorf("runningWarning(%q) = %+v, %v; want %+v, %v", tt.running, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestClientVersions(t *testing.T) {
	nodes := []*api.NodeListStub{{Version: "1.10.0"}, {Version: "1.6.3"}, nil, {Version: "1.6.3"}, {Version: ""}, {Version: "junk"}, {Version: "1.9.7"}}
	got := strings.Join(clientVersions(nodes), " ")
	if got != "1.6.3 1.9.7 1.10.0" {
		t.Errorf("clientVersions = %q, want oldest first without duplicates", got)
	}
}

func TestDetect(t *testing.T) {
	dir := t.TempDir()
	fake := func(name, version string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\necho 'Nomad v"+version+"'\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, bin, supervise, want, err string
		dryRun                          bool
	}{
		{name: "1.6", bin: fake("n16", "1.6.3"), supervise: config.SuperviseProcess, want: "1.6.3"},
		{name: "2.0", bin: fake("n20", "2.0.1"), supervise: config.SuperviseSystemd, want: "2.0.1"},
		{name: "too old", bin: fake("n15", "1.5.6"), supervise: config.SuperviseProcess, err: "needs Nomad 1.6 or newer"},
		{name: "too old without supervising", bin: fake("n14", "1.4.0"), supervise: config.SuperviseNone, err: "needs Nomad 1.6 or newer"},
		{name: "missing and supervised", bin: filepath.Join(dir, "none"), supervise: config.SuperviseSystemd, err: "cannot tell which Nomad is installed"},
		{name: "missing, configuration only", bin: filepath.Join(dir, "none"), supervise: config.SuperviseNone, want: "1.6.0"},
		{name: "missing, dry run", bin: filepath.Join(dir, "none"), supervise: config.SuperviseSystemd, dryRun: true, want: "1.6.0"},
		{name: "too old, dry run", bin: fake("n15d", "1.5.6"), supervise: config.SuperviseSystemd, dryRun: true, err: "needs Nomad 1.6 or newer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Nomad, cfg.Supervise = tt.bin, tt.supervise
			f, _, err := Detect(context.Background(), cfg, tt.dryRun)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Detect error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || f.Version.String() != tt.want {
				t.Fatalf("Detect = %s, %v; want %s", f.Version, err, tt.want)
			}
		})
	}
}
