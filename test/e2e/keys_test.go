package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agent"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossipkeys"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadkeys"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
)

// TestNomadGossipKeyRotation rotates Nomad's gossip key on a running
// 5-node cluster of real Nomad, twice: after each keys rotate, every
// server's keyring (Nomad's API and its keyring file) holds the new key
// only; no Nomad process was restarted (same PIDs); Nomad's leader was
// never lost (polled every 250 ms). The CA holder rotates on schedule
// once the last rotation is older than gossip_key_rotation, the agents'
// key with it, and Nomad's key at once when Nomad lost the keys (the
// Variable deleted). keys rotate rotates the agents' key too: afterwards
// every agent holds the new key alone, and the token's key and every
// earlier generation are refused by gossip. A fifth rotation runs
// with a server down; when it comes back its agent brings its Nomad up to the new key
// and it rejoins. Every agent's status shows the generation, and no
// client-token node holds a key. A new server that takes an evicted
// server's seat afterwards is given the current key before its Nomad
// starts; a second, whose keyring file holds a key no server uses, has its
// Nomad restarted with the current keys by its agent; both become voters
// of Nomad's raft. keys rotate refuses to run on a client.
func TestNomadGossipKeyRotation(t *testing.T) {
	const prefix = "127.22.7"
	dir := t.TempDir()
	serverToken, _, procs := runningCluster(t, prefix, dir)
	s, _ := statusJSON(t, procs[0].root)
	var servers []*proc
	var client *proc
	for _, p := range procs {
		if slices.Contains(s.Plan.Servers, p.name) {
			servers = append(servers, p)
		} else {
			client = p
		}
	}
	server := servers[0]
	pids := map[string]int{}
	for _, p := range procs {
		st, _ := statusJSON(t, p.root)
		if pids[p.name] = nomadChildPID(st); pids[p.name] == 0 {
			t.Fatalf("%s runs no Nomad: %+v", p.name, st.Nomad)
		}
	}
	mgmt := managementToken(t, server.root)
	keyrings := func() map[string]int {
		t.Helper()
		resp, err := nomadAPIAt(t, server.root, server.addr, mgmt).Agent().ListKeys()
		if err != nil {
			t.Fatalf("listing Nomad's gossip keys: %v", err)
		}
		if resp.NumNodes != len(servers) {
			t.Errorf("%d Nomad servers answered the keyring listing; want %d", resp.NumNodes, len(servers))
		}
		return resp.Keys
	}
	before := keyrings()
	if len(before) != 1 {
		t.Fatalf("before any rotation the servers hold %d keys", len(before))
	}
	stop := pollLeaderOf(t, server)

	if _, stderr, code := run(t, "keys", "rotate", "-root", client.root); code != 1 || !strings.Contains(stderr, "runs on a Nomad server") {
		t.Errorf("keys rotate on a client: exit %d, %q", code, stderr)
	}
	tok, err := certs.ParseToken(strings.TrimSpace(readFile(t, serverToken)))
	if err != nil {
		t.Fatal(err)
	}
	agentKeys := map[string]bool{string(tok.GossipKey()): true}
	seen, latest := map[string]bool{}, ""
	for k := range before {
		seen[k] = true
	}
	for gen := uint32(1); gen <= 2; gen++ {
		out, stderr, code := runWithin(t, 3*time.Minute, "keys", "rotate", "-json", "-root", server.root)
		var ans agent.KeysAnswer
		if code != 0 || json.Unmarshal([]byte(out), &ans) != nil || ans.Generation != gen || ans.Agents.Generation != gen {
			t.Fatalf("keys rotate (generation %d): exit %d, %q, %q", gen, code, out, stderr)
		}
		agentKeys = checkAgentKeys(t, procs, gen, agentKeys)
		keys := keyrings()
		var current string
		for k, n := range keys {
			current = k
			if n != len(servers) {
				t.Errorf("generation %d: the new key is on %d of %d servers", gen, n, len(servers))
			}
		}
		if len(keys) != 1 || seen[current] {
			t.Fatalf("generation %d: the servers hold %d keys, or an old one", gen, len(keys))
		}
		seen[current] = true
		latest = current
		for _, p := range servers {
			b, err := os.ReadFile(filepath.Join(paths.New(p.root).NomadDataDir(), nomadkeys.KeyringFile))
			var file []string
			if err != nil || json.Unmarshal(b, &file) != nil || !slices.Equal(file, []string{current}) {
				t.Errorf("generation %d: %s's keyring file does not hold the new key only (%v)", gen, p.name, err)
			}
		}
		if strings.Contains(out+stderr, current) {
			t.Errorf("keys rotate printed the key")
		}
	}
	// The CA holder rotates on schedule (gossip_key_rotation, 30 days by
	// default): make the last rotation look 31 days old.
	nc := nomadAPIAt(t, server.root, server.addr, mgmt)
	q, cancel := bounded(5 * time.Second)
	v, _, err := nc.Variables().Read(nomadkeys.VarPath, q)
	cancel()
	if err != nil {
		t.Fatalf("reading Nomad Variable %s: %v", nomadkeys.VarPath, err)
	}
	var recorded nomadkeys.Keys
	if err := json.Unmarshal([]byte(v.Items["nomad_gossip"]), &recorded); err != nil || recorded.Generation != 2 || recorded.Phase != nomadkeys.PhaseDone {
		t.Fatalf("Nomad Variable %s holds %+v, %v", nomadkeys.VarPath, recorded.Generation, err)
	}
	recorded.RotatedAt = recorded.RotatedAt.Add(-31 * 24 * time.Hour)
	b, _ := json.Marshal(recorded)
	v.Items["nomad_gossip"] = string(b)
	w, cancelW := context.WithTimeout(context.Background(), 5*time.Second)
	if _, _, err := nc.Variables().CheckedUpdate(v, (&api.WriteOptions{}).WithContext(w)); err != nil {
		t.Fatal(err)
	}
	cancelW()
	waitFor(t, 150*time.Second, "the CA holder to rotate Nomad's gossip key on schedule (it checks every minute)", func() bool {
		resp, err := nc.Agent().ListKeys()
		if err != nil || len(resp.Keys) != 1 {
			return false
		}
		for k, n := range resp.Keys {
			if !seen[k] && n == len(servers) {
				// Done once the cluster state records it.
				st, _ := statusJSON(t, server.root)
				if st.Cluster == nil || st.Cluster.NomadGossipKey.Generation != 3 {
					return false
				}
				seen[k], latest = true, k
				return true
			}
		}
		return false
	})

	// The agents' key keeps the same schedule: it follows.
	waitForOr(t, 90*time.Second, "the CA holder to rotate the agents' gossip key with Nomad's scheduled rotation", func() bool {
		for _, p := range procs {
			if r, err := gossipkeys.Load(paths.New(p.root).GossipKeysFile(), nil); err != nil || r.InUse != 3 || len(r.Keys) != 1 {
				return false
			}
		}
		return true
	}, explainCluster(t, procs))
	agentKeys = checkAgentKeys(t, procs, 3, agentKeys)

	// Nomad loses the keys (a deleted Variable, as after an older
	// snapshot): the CA holder rotates to a key it knows, after the
	// generation the cluster state records.
	w, cancelW = context.WithTimeout(context.Background(), 5*time.Second)
	_, err = nc.Variables().Delete(nomadkeys.VarPath, (&api.WriteOptions{}).WithContext(w))
	cancelW()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 150*time.Second, "the CA holder to rotate to a new key after Nomad lost the keys", func() bool {
		resp, err := nc.Agent().ListKeys()
		if err != nil || len(resp.Keys) != 1 {
			return false
		}
		for k, n := range resp.Keys {
			st, _ := statusJSON(t, server.root)
			if !seen[k] && n == len(servers) && st.Cluster != nil && st.Cluster.NomadGossipKey.Generation == 4 {
				seen[k], latest = true, k
				return true
			}
		}
		return false
	})

	polls := stop()
	if len(polls.leaders) != 1 || polls.leaders[""] > 0 || polls.unanswered > 0 || polls.n < 10 {
		t.Errorf("Nomad's leader during the rotations: %d polls, %d unanswered, %v", polls.n, polls.unanswered, polls.leaders)
	}

	// A server down through a rotation is brought up to the new key by
	// its agent when it comes back.
	away := servers[1]
	away.stop(15)
	memberStatus := func(addr string) string {
		q, cancel := bounded(5 * time.Second)
		defer cancel()
		members, err := nc.Agent().MembersOpts(q)
		if err != nil {
			return ""
		}
		for _, m := range members.Members {
			if m.Addr == addr {
				return m.Status
			}
		}
		return "none"
	}
	waitFor(t, 120*time.Second, "Nomad to see the stopped server failed", func() bool { return memberStatus(away.addr) == "failed" })
	out, stderr, code := runWithin(t, 3*time.Minute, "keys", "rotate", "-json", "-root", server.root)
	var ans agent.KeysAnswer
	if code != 0 || json.Unmarshal([]byte(out), &ans) != nil || ans.Generation != 5 || ans.Resumed || ans.Agents.Generation != 4 {
		t.Fatalf("keys rotate with a server down: exit %d, %q, %q\n%s", code, out, stderr, server.log.String())
	}
	// The server that is away still holds generation 3 of the agents' key
	// (rotated on schedule with Nomad's) only: it gets the new one from the
	// CA port of a server once it is back.
	if r, err := gossipkeys.Load(paths.New(away.root).GossipKeysFile(), nil); err != nil || r.InUse != 3 {
		t.Fatalf("the stopped server's agents' keys: %+v, %v", r.InUse, err)
	}
	back := start(t, away.root, away.name, away.args...)
	back.addr = away.addr
	procs[slices.Index(procs, away)], servers[1] = back, back
	waitForOr(t, 150*time.Second, "the returning server's Nomad to gossip again, with the new key only", func() bool {
		if memberStatus(back.addr) != "alive" {
			return false
		}
		resp, err := nc.Agent().ListKeys()
		if err != nil || resp.NumNodes != 3 || len(resp.Keys) != 1 || resp.Keys[latest] != 0 {
			return false
		}
		// A healthy voter of raft again: autopilot may have removed it
		// while it was away.
		q, cancel := bounded(5 * time.Second)
		defer cancel()
		h, _, err := nc.Operator().AutopilotServerHealth(q)
		return err == nil && h.Healthy && h.FailureTolerance == 1
	}, explainCluster(t, []*proc{server, back}))
	for k := range keyrings() {
		seen[k], latest = true, k
	}
	if len(seen) != 6 {
		t.Errorf("after five rotations %d keys were seen; want 6", len(seen))
	}
	if !logHasLine(back, "this server's Nomad lacked the current gossip key") {
		t.Errorf("the returning server's agent did not heal its Nomad\n%s", back.log.String())
	}
	waitForOr(t, 60*time.Second, "every agent to hold generation 4 of the agents' gossip key alone", func() bool {
		for _, p := range procs {
			r, err := gossipkeys.Load(paths.New(p.root).GossipKeysFile(), nil)
			if err != nil || r.InUse != 4 || len(r.Keys) != 1 {
				return false
			}
		}
		return true
	}, explainCluster(t, procs))
	if !logHasLine(back, "got it from a server") {
		t.Errorf("the returning server did not get the agents' key from the CA endpoint\n%s", back.log.String())
	}
	// The token's key, and every earlier generation, no longer gossips
	// with the cluster: a node holding one is refused at once.
	for key := range agentKeys {
		if n, err := tryJoin(t, prefix+".99", []byte(key), tok.GossipLabel(), server.addr); n > 0 || err == nil {
			t.Errorf("a node with an old agents' gossip key joined (%d, %v)", n, err)
		}
	}
	checkAgentKeys(t, procs, 4, agentKeys)

	waitForOr(t, 30*time.Second, "every agent to show generation 5 of Nomad's gossip key", func() bool {
		for _, p := range procs {
			if s, _ := statusJSON(t, p.root); s.Cluster == nil || s.Cluster.NomadGossipKey.Generation != 5 {
				return false
			}
		}
		return true
	}, explainCluster(t, procs))
	for _, p := range procs {
		st, _ := statusJSON(t, p.root)
		if pid := nomadChildPID(st); p != back && pid != pids[p.name] {
			t.Errorf("%s's Nomad was restarted: pid %d, was %d", p.name, pid, pids[p.name])
		}
		if strings.Contains(p.log.String(), "keyring") && strings.Contains(p.log.String(), "\"key\"") {
			t.Errorf("%s's log shows a key", p.name)
		}
	}
	// No client-token node holds a rotated key, anywhere under its root.
	for _, p := range procs {
		if slices.Contains(servers, p) {
			continue
		}
		filepath.WalkDir(p.root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			b, _ := os.ReadFile(path)
			for key := range seen {
				if slices.ContainsFunc(secretForms(key), func(f []byte) bool { return bytes.Contains(b, f) }) {
					t.Errorf("%s (a client) holds one of Nomad's gossip keys in %s", p.name, path)
				}
			}
			return nil
		})
	}

	// New servers take the seats of evicted ones. The first is given the
	// current keys before its Nomad starts. The second has a keyring file
	// holding a key no server uses: its Nomad cannot join, nor be changed
	// through its API (it holds no ACL token yet), so its agent restarts it
	// with the current keys.
	for i, tc := range []struct {
		evict  *proc
		bogus  bool
		logged string
	}{
		{servers[2], false, "gave Nomad's keyring the current gossip keys"},
		{servers[1], true, "restarting it with the current keys"},
	} {
		name, addr := fmt.Sprintf("node%d", 6+i), fmt.Sprintf("%s.%d", prefix, 6+i)
		// The token's key no longer opens the cluster's gossip: the spare
		// gets the agents' key from its seed's port+1, where every server
		// answers, the first spare's seed being a server that does not
		// sign certificates, the second's the CA holder.
		st, _ := statusJSON(t, server.root)
		seed := server
		for _, p := range servers {
			if p != tc.evict && (p.name == st.Plan.CAHolder) == (i == 1) {
				seed = p
				break
			}
		}
		spare := start(t, filepath.Join(dir, name), name, append([]string{"-bind", addr, "-join", seed.addr, "-token-file", serverToken, "-settle", "1s"},
			realNomadArgs(nomadBin(t), "")(0)...)...)
		spare.addr = addr
		waitForOr(t, 90*time.Second, "the spare to run", func() bool {
			s, _ := statusJSON(t, spare.root)
			return s.Phase.String() == "running"
		}, func() {
			t.Logf("%s log:\n%s\nits seed %s:\n%s", name, spare.log.String(), seed.name, seed.log.String())
		})
		if tc.bogus {
			bogus, _ := json.Marshal([]string{nomadkeys.NewKey()})
			keyring := filepath.Join(paths.New(spare.root).NomadDataDir(), nomadkeys.KeyringFile)
			if err := os.MkdirAll(filepath.Dir(keyring), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(keyring, bogus, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if out, stderr, code := run(t, "node", "evict", "-root", server.root, tc.evict.name); code != 0 {
			t.Fatalf("node evict %s: exit %d\n%s%s", tc.evict.name, code, out, stderr)
		}
		waitForOr(t, 150*time.Second, name+" to be a healthy voter of Nomad's raft, with the current key", func() bool {
			q, cancel := bounded(5 * time.Second)
			defer cancel()
			h, _, err := nc.Operator().AutopilotServerHealth(q)
			if err != nil || !h.Healthy || h.FailureTolerance != 1 {
				return false
			}
			if !slices.ContainsFunc(h.Servers, func(sh api.ServerHealth) bool { return strings.HasPrefix(sh.Address, spare.addr+":") && sh.Voter }) ||
				slices.ContainsFunc(h.Servers, func(sh api.ServerHealth) bool { return strings.HasPrefix(sh.Address, tc.evict.addr+":") }) {
				return false
			}
			// Serf has given up on the evicted server: keyring calls answer.
			resp, err := nc.Agent().ListKeys()
			return err == nil && resp.NumNodes == len(servers)
		}, explainCluster(t, []*proc{server, spare}))
		keys := keyrings()
		if len(keys) != 1 || keys[latest] != len(servers) {
			t.Errorf("with %s, the servers hold %d keys, the last rotation's on %d", name, len(keys), keys[latest])
		}
		if r, err := gossipkeys.Load(paths.New(spare.root).GossipKeysFile(), nil); err != nil || r.InUse != 4 || len(r.Keys) != 1 {
			t.Errorf("%s holds the agents' keys %+v, %v; want generation 4 alone", name, r, err)
		}
		if !strings.Contains(spare.log.String(), tc.logged) {
			t.Errorf("%s's agent did not log %q\n%s", name, tc.logged, spare.log.String())
		}
	}
}

// checkAgentKeys checks that every agent holds generation gen of the
// agents' gossip key alone, in a 0600 file, the same key everywhere and
// none seen before, and that its status shows the generation; it returns
// seen with the new key added.
func checkAgentKeys(t *testing.T, procs []*proc, gen uint32, seen map[string]bool) map[string]bool {
	t.Helper()
	var key []byte
	for _, p := range procs {
		path := paths.New(p.root).GossipKeysFile()
		r, err := gossipkeys.Load(path, nil)
		if err != nil || r.InUse != gen || len(r.Keys) != 1 {
			t.Errorf("%s holds the agents' keys %v (in use %d), %v; want generation %d alone", p.name, len(r.Keys), r.InUse, err, gen)
			continue
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %s is not 0600 (%v)", p.name, path, err)
		}
		if key == nil {
			key = r.Primary()
		} else if !bytes.Equal(key, r.Primary()) {
			t.Errorf("%s holds another key of generation %d", p.name, gen)
		}
		if st, _ := statusJSON(t, p.root); st.Cluster == nil || st.Cluster.AgentGossipKey.Generation != gen {
			t.Errorf("%s's status does not show generation %d of the agents' key", p.name, gen)
		}
		if strings.Contains(p.log.String(), base64.StdEncoding.EncodeToString(r.Primary())) {
			t.Errorf("%s logged the agents' gossip key", p.name)
		}
	}
	if seen[string(key)] {
		t.Errorf("generation %d of the agents' gossip key is one seen before", gen)
	}
	seen[string(key)] = true
	return seen
}

// tryJoin starts a gossip node on addr with key and label, joins seed and
// returns what the join did.
func tryJoin(t *testing.T, addr string, key []byte, label, seed string) (int, error) {
	t.Helper()
	_, idKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n, err := gossip.Start(gossip.Config{
		Name: "old-key", BindAddr: addr, Key: key, Label: label,
		Meta:     gossip.Meta{ID: "8f7e6d5c-0000-4000-8000-0000000000aa", Role: "client", Region: "global", Identity: idKey.Public().(ed25519.PublicKey)},
		Identity: idKey, Handler: nopHandler{},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown()
	return n.Join([]string{seed})
}
