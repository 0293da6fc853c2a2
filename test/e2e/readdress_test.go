package e2e

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// TestServerNewAddress runs three servers and a client with real Nomad,
// each machine in a network namespace of its own on one bridge, then
// stops a server (neither Nomad's leader nor the CA holder), gives its
// machine another address, as a new DHCP lease would, and starts its
// agent again on it. Every agent then lists the server alive at its new
// address, its server certificate carries it, Nomad's Raft has it in place
// of the old one (autopilot removed the dead entry), and every node is
// healthy again, with a leader.
func TestServerNewAddress(t *testing.T) {
	needNetns(t)
	bin := nomadBin(t)
	n := newPartitionNet(t, 4, 4)
	for _, h := range n.hosts {
		// Nomad's client fingerprints the interface of the default
		// route, and refuses to start without one.
		if err := ipCmd("-n", h, "route", "add", "default", "via", "198.19.0.1", "dev", "eth0"); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(newToken(t)+"\n"), 0o600)
	seeds := strings.Join([]string{n.addr(0), n.addr(1), n.addr(2), n.addr(3)}, ",")
	args := func(i int, addr string) []string {
		a := []string{"-bind", addr, "-join", seeds, "-token-file", tokenFile, "-settle", "1s", "-min-members", "4",
			"-supervise", "process", "-nomad", bin}
		if i == 3 {
			a = append(a, "-role", "client")
		}
		return a
	}
	var procs []*proc
	for i := range 4 {
		name := "node" + string(rune('1'+i))
		p := startIn(t, n.hosts[i], filepath.Join(dir, name), name, args(i, n.addr(i))...)
		p.addr = n.addr(i)
		procs = append(procs, p)
	}
	waitForOr(t, 120*time.Second, "every agent to run a healthy Nomad", allRunning(t, procs), explainCluster(t, procs))
	s, _ := statusJSON(t, procs[0].root)
	leader := s.Nomad.Leader
	mi := slices.IndexFunc(procs, func(p *proc) bool {
		return slices.Contains(s.Plan.Servers, p.name) && p.name != s.Plan.CAHolder && !strings.HasPrefix(leader, p.addr+":")
	})
	moved, oldAddr, newAddr := procs[mi], procs[mi].addr, "198.19.0.31"
	t.Logf("moving %s from %s to %s; Nomad's leader %s, CA holder %s", moved.name, oldAddr, newAddr, leader, s.Plan.CAHolder)

	moved.stop(syscall.SIGTERM)
	for _, a := range [][]string{
		{"-n", n.hosts[mi], "addr", "del", oldAddr + "/24", "dev", "eth0"},
		{"-n", n.hosts[mi], "addr", "add", newAddr + "/24", "dev", "eth0"},
		{"-n", n.hosts[mi], "route", "add", "default", "via", "198.19.0.1", "dev", "eth0"},
	} {
		if err := ipCmd(a...); err != nil {
			t.Fatal(err)
		}
	}
	again := startIn(t, n.hosts[mi], moved.root, moved.name, args(mi, newAddr)...)
	again.addr = newAddr
	procs[mi] = again

	// The servers that stayed say who leads.
	stayed := slices.DeleteFunc(slices.Clone(procs), func(p *proc) bool { return p == again || !slices.Contains(s.Plan.Servers, p.name) })
	leaders := map[string]int{}
	settled := func() bool {
		for _, p := range stayed {
			if st, _ := statusJSON(t, p.root); st.Nomad != nil {
				leaders[st.Nomad.Leader]++
			}
		}
		for _, p := range procs {
			st, code := statusJSON(t, p.root)
			if code != 0 || st.Nomad == nil || !slices.Contains(st.Nomad.Peers, newAddr+":4647") || slices.Contains(st.Nomad.Peers, oldAddr+":4647") {
				return false
			}
			if !slices.ContainsFunc(st.Members, func(m status.MemberStatus) bool {
				return m.Name == moved.name && m.Address == newAddr && m.Status == "alive"
			}) {
				return false
			}
		}
		return true
	}
	waitForOr(t, 6*time.Minute, "every node to take the server at its new address", settled, explainCluster(t, procs))
	// The moved server campaigned while it could reach no one, so its
	// Raft term is ahead: when the leader first replicates to it, the
	// leader steps down and the next election, one round, follows. The
	// samples show it; what must hold is that a leader is back.
	t.Logf("Nomad's leader as the servers that stayed saw it, every 200 ms: %v", leaders)
	files := certs.TLSFiles{Dir: paths.New(again.root).NomadTLSDir()}
	c, err := files.LoadCert(certs.RoleServer)
	if err != nil || !slices.ContainsFunc(c.IPAddresses, func(ip net.IP) bool { return ip.String() == newAddr }) {
		t.Errorf("the moved server's certificate does not name %s: %v", newAddr, err)
	}
}
