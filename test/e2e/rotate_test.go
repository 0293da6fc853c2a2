package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agent"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossipkeys"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
)

// TestClientTokenRotation rotates the client token of a cluster running
// real Nomad: token rotate -client on a server prints a new client token;
// after the grace, a machine with the old one is refused by the CA with a
// message that says so; a machine with the new one joins and runs a
// healthy Nomad client; keys rotate then leaves the machine with the old
// token out of the agents' new gossip key, and it drops out of gossip; a
// node admitted with the old one renews its certificate; Nomad's leader is
// never lost.
func TestClientTokenRotation(t *testing.T) {
	const prefix = "127.22.6"
	bin, dir := nomadBin(t), t.TempDir()
	_, oldToken, procs := runningCluster(t, prefix, dir)
	s, _ := statusJSON(t, procs[0].root)
	server := procs[slices.IndexFunc(procs, func(p *proc) bool { return slices.Contains(s.Plan.Servers, p.name) })]
	admitted := procs[3]
	stop := pollLeaderOf(t, server)

	// Not on a client-token node.
	if _, stderr, code := run(t, "token", "rotate", "-client", "-root", admitted.root); code != 1 || !strings.Contains(stderr, "runs on a Nomad server") {
		t.Errorf("token rotate on a client: exit %d, %q", code, stderr)
	}
	out, stderr, code := run(t, "token", "rotate", "-client", "-grace", "2s", "-root", server.root)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	newToken := lines[len(lines)-1]
	if code != 0 || !strings.HasPrefix(newToken, "nbd2c_") || !strings.Contains(stderr, "generation 1") || strings.Contains(stderr, "nbd2c_") {
		t.Fatalf("token rotate -client: exit %d, stdout %d lines, %q", code, len(lines), stderr)
	}
	newFile := filepath.Join(dir, "client-token-2")
	if err := os.WriteFile(newFile, []byte(newToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "every agent to hold client token generation 1", func() bool {
		for _, p := range procs {
			if s, _ := statusJSON(t, p.root); s.Cluster == nil || s.Cluster.ClientToken.Generation != 1 {
				return false
			}
		}
		return true
	})
	time.Sleep(3 * time.Second) // the grace

	joiner := func(i int, tokenFile string) *proc {
		addr := prefix + "." + string(rune('0'+i+1))
		name := "node" + string(rune('0'+i+1))
		args := append([]string{"-bind", addr, "-join", procs[0].addr, "-settle", "1s"}, realNomadArgs(bin, "")(3)...)
		p := start(t, filepath.Join(dir, name), name, append(args, "-token-file", tokenFile)...)
		p.addr = addr
		return p
	}
	stale := joiner(5, oldToken)
	fresh := joiner(6, newFile)
	waitForOr(t, 60*time.Second, "the machine with the old client token to be refused, and the one with the new to run", func() bool {
		s, _ := statusJSON(t, stale.root)
		f, _ := statusJSON(t, fresh.root)
		return strings.Contains(s.Reason, "replaced by `nomad-bootstrapd token rotate -client`") && f.Phase.String() == "running"
	}, explainCluster(t, []*proc{stale, fresh}))
	if s, _ := statusJSON(t, stale.root); s.Certs != nil {
		t.Errorf("the machine with the old client token holds certificates: %+v", s.Certs)
	}

	// Rotating the gossip keys cuts it off: the servers refuse it the
	// agents' new key, and it no longer gossips with the cluster.
	out, stderr, code = runWithin(t, 3*time.Minute, "keys", "rotate", "-json", "-root", server.root)
	var ans agent.KeysAnswer
	if code != 0 || json.Unmarshal([]byte(out), &ans) != nil || ans.Agents.Generation != 1 || !slices.Equal(ans.Agents.LeftOut, []string{stale.name}) {
		t.Fatalf("keys rotate: exit %d, %q, %q", code, out, stderr)
	}
	if !strings.Contains(stale.log.String(), "cannot get it yet") {
		t.Errorf("the machine with the old client token did not log why it lacks the key\n%s", stale.log.String())
	}
	if r, err := gossipkeys.Load(paths.New(stale.root).GossipKeysFile(), nil); err != nil || r.Newest() != 0 {
		t.Errorf("the machine with the old client token holds generation %d of the agents' key (%v)", r.Newest(), err)
	}
	waitForOr(t, 60*time.Second, "the servers to see the machine with the old client token gone from gossip", func() bool {
		s, _ := statusJSON(t, server.root)
		for _, m := range s.Members {
			if m.Name == stale.name {
				return m.Status != "alive"
			}
		}
		return true
	}, explainCluster(t, []*proc{server, stale}))
	for _, p := range []*proc{server, fresh, admitted} {
		if r, err := gossipkeys.Load(paths.New(p.root).GossipKeysFile(), nil); err != nil || r.InUse != 1 || len(r.Keys) != 1 {
			t.Errorf("%s does not hold generation 1 of the agents' key alone (%v)", p.name, err)
		}
	}

	// A node admitted with the old token renews with its admission.
	admitted.stop(15)
	tls := paths.New(admitted.root).NomadTLSDir()
	for _, f := range []string{"client.pem", "client-key.pem"} {
		if err := os.Remove(filepath.Join(tls, f)); err != nil {
			t.Fatal(err)
		}
	}
	again := start(t, admitted.root, admitted.name, admitted.args...)
	again.addr = admitted.addr
	waitForOr(t, 60*time.Second, "the node admitted before the rotation to run again with a new certificate", func() bool {
		s, _ := statusJSON(t, again.root)
		_, err := os.Stat(filepath.Join(tls, "client.pem"))
		return s.Phase.String() == "running" && err == nil
	}, explainCluster(t, []*proc{again}))

	polls := stop()
	if len(polls.leaders) != 1 || polls.leaders[""] > 0 || polls.n < 10 {
		t.Errorf("Nomad's leader during the rotation: %d polls, %v", polls.n, polls.leaders)
	}
}
