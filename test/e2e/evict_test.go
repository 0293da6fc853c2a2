package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/casvc"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/clusterstate"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/identity"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// TestEviction evicts a client-token node from a cluster running real
// Nomad: node evict on a server answers at once; the evicted agent stops
// its Nomad, leaves and exits with status 3, and does not start again; every
// other agent lists it as evicted; its Nomad node is ineligible and then
// purged; the CA refuses a request signed with its identity key; its
// certificates expire within a day; Nomad's leader is never lost. node evict
// refuses a server, a name no one has, and a run on a client.
func TestEviction(t *testing.T) {
	serverToken, clientToken, procs := runningCluster(t, "127.22.5", t.TempDir())
	s, _ := statusJSON(t, procs[0].root)
	plan := s.Plan
	var server *proc
	var otherServer string
	for _, p := range procs {
		switch {
		case !slices.Contains(plan.Servers, p.name):
		case server == nil:
			server = p
		default:
			otherServer = p.name
		}
	}
	victim, bystander := procs[4], procs[3]
	victimID := strings.TrimSpace(readFile(t, paths.New(victim.root).NodeIDFile()))
	victimKey, _, err := identity.Load(paths.New(victim.root).IdentityKeyFile(), nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := pollLeaderOf(t, server)

	// Refusals first: nothing changes.
	for _, tt := range []struct {
		name, root, node, why string
	}{
		{"on a client", bystander.root, victim.name, "runs on a Nomad server"},
		{"a server with no spare to take its seat", server.root, otherServer, "no live node holding the server token is left to take its seat"},
		{"itself", server.root, server.name, "the node this command runs on"},
		{"an unknown name", server.root, "nobody", `no node named "nobody"`},
	} {
		_, stderr, code := run(t, "node", "evict", "-root", tt.root, tt.node)
		if code != 1 || !strings.Contains(stderr, tt.why) {
			t.Errorf("node evict %s: exit %d, %q; want 1 and %q", tt.name, code, stderr, tt.why)
		}
	}
	if _, err := os.Stat(paths.New(server.root).ClusterStateFile()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused eviction left a cluster state: %v", err)
	}

	out, stderr, code := run(t, "node", "evict", "-root", server.root, victim.name)
	if code != 0 || !strings.Contains(out, "Evicted "+victim.name) {
		t.Fatalf("node evict %s: exit %d\n%s%s", victim.name, code, out, stderr)
	}
	t.Logf("node evict: %s", out)

	// The evicted agent stops and exits with status 3.
	select {
	case <-victim.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("the evicted agent still runs a minute after node evict\n%s", victim.log.String())
	}
	if got := victim.cmd.ProcessState.ExitCode(); got != 3 || !strings.Contains(victim.log.String(), "evicted") {
		t.Errorf("the evicted agent exited with %d; want 3 and a log that says why\n%s", got, victim.log.String())
	}
	// Every other agent holds the state and lists it as evicted.
	waitFor(t, 30*time.Second, "every agent to list the victim as evicted", func() bool {
		for _, p := range procs[:4] {
			s, _ := statusJSON(t, p.root)
			if s.Cluster == nil || s.Cluster.Version != 1 {
				return false
			}
			i := slices.IndexFunc(s.Members, func(m status.MemberStatus) bool { return m.Name == victim.name })
			if i < 0 || s.Members[i].Status != "evicted" {
				return false
			}
		}
		return true
	})
	// It does not start again with its identity.
	_, stderr, code = run(t, append([]string{"agent", "-root", victim.root, "-name", victim.name, "-metrics-addr", ""}, victim.args...)...)
	if code != 3 || !strings.Contains(stderr, "was evicted") {
		t.Errorf("restarting the evicted agent: exit %d, %q; want 3 and why", code, stderr)
	}
	// Evicting it again changes nothing.
	out, _, code = run(t, "node", "evict", "-root", server.root, victimID)
	if code != 0 || !strings.Contains(out, "evicted already (cluster state version 1)") {
		t.Errorf("evicting again: exit %d, %q", code, out)
	}

	// Its Nomad node is purged once Nomad sees it down.
	mgmt := managementToken(t, server.root)
	nc := nomadAPIAt(t, server.root, server.addr, mgmt)
	waitFor(t, 120*time.Second, "Nomad to purge the evicted node", func() bool {
		q, cancel := bounded(5 * time.Second)
		defer cancel()
		nodes, _, err := nc.Nodes().List(q)
		return err == nil && !slices.ContainsFunc(nodes, func(n *api.NodeListStub) bool { return n.Name == victim.name }) &&
			slices.ContainsFunc(nodes, func(n *api.NodeListStub) bool { return n.Name == bystander.name })
	})
	// The state is in Nomad's Variables.
	q, cancel := bounded(5 * time.Second)
	v, _, err := nc.Variables().Read(clusterstate.VarPath, q)
	cancel()
	if err != nil || !strings.Contains(v.Items["state"], victimID) {
		t.Errorf("Nomad Variable %s: %v, %v", clusterstate.VarPath, v, err)
	}
	// Nomad losing it (a deleted Variable, an older snapshot) loses no
	// eviction: the servers put back what the cluster holds.
	w, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err = nc.Variables().Delete(clusterstate.VarPath, (&api.WriteOptions{}).WithContext(w))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 150*time.Second, "the servers to put the cluster state back into Nomad (each reads it every minute)", func() bool {
		q, cancel := bounded(5 * time.Second)
		defer cancel()
		v, _, err := nc.Variables().Peek(clusterstate.VarPath, q)
		return err == nil && v != nil && strings.Contains(v.Items["state"], victimID) && strings.Contains(v.Items["state"], `"version":2`)
	})

	// Someone holding the evicted machine's key and token gets no
	// certificate.
	ct, err := certs.ParseClientToken(readFile(t, clientToken))
	if err != nil {
		t.Fatal(err)
	}
	_, err = requestClientCert(ct, "127.22.5.20", procs, plan, victimID, victim.name, victimKey)
	var se *casvc.StatusError
	if !errors.As(err, &se) || se.Code != 403 || !strings.Contains(se.Message, "evicted") {
		t.Errorf("a request signed with the evicted key: %v; want 403, evicted", err)
	}
	// Nor the agents' gossip key, from any server, with its admission or
	// its token: every server answers for the key on the CA port.
	for _, p := range procs {
		if !slices.Contains(plan.Servers, p.name) {
			continue
		}
		for _, adm := range [][]byte{readAdmission(t, victim.root), ct.Admission()} {
			_, err := requestGossipKeys(ct, "127.22.5.20", net.JoinHostPort(p.addr, "4651"), plan.CAFingerprint, victimID, victim.name, victimKey, adm)
			if !errors.As(err, &se) || se.Code != 403 || !strings.Contains(se.Message, "evicted") {
				t.Errorf("%s: a request for the gossip keys signed with the evicted key: %v; want 403, evicted", p.name, err)
			}
		}
	}
	// The certificates it holds expire within a day.
	for _, f := range []string{"client.pem"} {
		cert, err := certs.ParseCertPEM([]byte(readFile(t, paths.New(victim.root).NomadTLSDir()+"/"+f)))
		if err != nil {
			t.Fatal(err)
		}
		if left := time.Until(cert.NotAfter); left > 24*time.Hour+time.Minute {
			t.Errorf("the evicted node's %s is valid for %s more", f, left)
		}
	}

	polls := stop()
	if len(polls.leaders) != 1 || polls.leaders[""] > 0 || polls.n < 10 {
		t.Errorf("Nomad's leader during the eviction: %d polls, %v", polls.n, polls.leaders)
	}

	// A server is replaced at once once a server-token spare is there.
	spareRoot := filepath.Join(filepath.Dir(procs[0].root), "node6")
	spare := start(t, spareRoot, "node6", append([]string{"-bind", "127.22.5.6", "-join", procs[0].addr, "-token-file", serverToken, "-settle", "1s"},
		realNomadArgs(nomadBin(t), "")(0)...)...)
	spare.addr = "127.22.5.6"
	waitFor(t, 60*time.Second, "the spare to run", func() bool {
		s, _ := statusJSON(t, spare.root)
		return s.Phase.String() == "running"
	})
	evicted := procs[slices.IndexFunc(procs, func(p *proc) bool { return p.name == otherServer })]
	out, stderr, code = run(t, "node", "evict", "-root", server.root, otherServer)
	if code != 0 || !strings.Contains(out, "successor plan gives its seat") {
		t.Fatalf("node evict %s (a server): exit %d\n%s%s", otherServer, code, out, stderr)
	}
	rest := []*proc{server, spare, bystander}
	for _, p := range procs[:3] {
		if p != server && p != evicted {
			rest = append(rest, p)
		}
	}
	waitForOr(t, 120*time.Second, "a successor plan with the spare in the evicted server's seat, and Nomad's raft without it", func() bool {
		for _, p := range rest {
			s, _ := statusJSON(t, p.root)
			if s.Plan == nil || s.Plan.Epoch != 2 || !slices.Contains(s.Plan.Servers, "node6") || slices.Contains(s.Plan.Servers, otherServer) {
				return false
			}
		}
		s, _ := statusJSON(t, server.root)
		return s.Nomad != nil && s.Nomad.Leader != "" && len(s.Nomad.Peers) == 3 &&
			!slices.ContainsFunc(s.Nomad.Peers, func(peer string) bool { return strings.HasPrefix(peer, evicted.addr+":") })
	}, explainCluster(t, rest))
	select {
	case <-evicted.done:
		if got := evicted.cmd.ProcessState.ExitCode(); got != 3 {
			t.Errorf("the evicted server's agent exited with %d, want 3", got)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("the evicted server's agent still runs")
	}
}

// runningCluster starts three server-token and two client-token agents
// (the tokens' files in dir) running real Nomad on prefix.1-5, and waits
// until every one runs a healthy Nomad.
func runningCluster(t *testing.T, prefix, dir string) (serverToken, clientToken string, procs []*proc) {
	t.Helper()
	token := newToken(t)
	serverToken = filepath.Join(dir, "server-token")
	if err := os.WriteFile(serverToken, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	clientToken = clientTokenFile(t, dir, token)
	_, procs = clusterWith(t, token, prefix, 5, realNomadArgs(nomadBin(t), clientToken))
	waitForOr(t, 120*time.Second, "every agent to run a healthy Nomad", allRunning(t, procs), explainCluster(t, procs))
	return serverToken, clientToken, procs
}

// allRunning returns a condition for waitFor: every agent of procs reports
// the phase running.
func allRunning(t *testing.T, procs []*proc) func() bool {
	return func() bool {
		for _, p := range procs {
			if s, code := statusJSON(t, p.root); code != 0 || s.Phase.String() != "running" {
				return false
			}
		}
		return true
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// pollLeaderOf polls server's Nomad for its leader, as TestAdversary does.
func pollLeaderOf(t *testing.T, server *proc) func() leaderPolls {
	return target{procs: []*proc{server}}.pollLeader(t)
}

// readAdmission returns the admission the CA gave the node under root.
func readAdmission(t *testing.T, root string) []byte {
	t.Helper()
	b, err := os.ReadFile(paths.New(root).AdmissionFile())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// requestGossipKeys asks the endpoint at addr for the agents' gossip keys
// as the node id called name, from addr, signed by key, showing adm.
func requestGossipKeys(ct certs.ClientToken, from, addr, fingerprint, id, name string, key ed25519.PrivateKey, adm []byte) ([]byte, error) {
	r := &certs.SignRequest{NodeID: id, NodeName: name, Role: certs.RoleClient, CSR: certs.KeysRequestCSR, Admission: adm}
	if err := r.Seal(ct.CSRKey(), key, time.Now(), rand.Reader); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return casvc.RequestKeys(ctx, netip.MustParseAddr(from), addr, fingerprint, r)
}

// requestClientCert asks the plan's CA holder for a client certificate as
// the node id called name, from addr, signed by key.
func requestClientCert(ct certs.ClientToken, from string, procs []*proc, plan *status.PlanStatus, id, name string, key ed25519.PrivateKey) (casvc.Issued, error) {
	holder := slices.IndexFunc(procs, func(p *proc) bool { return p.name == plan.CAHolder })
	if holder < 0 {
		return casvc.Issued{}, fmt.Errorf("no process is the CA holder %s", plan.CAHolder)
	}
	csrKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return casvc.Issued{}, err
	}
	csr, err := certs.CreateCSR(csrKey, name)
	if err != nil {
		return casvc.Issued{}, err
	}
	r := &certs.SignRequest{NodeID: id, NodeName: name, Role: certs.RoleClient, CSR: csr, Admission: ct.Admission()}
	if err := r.Seal(ct.CSRKey(), key, time.Now(), rand.Reader); err != nil {
		return casvc.Issued{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	caAddr := net.JoinHostPort(procs[holder].addr, strconv.Itoa(4651))
	return casvc.RequestIssued(ctx, netip.MustParseAddr(from), caAddr, plan.CAFingerprint, r)
}
