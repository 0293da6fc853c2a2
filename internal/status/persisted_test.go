package status

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/planfile"
)

// writeTestCert writes a self-signed certificate valid until notAfter.
func writeTestCert(t *testing.T, path string, notAfter time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: notAfter.Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// snapshot returns every file under root with its mode and content.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&os.ModeSocket != 0 {
			return nil
		}
		b, _ := os.ReadFile(p)
		fi, _ := d.Info()
		out[p] = fi.Mode().String() + " " + string(b)
		return nil
	})
	return out
}

func TestPersisted(t *testing.T) {
	const id = "11111111-2222-3333-4444-555555555555"
	const client = "44444444-2222-3333-4444-555555555555"
	committed := plan.Plan{Epoch: 1, Region: "global", Expect: 3, CAHolder: id, CAPort: 4651,
		CAFingerprint: "sha256:" + strings.Repeat("ab", 32),
		Servers: []plan.Server{
			{ID: id, Name: "node1", Address: "10.0.0.5"},
			{ID: "22222222-2222-3333-4444-555555555555", Name: "node2", Address: "10.0.0.6"},
			{ID: "33333333-2222-3333-4444-555555555555", Name: "node3", Address: "10.0.0.7"},
		}}
	notAfter := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		setup     func(t *testing.T, p paths.Paths)
		wantPlan  bool
		wantName  string
		wantRole  string
		wantCerts int
		wantWarn  string
	}{
		{name: "nothing on disk", setup: func(*testing.T, paths.Paths) {}, wantName: "cfg-name", wantRole: "auto"},
		{name: "a committed server", setup: func(t *testing.T, p paths.Paths) {
			if err := os.MkdirAll(p.StateDir(), 0o700); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(p.NodeIDFile(), []byte(id+"\n"), 0o600)
			if err := planfile.Save(p.PlanFile(), "cluster", id, committed, notAfter); err != nil {
				t.Fatal(err)
			}
			writeTestCert(t, filepath.Join(p.NomadTLSDir(), "server.pem"), notAfter)
			writeTestCert(t, filepath.Join(p.NomadTLSDir(), "cli.pem"), notAfter.Add(time.Hour))
			writeTestCert(t, filepath.Join(p.NomadTLSDir(), "ca.pem"), notAfter.Add(1000*time.Hour))
		}, wantPlan: true, wantName: "node1", wantRole: "server", wantCerts: 3},
		{name: "a committed client", setup: func(t *testing.T, p paths.Paths) {
			if err := os.MkdirAll(p.StateDir(), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := planfile.Save(p.PlanFile(), "cluster", client, committed, notAfter); err != nil {
				t.Fatal(err)
			}
			writeTestCert(t, filepath.Join(p.NomadTLSDir(), "client.pem"), notAfter)
		}, wantPlan: true, wantName: "cfg-name", wantRole: "client", wantCerts: 1},
		{name: "a plan of another version", setup: func(t *testing.T, p paths.Paths) {
			os.MkdirAll(p.StateDir(), 0o700)
			os.WriteFile(p.PlanFile(), []byte(`{"version": 9}`), 0o600)
		}, wantName: "cfg-name", wantRole: "auto", wantWarn: "version 9"},
		{name: "a corrupted plan", setup: func(t *testing.T, p paths.Paths) {
			os.MkdirAll(p.StateDir(), 0o700)
			os.WriteFile(p.PlanFile(), []byte(`{"version": 1, "plan": {`), 0o600)
		}, wantName: "cfg-name", wantRole: "auto", wantWarn: "corrupted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := paths.New(t.TempDir())
			tt.setup(t, p)
			cfg := config.Default()
			cfg.Name = "cfg-name"
			before := snapshot(t, p.Root)
			s := Persisted(p, cfg, "systemctl start nomad-bootstrapd")
			if s.Phase != PhaseStopped || s.Agent.Running || s.Healthy() {
				t.Errorf("phase %v, running %v, healthy %v; want stopped, not running, not healthy", s.Phase, s.Agent.Running, s.Healthy())
			}
			if !strings.Contains(s.Reason, "systemctl start nomad-bootstrapd") {
				t.Errorf("reason %q does not say how to start the agent", s.Reason)
			}
			if (s.Plan != nil) != tt.wantPlan {
				t.Errorf("plan %+v, want one: %v", s.Plan, tt.wantPlan)
			}
			if s.Node.Name != tt.wantName || s.Node.Role != tt.wantRole {
				t.Errorf("node %s/%s, want %s/%s", s.Node.Name, s.Node.Role, tt.wantName, tt.wantRole)
			}
			if tt.wantCerts > 0 {
				if s.Certs == nil || len(s.Certs.Files) != tt.wantCerts || !s.Certs.NotAfter.Equal(notAfter) || !s.Certs.NotBefore.Equal(notAfter.Add(-time.Hour)) {
					t.Errorf("certs %+v, want %d files, the first valid for the hour to %v", s.Certs, tt.wantCerts, notAfter)
				}
			}
			warnings := strings.Join(s.Warnings, "\n")
			if tt.wantWarn == "" && warnings != "" || !strings.Contains(warnings, tt.wantWarn) {
				t.Errorf("warnings %q, want %q", warnings, tt.wantWarn)
			}
			if after := snapshot(t, p.Root); !maps.Equal(after, before) {
				t.Errorf("reading the status changed files:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func TestCAMade(t *testing.T) {
	begins := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rotated := begins.Add(400 * 24 * time.Hour)
	f := CertFileStatus{Role: "ca", NotBefore: begins}
	if got := CAMade(f, KeyStatus{}); !got.Equal(begins) {
		t.Errorf("the bootstrap's CA: %v; want when its certificate begins, %v", got, begins)
	}
	if got := CAMade(f, KeyStatus{Generation: 1, RotatedAt: rotated}); !got.Equal(rotated) {
		t.Errorf("a rotated CA: %v; want when the rotation was done, %v", got, rotated)
	}
}
