package agent

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadconf"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// filesUnder returns every file under root with its content and mode.
func filesUnder(t *testing.T, root string) map[string]string {
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

func TestCertificatesAndNomadConfig(t *testing.T) {
	c := newCluster(t)
	c.startN(5, nil)
	waitFor(t, 30*time.Second, "every node to write Nomad's configuration", func() bool {
		for _, n := range c.nodes {
			if n.agent.Status().Phase != status.PhaseConfigured {
				return false
			}
		}
		return true
	})
	for _, n := range c.nodes {
		s := n.agent.Status()
		p := n.agent.plan
		files := certs.TLSFiles{Dir: n.agent.paths.NomadTLSDir()}
		bundle, err := os.ReadFile(files.CAPath())
		if err != nil {
			t.Fatal(err)
		}
		cas, err := certs.ParseCertsPEM(bundle)
		if err != nil || certs.Fingerprint(cas[0]) != p.CAFingerprint {
			t.Fatalf("%s: ca.pem does not hold the pinned CA %s: %v", s.Node.Name, p.CAFingerprint, err)
		}
		pool := x509.NewCertPool()
		pool.AddCert(cas[0])
		roles := map[certs.Role]string{certs.RoleClient: "client.global.nomad"}
		if s.Node.Role == "server" {
			roles = map[certs.Role]string{certs.RoleServer: "server.global.nomad", certs.RoleCLI: "cli.global.nomad"}
		}
		for role, name := range roles {
			cert, err := files.LoadCert(role)
			if err != nil {
				t.Fatalf("%s: %s certificate: %v", s.Node.Name, role, err)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("%s: %s certificate does not verify for %s: %v", s.Node.Name, role, name, err)
			}
			fi, err := os.Stat(files.KeyPath(role))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: %s key mode %v, %v; want 0600", s.Node.Name, role, fi.Mode().Perm(), err)
			}
		}
		if s.Certs == nil || s.Certs.NotAfter.Before(time.Now().Add(23*time.Hour)) || s.Certs.NotAfter.After(time.Now().Add(24*time.Hour)) {
			t.Errorf("%s: status certs %+v; want an expiry about 24 hours away", s.Node.Name, s.Certs)
		}
		dir := n.agent.paths.NomadConfigDir()
		server, err := os.ReadFile(filepath.Join(dir, nomadconf.ServerFile))
		if s.Node.Role == "server" {
			if err != nil || !regexp.MustCompile(`bootstrap_expect\s+= 3\n`).Match(server) || !strings.Contains(string(server), n.agent.serverToken.NomadEncryptKey()) {
				t.Errorf("%s: server configuration lacks bootstrap_expect or encrypt (%v):\n%s", s.Node.Name, err, server)
			}
		} else if err == nil {
			t.Errorf("%s: a client has a server configuration", s.Node.Name)
		}
		client, err := os.ReadFile(filepath.Join(dir, nomadconf.ClientFile))
		if err != nil || !strings.Contains(string(client), `node_pool`) {
			t.Errorf("%s: client configuration (%v):\n%s", s.Node.Name, err, client)
		}
	}

	// A restart changes no byte.
	n := c.nodes[2]
	before := filesUnder(t, n.opts.Root)
	n.stop()
	restarted := c.start(n.opts)
	waitFor(t, 20*time.Second, "the restarted node to write Nomad's configuration", func() bool {
		return restarted.agent.Status().Phase == status.PhaseConfigured
	})
	after := filesUnder(t, n.opts.Root)
	for p, v := range before {
		if after[p] != v {
			t.Errorf("restart changed %s", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("restart created %s", p)
		}
	}
}

func TestDryRun(t *testing.T) {
	c := newCluster(t)
	c.startN(3, nil)
	waitFor(t, 30*time.Second, "every node to write Nomad's configuration", func() bool {
		for _, n := range c.nodes {
			if n.agent.Status().Phase != status.PhaseConfigured {
				return false
			}
		}
		return true
	})
	n := c.nodes[1]
	n.stop()
	fresh, err := New(n.opts)
	if err != nil {
		t.Fatal(err)
	}
	out, err := fresh.DryRun()
	if err != nil || !strings.Contains(out, "configuration is up to date") {
		t.Errorf("dry run on an up-to-date node: %v\n%s", err, out)
	}
	// An operator edits a managed file: the dry run shows the change back.
	p := filepath.Join(n.agent.paths.NomadConfigDir(), nomadconf.AgentFile)
	old, _ := os.ReadFile(p)
	edited := strings.Replace(string(old), "log_level", "log_level_edited", 1)
	os.WriteFile(p, []byte(edited), 0o644)
	before := filesUnder(t, n.opts.Root)
	out, err = fresh.DryRun()
	if err != nil || !strings.Contains(out, "-log_level_edited") || !strings.Contains(out, "+log_level") {
		t.Errorf("dry run after an edit: %v\n%s", err, out)
	}
	if after := filesUnder(t, n.opts.Root); len(after) != len(before) {
		t.Errorf("dry run changed the files under the root")
	}
	for k, v := range before {
		if filesUnder(t, n.opts.Root)[k] != v {
			t.Errorf("dry run changed %s", k)
		}
	}
}

func TestStatusWarnsBeforeCertificateExpiry(t *testing.T) {
	c := newCluster(t)
	var offset atomic.Int64
	c.startN(3, func(_ int, o *Options) {
		o.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	})
	waitFor(t, 30*time.Second, "every node to be certified", func() bool {
		for _, n := range c.nodes {
			if n.agent.Status().Certs == nil {
				return false
			}
		}
		return true
	})
	if w := c.nodes[0].agent.Status().Warnings; len(w) != 0 {
		t.Fatalf("fresh certificate: warnings %q", w)
	}
	offset.Store(int64(20 * time.Hour)) // 4 hours before the 24-hour certificate ends
	w := c.nodes[0].agent.Status().Warnings
	if len(w) != 1 || !strings.Contains(w[0], "certificate expires in") {
		t.Errorf("warnings %q; want one about the certificate's expiry", w)
	}
}

func TestCAFailover(t *testing.T) {
	c := newCluster(t)
	c.startN(4, func(_ int, o *Options) { o.Config.CAFailoverAfter = 500 * time.Millisecond })
	waitFor(t, 30*time.Second, "every node to write Nomad's configuration", func() bool {
		for _, n := range c.nodes {
			if n.agent.Status().Phase != status.PhaseConfigured {
				return false
			}
		}
		return true
	})
	p := *c.nodes[0].agent.plan
	var holder *testNode
	for _, n := range c.nodes {
		if n.agent.ID() == p.CAHolder {
			holder = n
		}
	}
	// The failover needs the escrowed key, which the holder sends once it
	// serves: wait until every other server has it.
	waitFor(t, 30*time.Second, "the other servers to hold the escrowed CA key", func() bool {
		for _, n := range c.nodes {
			if n != holder && p.IsServer(n.agent.ID()) && !n.agent.caStore().HasEscrow() {
				return false
			}
		}
		return true
	})
	holder.stop() // the CA holder is gone for good

	late := c.options(4)
	late.Config.CAFailoverAfter = 500 * time.Millisecond
	if holder == c.nodes[0] {
		late.Config.Join = []string{c.addr(1)}
	}
	n := c.start(late)
	defer func() {
		if t.Failed() {
			for _, m := range append(c.nodes, n) {
				s := m.agent.Status()
				t.Logf("%s: %s %s %q", s.Node.Name, s.Phase, s.Reason, s.Warnings)
			}
		}
	}()
	waitFor(t, 30*time.Second, "the late node to be certified", func() bool {
		return n.agent.Status().Phase >= status.PhaseCertified && n.agent.Status().Phase != status.PhaseDegraded
	})
	files := certs.TLSFiles{Dir: n.agent.paths.NomadTLSDir()}
	bundle, _ := os.ReadFile(files.CAPath())
	cas, err := certs.ParseCertsPEM(bundle)
	if err != nil || certs.Fingerprint(cas[0]) != p.CAFingerprint {
		t.Fatalf("the late node's CA is not the pinned one: %v", err)
	}
	cert, err := files.LoadCert(certs.RoleClient)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cas[0])
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "client.global.nomad", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the late node's certificate does not chain to the cluster CA: %v", err)
	}
	var takenOver bool
	for _, m := range c.nodes {
		if m == holder {
			continue
		}
		for _, w := range m.agent.Status().Warnings {
			takenOver = takenOver || strings.Contains(w, "now signs certificates")
		}
	}
	if !takenOver {
		t.Error("no server reports that it took over the CA")
	}
}

func TestCertificatesRenew(t *testing.T) {
	c := newCluster(t)
	var offset atomic.Int64
	c.startN(3, func(_ int, o *Options) {
		o.Config.CertLifetime = time.Hour
		o.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	})
	notAfter := map[string]time.Time{}
	waitFor(t, 30*time.Second, "every node to be certified", func() bool {
		for _, n := range c.nodes {
			s := n.agent.Status()
			if s.Certs == nil {
				return false
			}
			notAfter[s.Node.Name] = s.Certs.NotAfter
		}
		return true
	})
	offset.Store(int64(35 * time.Minute)) // past half the lifetime
	waitFor(t, 20*time.Second, "every node to renew its certificate", func() bool {
		for _, n := range c.nodes {
			s := n.agent.Status()
			if s.Certs == nil || !s.Certs.NotAfter.After(notAfter[s.Node.Name]) {
				return false
			}
		}
		return true
	})
}
