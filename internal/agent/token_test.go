package agent

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
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
