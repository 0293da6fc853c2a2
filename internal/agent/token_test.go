package agent

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/fingerprint"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/planfile"
)

// Nodes that joined with a client token are never elected, even when they
// ask to be servers and are the largest machines; they say why in status,
// and hold no CA directory.
func TestClientTokenNodesAreNeverServers(t *testing.T) {
	c := newCluster(t)
	client := certs.ClientCredential(c.token.Client(time.Time{}))
	c.startN(5, func(i int, o *Options) {
		o.Config.MinMembers = 5
		o.Config.BootstrapSize = 5
		if i >= 3 {
			o.Credential = client
			o.Config.Role = "server"
			o.Sources = fakeSources(64, 256*1024)
		}
	})
	plans := c.waitCommitted(c.nodes, 30*time.Second)
	for i, p := range plans {
		if got := strings.Join(slices.Sorted(slices.Values(p.Servers)), ","); got != "n00,n01,n02" {
			t.Errorf("node %d: servers %s, want n00,n01,n02", i, got)
		}
	}
	// A client-token node was admitted: it keeps the CA's admission for
	// its renewals.
	for _, n := range c.nodes[3:] {
		waitFor(t, 20*time.Second, n.agent.Name()+" to keep its admission", func() bool {
			fi, err := os.Stat(n.agent.paths.AdmissionFile())
			return err == nil && fi.Mode().Perm() == 0o600
		})
	}
	// A client-token node restarts on the plan it persisted.
	old := c.nodes[4]
	old.stop()
	c.nodes[4] = c.start(old.opts)
	if p := c.waitCommitted(c.nodes[4:], 10*time.Second)[0]; p.Epoch != plans[0].Epoch || p.CAHolder != plans[0].CAHolder {
		t.Errorf("restarted client-token node holds %+v, want %+v", p, plans[0])
	}
	for i, n := range c.nodes {
		fi, err := os.Stat(n.agent.paths.IdentityKeyFile())
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: identity key %v, %v; want a 0600 file", n.agent.Name(), fi, err)
		}
		s := n.agent.Status()
		warned := slices.ContainsFunc(s.Warnings, func(w string) bool { return strings.Contains(w, `role = "server" needs the server token`) })
		if warned != (i >= 3) {
			t.Errorf("%s: warnings %q", n.agent.Name(), s.Warnings)
		}
		if i >= 3 {
			if _, err := os.Stat(n.agent.paths.CADir()); !os.IsNotExist(err) {
				t.Errorf("%s holds a CA directory: %v", n.agent.Name(), err)
			}
		}
	}
}

// A node whose client token has expired is not admitted: it gets no
// certificate, and status says why.
func TestExpiredClientTokenIsNotAdmitted(t *testing.T) {
	c := newCluster(t)
	expired := certs.ClientCredential(c.token.Client(time.Now().Add(-time.Hour)))
	c.startN(4, func(i int, o *Options) {
		o.Config.MinMembers = 4
		o.Config.BootstrapSize = 4
		if i == 3 {
			o.Credential = expired
		}
	})
	c.waitCommitted(c.nodes, 30*time.Second)
	n := c.nodes[3]
	waitFor(t, 20*time.Second, "the expired node to report why it has no certificate", func() bool {
		s := n.agent.Status()
		return strings.Contains(s.Reason, "the client token has expired")
	})
	s := n.agent.Status()
	if !slices.ContainsFunc(s.Warnings, func(w string) bool { return strings.Contains(w, "the client token expired at") }) {
		t.Errorf("warnings %q; want the expiry", s.Warnings)
	}
	if _, err := os.Stat(n.agent.paths.AdmissionFile()); !os.IsNotExist(err) {
		t.Errorf("the expired node holds an admission: %v", err)
	}
}

// A plan on disk that its servers did not sign (written by hand, or by an
// older version) is refused at start, with what to do.
func TestUnsignedPlanOnDiskIsRefused(t *testing.T) {
	c := newCluster(t)
	o := c.options(0)
	p := *validPlan()
	signAll(c.token, &p)
	p.Signatures = p.Signatures[:1]
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(a.paths.StateDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := planfile.Save(a.paths.PlanFile(), a.cred.ClusterIDString(), a.id, p, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := fingerprint.SaveNodeID(a.paths.NodeIDFile(), a.id); err != nil {
		t.Fatal(err)
	}
	_, err = New(o)
	if err == nil || !strings.Contains(err.Error(), "is not the cluster's decision (epoch 1 carries valid signatures of 1 of its 3 servers") ||
		!strings.Contains(err.Error(), "remove it") {
		t.Fatalf("New = %v; want a refusal of the unsigned plan", err)
	}
}

// The dry run says which token a node holds, and what a client token means.
func TestDryRunNamesTheToken(t *testing.T) {
	c := newCluster(t)
	for _, tt := range []struct {
		cred certs.Credential
		want []string
	}{
		{certs.ServerCredential(c.token), []string{", server token, "}},
		{certs.ClientCredential(c.token.Client(time.Time{})), []string{", client token, ", "it holds a client token: it joins as a Nomad client only"}},
	} {
		o := c.options(0)
		o.Credential = tt.cred
		o.Config.Role = "server"
		a, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		out, err := a.DryRun()
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("dry run lacks %q:\n%s", w, out)
			}
		}
	}
}
