package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/memberlist"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/acl"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agree"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/caholder"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/casvc"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/clusterstate"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// nopHandler is a gossip handler that ignores everything.
type nopHandler struct{}

func (nopHandler) HandleMessage(string, []byte)  {}
func (nopHandler) MergeRemoteState([]byte, bool) {}
func (nopHandler) MembersChanged()               {}
func (nopHandler) LocalState(bool) []byte        { return nil }

// target is the cluster the adversary suite attacks: three server-token
// agents (the server candidates) and two client-token agents on
// <prefix>.1-5, running real Nomad with mTLS and ACLs, settled.
type target struct {
	prefix      string
	procs       []*proc
	before      string                       // the settled plan (planKey)
	snaps       map[string]map[string]string // each agent's plan and certificates
	plan        plan.Plan                    // the committed plan
	clientToken string                       // the client token's file
	client      certs.ClientToken            // the client token
	heard       *heard                       // everything the rogues received
}

func newTarget(t *testing.T, prefix string) target {
	t.Helper()
	bin := nomadBin(t)
	token := newToken(t)
	tg := target{prefix: prefix, clientToken: clientTokenFile(t, t.TempDir(), token), snaps: map[string]map[string]string{}, heard: &heard{}}
	_, tg.procs = clusterWith(t, token, prefix, 5, realNomadArgs(bin, tg.clientToken))
	waitForOr(t, 120*time.Second, "every agent to run a healthy Nomad", func() bool {
		for _, p := range tg.procs {
			if s, code := statusJSON(t, p.root); code != 0 || s.Phase.String() != "running" {
				return false
			}
		}
		return true
	}, explainCluster(t, tg.procs))
	tg.before = waitSettled(t, tg.procs, 60*time.Second, "the cluster to settle")
	for _, p := range tg.procs {
		tg.snaps[p.name] = nodeFiles(t, p)
	}
	var committed struct{ Plan plan.Plan }
	if b, err := os.ReadFile(paths.New(tg.procs[0].root).PlanFile()); err != nil || json.Unmarshal(b, &committed) != nil {
		t.Fatalf("reading the plan: %v", err)
	}
	tg.plan = committed.Plan
	b, err := os.ReadFile(tg.clientToken)
	if err != nil {
		t.Fatal(err)
	}
	if tg.client, err = certs.ParseClientToken(string(b)); err != nil {
		t.Fatal(err)
	}
	return tg
}

// unchanged checks that every agent reports the plan it had and holds the
// same plan and certificate files.
func (tg target) unchanged(t *testing.T, what string) {
	t.Helper()
	if after := waitSettled(t, tg.procs, 30*time.Second, "the cluster after "+what); after != tg.before {
		t.Errorf("plan %s, was %s", after, tg.before)
	}
	for _, p := range tg.procs {
		for f, b := range nodeFiles(t, p) {
			if tg.snaps[p.name][f] != b {
				t.Errorf("%s changed on %s", filepath.Base(f), p.name)
			}
		}
	}
}

// joinRogue joins a gossip node of the client token's holder, called name,
// announcing itself as a would-be server with its own identity key and
// signing its messages, to the target's pool from addr, and waits until
// every agent sees it alive. What it receives is kept in tg.heard. It
// leaves when the test ends.
func (tg target) joinRogue(t *testing.T, name, addr, id string, key ed25519.PrivateKey, h gossip.Handler) *gossip.Node {
	t.Helper()
	var pub ed25519.PublicKey
	if key != nil {
		pub = key.Public().(ed25519.PublicKey)
	}
	return tg.join(t, name, addr, gossip.Meta{ID: id, Role: "server", Region: "global", Expect: 3, Identity: pub}, key, h)
}

// join joins a gossip node called name with meta, signing with key unless
// it is nil, to the target's pool from addr through every agent, and waits
// until every agent sees it alive. What it receives is kept in tg.heard. It leaves when the
// test ends.
func (tg target) join(t *testing.T, name, addr string, meta gossip.Meta, key ed25519.PrivateKey, h gossip.Handler) *gossip.Node {
	t.Helper()
	n, err := gossip.Start(gossip.Config{Name: name, BindAddr: addr, Key: tg.client.GossipKey(), Label: tg.client.GossipLabel(),
		Meta: meta, Identity: key, Handler: h, Tuning: tg.heard.tune})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Leave(time.Second); n.Shutdown() })
	// Join every agent (a push/pull with each), so that each knows the
	// rogue at once and not after gossip luck: on a loaded machine
	// memberlist's alive broadcasts may all be lost, and an agent then
	// learns of the rogue only at its next push/pull, 30 s later.
	var seeds []string
	for _, p := range tg.procs {
		seeds = append(seeds, net.JoinHostPort(p.addr, strconv.Itoa(gossip.DefaultPort)))
	}
	if joined, err := n.Join(seeds); joined == 0 {
		t.Fatalf("%s could not join: %v", name, err)
	}
	waitFor(t, 20*time.Second, "every agent to see "+name, func() bool {
		for _, p := range tg.procs {
			s, _ := statusJSON(t, p.root)
			if !slices.ContainsFunc(s.Members, func(m status.MemberStatus) bool { return m.Name == name && m.Status == "alive" }) {
				return false
			}
		}
		return true
	})
	return n
}

// TestAdversary attacks a cluster of three server-token and two
// client-token agents running real Nomad with mTLS and ACLs the way a
// holder of a client token would: from its own processes, speaking the wire
// protocol with the project's own packages. Each subtest is one line of
// attack, and is refused. Throughout, Nomad's leader is the same at every
// poll; afterwards nothing the rogues received holds a secret of the
// servers, and neither do the client-token agents' roots.
func TestAdversary(t *testing.T) {
	c := newTarget(t, "127.22.2")
	stop := c.pollLeader(t)
	for _, tt := range []struct {
		name string
		run  func(*testing.T, target)
	}{
		{"Certificates", adversaryCertificates},
		{"Plans", adversaryPlans},
		{"Escrow", adversaryEscrow},
		{"SpoofedSender", adversarySpoofedSender},
		{"Replay", adversaryReplay},
		{"ClusterState", adversaryClusterState},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, c) })
	}
	polls := stop()
	t.Logf("Nomad leader polls every 250ms: %d, leaders seen %v, %d unanswered within 2s", polls.n, slices.Collect(maps.Keys(polls.leaders)), polls.unanswered)
	if len(polls.leaders) != 1 || polls.leaders[""] > 0 {
		t.Errorf("Nomad's leader changed or was lost during the attacks: %v", polls.leaders)
	}
	if polls.n < 10 || polls.unanswered > polls.n/10 {
		t.Errorf("%d of %d leader polls unanswered", polls.unanswered, polls.n)
	}
	secrets := serverSecrets(t, c.procs[:3])
	if n := c.heard.count(); n == 0 {
		t.Fatal("the rogues received nothing: the check below would prove nothing")
	}
	for what, secret := range secrets {
		if c.heard.holds(secretForms(secret)) {
			t.Errorf("a rogue received %s", what)
		}
	}
	checkClientTokenNodes(t, c.procs)
}

// leaderPolls is what pollLeader saw.
type leaderPolls struct {
	n, unanswered int
	leaders       map[string]int // leader address -> polls that named it
}

// pollLeader asks the first server's Nomad for its leader every 250 ms
// (over mTLS, each request bounded by 2 s) until the returned function is
// called, which returns what it saw.
func (tg target) pollLeader(t *testing.T) func() leaderPolls {
	t.Helper()
	client := nomadHTTPS(t, tg.procs[0].root, 2*time.Second)
	url := "https://" + tg.procs[0].addr + ":4646/v1/status/leader"
	polls := leaderPolls{leaders: map[string]int{}}
	stop := pollEvery(t, func() {
		polls.n++
		resp, err := client.Get(url)
		if err != nil {
			polls.unanswered++
			return
		}
		var leader string
		err = json.NewDecoder(resp.Body).Decode(&leader)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			polls.unanswered++
			return
		}
		polls.leaders[leader]++
	})
	return func() leaderPolls {
		stop()
		return polls
	}
}

// nomadHTTPS returns an HTTP client of Nomad's API with the CLI
// certificate of the server under root, each request bounded by timeout.
func nomadHTTPS(t *testing.T, root string, timeout time.Duration) *http.Client {
	t.Helper()
	tlsDir := filepath.Join(root, "etc", "nomad.d", "tls")
	caPEM, err := os.ReadFile(filepath.Join(tlsDir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(filepath.Join(tlsDir, "cli.pem"), filepath.Join(tlsDir, "cli-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
}

// pollEvery calls poll every 250 ms on a goroutine of its own until the
// returned function is called, which waits for the last call to end; the
// test's cleanup calls it too.
func pollEvery(t *testing.T, poll func()) func() {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			poll()
		}
	}()
	var once sync.Once
	stop := func() { once.Do(func() { close(done); <-stopped }) }
	t.Cleanup(stop)
	return stop
}

// adversaryCertificates attacks the target's CA the way a holder of a
// client token would: from its own process, with the project's own gossip
// and request code. It joins the gossip pool, once in its own name and once
// as a copy of a server's announcement, and asks the CA for certificates it
// must not get. Each is refused; it gets a client certificate in its own
// name only; and every agent's plan and certificates are byte-identical
// afterwards.
func adversaryCertificates(t *testing.T, c target) {
	prefix := c.prefix
	procs, p := c.procs, c.plan
	victim := p.Servers[0]
	if victim.ID == p.CAHolder {
		victim = p.Servers[1]
	}
	var holder plan.Server
	for _, s := range p.Servers {
		if s.ID == p.CAHolder {
			holder = s
		}
	}
	caAddr := net.JoinHostPort(holder.Address, strconv.Itoa(p.CAPort))

	ct := c.client
	_, rogueKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rogueID := uuid.NewString()
	rogueNode := c.join(t, "rogue", prefix+".20", gossip.Meta{ID: rogueID, Role: "server", Region: "global", Expect: 3,
		Identity: rogueKey.Public().(ed25519.PublicKey)}, nil, nopHandler{})

	// A copy of the victim's announcement (its ID, identity key and
	// endorsement) under another name.
	var victimMeta gossip.Meta
	waitFor(t, 20*time.Second, "the victim's announcement", func() bool {
		for _, m := range rogueNode.Members() {
			if m.Name == victim.Name {
				victimMeta = m.Meta
				return len(m.Meta.Endorsement) > 0
			}
		}
		return false
	})
	c.join(t, "copycat", prefix+".21", victimMeta, nil, nopHandler{})
	// Let the CA holder see both.
	waitFor(t, 20*time.Second, "the CA holder to see the rogue and the copycat", func() bool {
		s, _ := statusJSON(t, procs[slices.IndexFunc(procs, func(p *proc) bool { return p.name == holder.Name })].root)
		seen := 0
		for _, m := range s.Members {
			if (m.Name == "rogue" || m.Name == "copycat") && m.Status == "alive" {
				seen++
			}
		}
		return seen == 2
	})

	ask := func(from, id, name string, role certs.Role, signer ed25519.PrivateKey, edit func(*certs.SignRequest)) (casvc.Issued, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		csr, err := certs.CreateCSR(key, name)
		if err != nil {
			t.Fatal(err)
		}
		r := &certs.SignRequest{NodeID: id, NodeName: name, Role: role, CSR: csr, Admission: ct.Admission()}
		if err := r.Seal(ct.CSRKey(), signer, time.Now(), rand.Reader); err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(r)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return casvc.RequestIssued(ctx, netip.MustParseAddr(from), caAddr, p.CAFingerprint, r)
	}
	rogue := prefix + ".20"
	var replay *certs.SignRequest
	attempts := []struct {
		name string
		try  func() (casvc.Issued, error)
		code int
		why  string
	}{
		{"a server certificate in a live server's name", func() (casvc.Issued, error) {
			return ask(rogue, victim.ID, victim.Name, certs.RoleServer, rogueKey, nil)
		}, 403, "announces another identity key"},
		{"a CLI certificate in a live server's name", func() (casvc.Issued, error) {
			return ask(rogue, victim.ID, victim.Name, certs.RoleCLI, rogueKey, nil)
		}, 403, "announces another identity key"},
		{"a server certificate in its own name", func() (casvc.Issued, error) {
			return ask(rogue, rogueID, "rogue", certs.RoleServer, rogueKey, nil)
		}, 403, "is a client in plan epoch 1"},
		{"a client certificate in another client's name", func() (casvc.Issued, error) {
			id, err := os.ReadFile(paths.New(procs[3].root).NodeIDFile())
			if err != nil {
				t.Fatal(err)
			}
			return ask(rogue, strings.TrimSpace(string(id)), procs[3].name, certs.RoleClient, rogueKey, nil)
		}, 403, "announces another identity key"},
		{"a server certificate as the copy of a server, signed with its own key", func() (casvc.Issued, error) {
			return ask(prefix+".21", victim.ID, "copycat", certs.RoleServer, rogueKey, nil)
		}, 403, "announces another identity key"},
		{"a server certificate as the copy of a server, naming the server's key", func() (casvc.Issued, error) {
			return ask(prefix+".21", victim.ID, "copycat", certs.RoleServer, rogueKey, func(r *certs.SignRequest) {
				r.Identity = victimMeta.Identity
				r.MAC = requestMAC(ct.CSRKey(), r) // the client token gives the request key
			})
		}, 401, "not signed by the identity key it names"},
		{"its own client certificate from another address", func() (casvc.Issued, error) {
			return ask(prefix+".21", rogueID, "rogue", certs.RoleClient, rogueKey, nil)
		}, 403, "not from node rogue's address"},
		{"its own client certificate with a forged admission", func() (casvc.Issued, error) {
			return ask(rogue, rogueID, "rogue", certs.RoleClient, rogueKey, func(r *certs.SignRequest) {
				r.Admission = make([]byte, ed25519.SignatureSize)
				r.MAC, r.Signature = nil, nil
				if err := r.Seal(ct.CSRKey(), rogueKey, time.Now(), rand.Reader); err != nil {
					t.Fatal(err)
				}
			})
		}, 403, "neither a valid client token nor an earlier admission"},
		{"a replayed request", func() (casvc.Issued, error) {
			iss, err := ask(rogue, rogueID, "rogue", certs.RoleClient, rogueKey, func(r *certs.SignRequest) { replay = r })
			if err != nil {
				t.Fatalf("the rogue's own client certificate was refused: %v", err)
			}
			_ = iss
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return casvc.RequestIssued(ctx, netip.MustParseAddr(rogue), caAddr, p.CAFingerprint, replay)
		}, 401, "replayed"},
	}
	for _, a := range attempts {
		t.Run(a.name, func(t *testing.T) {
			iss, err := a.try()
			var se *casvc.StatusError
			if !errors.As(err, &se) || se.Code != a.code || !strings.Contains(se.Message, a.why) {
				t.Fatalf("answer %v (certificate %d bytes); want %d with %q", err, len(iss.Cert), a.code, a.why)
			}
		})
	}

	// What it may have: a client certificate in its own name, with only a
	// client's names.
	iss, err := ask(rogue, rogueID, "rogue", certs.RoleClient, rogueKey, nil)
	if err != nil {
		t.Fatalf("the rogue's own client certificate: %v", err)
	}
	cert, err := certs.ParseCertPEM(iss.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cert.DNSNames, ","); got != "client.global.nomad,localhost" {
		t.Errorf("the rogue's certificate names %s; want a client's names only", got)
	}

	c.unchanged(t, "the attack")
}

// requestMAC is a request's MAC as the wire format documents it
// (certs.SignRequest.Seal), made by whoever holds the request key.
func requestMAC(key []byte, r *certs.SignRequest) []byte {
	var in []byte
	for _, f := range [][]byte{[]byte("nomad-bootstrapd sign request v2"), []byte(r.NodeID), []byte(r.NodeName), []byte(r.Role), r.CSR,
		binary.BigEndian.AppendUint64(nil, uint64(r.Timestamp)), r.Nonce, r.Identity, r.Admission} {
		in = binary.BigEndian.AppendUint32(in, uint32(len(f)))
		in = append(in, f...)
	}
	m := hmac.New(sha256.New, key)
	m.Write(in)
	return m.Sum(nil)
}

// rssMB returns the resident memory of process pid in MiB.
func rssMB(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestAdversaryResources floods the CA holder as strangers would, without
// any token: 200 concurrent gossip streams that pass the label check and
// announce 20 MiB each (memberlist's own limit), and 5,000 idle connections
// to the CA endpoint, from many addresses. The agent stays under 64 MiB
// resident throughout, and a machine that joins meanwhile gets its
// certificates and configuration.
func TestAdversaryResources(t *testing.T) {
	const prefix = "127.22.3"
	token, procs := clusterAt(t, prefix, 3, func(int) []string { return nil })
	before := waitSettled(t, procs, 60*time.Second, "the cluster to settle")
	var committed struct{ Plan plan.Plan }
	if b, err := os.ReadFile(paths.New(procs[0].root).PlanFile()); err != nil || json.Unmarshal(b, &committed) != nil {
		t.Fatalf("reading the plan: %v", err)
	}
	p := committed.Plan
	var target *proc
	for _, pr := range procs {
		if s, _ := statusJSON(t, pr.root); s.Node.ID == p.CAHolder {
			target = pr
		}
	}
	if target == nil {
		t.Fatal("no CA holder among the agents")
	}
	tok, err := certs.ParseToken(token)
	if err != nil {
		t.Fatal(err)
	}
	pid := target.cmd.Process.Pid
	baseline := rssMB(t, pid)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var conns sync.WaitGroup
	dial := func(from, addr string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
		return d.DialContext(ctx, "tcp", addr)
	}
	// Streams that memberlist reads past the label, each sending junk
	// until the agent closes it or the attack ends.
	header := []byte{244, byte(len(tok.GossipLabel()))}
	header = append(header, tok.GossipLabel()...)
	header = append(header, 10)
	header = binary.BigEndian.AppendUint32(header, 20<<20)
	gossipAddr := net.JoinHostPort(target.addr, strconv.Itoa(gossip.DefaultPort))
	var streamsSent atomic.Int64
	for i := range 200 {
		conns.Go(func() {
			c, err := dial(fmt.Sprintf("%s.%d", prefix, 100+i%20), gossipAddr)
			if err != nil {
				return
			}
			defer c.Close()
			context.AfterFunc(ctx, func() { c.Close() })
			if _, err := c.Write(header); err != nil {
				return
			}
			junk := make([]byte, 32<<10)
			for ctx.Err() == nil {
				c.SetWriteDeadline(time.Now().Add(time.Second))
				n, err := c.Write(junk)
				streamsSent.Add(int64(n))
				if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					return
				}
			}
		})
	}
	// Idle connections to the CA endpoint, 100 from each of 50 addresses.
	caAddr := net.JoinHostPort(target.addr, strconv.Itoa(p.CAPort))
	var idle []net.Conn
	var idleMu sync.Mutex
	var dialErrs atomic.Int64
	for a := range 50 {
		conns.Go(func() {
			for range 100 {
				c, err := dial(fmt.Sprintf("%s.%d", prefix, 150+a), caAddr)
				if err != nil {
					dialErrs.Add(1)
					if errors.Is(err, syscall.EMFILE) {
						return
					}
					continue
				}
				idleMu.Lock()
				idle = append(idle, c)
				idleMu.Unlock()
			}
		})
	}
	defer func() {
		idleMu.Lock()
		for _, c := range idle {
			c.Close()
		}
		idleMu.Unlock()
	}()

	// A machine joins during the attack.
	var peak float64
	sample := func() {
		if m := rssMB(t, pid); m > peak {
			peak = m
		}
	}
	time.Sleep(2 * time.Second)
	sample()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	late := start(t, filepath.Join(dir, "node4"), "node4", "-bind", prefix+".4", "-join", procs[0].addr, "-token-file", tokenFile,
		"-settle", "1s", "-supervise", "none", "-metrics-addr", "")
	late.addr = prefix + ".4"
	waitForOr(t, 40*time.Second, "the machine that joined during the attack to get its certificates and configuration", func() bool {
		sample()
		s, _ := statusJSON(t, late.root)
		return s.Phase.String() == "configured"
	}, explainCluster(t, append(procs, late)))
	for range 10 {
		sample()
		time.Sleep(300 * time.Millisecond)
	}
	idleMu.Lock()
	held := len(idle)
	idleMu.Unlock()
	cancel()
	conns.Wait()
	t.Logf("CA holder resident: %.1f MiB before, %.1f MiB at most under attack; %d idle CA connections opened (%d failed), %d MiB sent on gossip streams",
		baseline, peak, held, dialErrs.Load(), streamsSent.Load()>>20)
	if held < 4000 {
		t.Errorf("only %d idle connections could be opened; the test did not load the agent", held)
	}
	if peak >= 64 {
		t.Errorf("the CA holder grew to %.1f MiB resident under attack, want under 64", peak)
	}
	if after := waitSettled(t, procs, 30*time.Second, "the cluster after the attack"); after != before {
		t.Errorf("plan %s, was %s", after, before)
	}
}

// stateHandler is a gossip handler whose push/pull state is a given plan.
type stateHandler struct {
	nopHandler
	state []byte
}

func (h stateHandler) LocalState(bool) []byte { return h.state }

// adversaryPlans has a holder of a client token, joined to the gossip
// pool in its own name and signing its messages, push forged plans on the
// target: a successor
// that gives it a live server's seat, the same signed by its own key, and a
// first plan of its own making, by commit messages to each agent, by
// broadcast and by its push/pull state. No agent adopts any, a machine that
// joins through it alone adopts the cluster's plan, and every agent's plan
// and certificates are byte-identical afterwards.
func adversaryPlans(t *testing.T, c target) {
	const name = "rogue-plans"
	addr := c.prefix + ".22"
	procs, real, clientToken := c.procs, c.plan, c.clientToken
	_, rogueKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	roguePub := rogueKey.Public().(ed25519.PublicKey)
	rogueID := uuid.NewString()
	rogueSeat := plan.Server{ID: rogueID, Name: name, Address: addr, Key: base64.StdEncoding.EncodeToString(roguePub),
		Endorsement: real.Servers[0].Endorsement}

	// A successor of the real plan with the rogue in the seat of a server
	// that is not the CA holder, keeping the real signatures.
	seat := 0
	if real.Servers[0].ID == real.CAHolder {
		seat = 1
	}
	succ := real.Clone()
	succ.Epoch, succ.Genesis = 2, real.Hash()
	succ.Servers[seat] = rogueSeat
	// The same, signed by the rogue for its own seat.
	selfSigned := succ.Clone()
	selfSigned.Sign(rogueID, ed25519.Sign(rogueKey, plan.AcceptanceMessage(selfSigned.Hash())))
	// A first plan of its own: itself and two servers of the real plan,
	// signed by itself, with the CA fingerprint it would hold.
	first := real.Clone()
	first.Servers = []plan.Server{rogueSeat, real.Servers[0], real.Servers[1]}
	first.CAHolder = rogueID
	first.Signatures = nil
	first.Sign(rogueID, ed25519.Sign(rogueKey, plan.AcceptanceMessage(first.Hash())))
	forged := []plan.Plan{succ, selfSigned, first}

	n := c.joinRogue(t, name, addr, rogueID, rogueKey, stateHandler{state: agree.EncodeState(&selfSigned)})
	for _, f := range forged {
		msg := agree.Message{Type: agree.MsgCommit, Plan: &f}.Encode()
		for _, p := range procs {
			if err := n.SendTo(p.name, msg); err != nil {
				t.Errorf("sending to %s: %v", p.name, err)
			}
		}
		if len(msg) <= n.MaxBroadcastPayload() {
			n.Broadcast(msg)
		}
	}
	// A machine without a plan joins through the rogue alone, whose
	// push/pull state holds a forged plan: it refuses that plan and asks
	// the members for theirs.
	dir := t.TempDir()
	lateStart := time.Now()
	late := start(t, filepath.Join(dir, "node6"), "node6", "-bind", c.prefix+".6", "-join", net.JoinHostPort(addr, strconv.Itoa(n.Port())), "-token-file", clientToken,
		"-settle", "1s", "-supervise", "none", "-metrics-addr", "")
	late.addr = c.prefix + ".6"
	waitForOr(t, 30*time.Second, "the late machine to adopt the cluster's plan", func() bool {
		s, _ := statusJSON(t, late.root)
		return planKey(s.Plan) == c.before
	}, explainCluster(t, append(procs, late)))
	t.Logf("the late machine adopted the cluster's plan after %s", time.Since(lateStart).Round(time.Second))
	// Let push/pull syncs with the rogue happen.
	time.Sleep(3 * time.Second)

	for _, p := range procs {
		if !strings.Contains(p.log.String(), "ignoring the plan of epoch") {
			t.Errorf("%s never said it ignored a forged plan: the forgeries did not reach it", p.name)
		}
	}
	c.unchanged(t, "the forgeries")
}

// recorder is a gossip handler that keeps the agreement messages it gets.
type recorder struct {
	nopHandler
	mu   sync.Mutex
	msgs []agree.Message
}

func (r *recorder) HandleMessage(_ string, b []byte) {
	if m, err := agree.DecodeMessage(b); err == nil {
		r.mu.Lock()
		r.msgs = append(r.msgs, m)
		r.mu.Unlock()
	}
}

func (r *recorder) got(typ string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(slices.DeleteFunc(slices.Clone(r.msgs), func(m agree.Message) bool { return m.Type != typ }))
}

// escrowOf reads the escrow file of p's agent.
func escrowOf(p *proc) ([]byte, error) {
	return os.ReadFile(filepath.Join(paths.New(p.root).CADir(), caholder.EscrowFile))
}

// adversaryEscrow has a holder of a client token, joined to the gossip
// pool in its own name and signing its messages, go after the CA key and
// the management token of the target: it asks the CA holder for the escrow as a server
// would, and sends every agent an escrow of a CA of its own with a
// management token of its own, sealed to each server's identity key. It
// receives no escrow; every server keeps, byte for byte, the escrow the CA
// holder sealed to it, and the CA holder and the client-token nodes keep
// none; every agent's plan and certificates are byte-identical afterwards.
func adversaryEscrow(t *testing.T, c target) {
	hash := c.plan.Hash()
	escrows := map[string][]byte{}
	waitFor(t, 30*time.Second, "every other server to hold its escrow", func() bool {
		for _, p := range c.procs {
			if p.name == c.plan.CAHolderName() || !slices.ContainsFunc(c.plan.Servers, func(s plan.Server) bool { return s.Name == p.name }) {
				continue
			}
			b, err := escrowOf(p)
			if err != nil {
				return false
			}
			escrows[p.name] = b
		}
		return true
	})

	_, rogueKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	n := c.joinRogue(t, "rogue-escrow", c.prefix+".23", uuid.NewString(), rogueKey, rec)

	for i := range 3 {
		if err := n.SendTo(c.plan.CAHolderName(), agree.Message{Type: agree.MsgWantCA, ID: uint64(i + 1), Hash: hash}.Encode()); err != nil {
			t.Errorf("asking the CA holder: %v", err)
		}
	}
	rogueCA, err := certs.NewCA(rand.Reader, c.plan.Region, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range c.plan.Servers {
		key, ok := s.PublicKey()
		if !ok {
			t.Fatalf("the plan records no identity key for %s", s.Name)
		}
		sealed, err := caholder.Seal(key, rogueCA, acl.NewManagementSecret())
		if err != nil {
			t.Fatal(err)
		}
		if err := n.SendTo(s.Name, agree.Message{Type: agree.MsgEscrow, Sealed: sealed, Hash: hash}.Encode()); err != nil {
			t.Errorf("sending to %s: %v", s.Name, err)
		}
	}
	waitFor(t, 20*time.Second, "every server to refuse the planted escrow", func() bool {
		for _, p := range c.procs[:3] {
			if !logHasLine(p, "ignoring an escrowed CA key", "rogue-escrow") {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * time.Second) // for an answer to the requests to arrive
	if got := rec.got(agree.MsgEscrow); got != 0 {
		t.Errorf("the rogue received %d escrows", got)
	}
	for _, p := range c.procs {
		b, err := escrowOf(p)
		if want, ok := escrows[p.name]; ok {
			if !bytes.Equal(b, want) {
				t.Errorf("the escrow on %s changed (%v)", p.name, err)
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s holds an escrow file (%v); want none", p.name, err)
		}
	}
	c.unchanged(t, "the escrow attack")
}

// heard keeps, in wire form, every user message and push/pull state that
// the rogues' memberlists receive.
type heard struct {
	mu  sync.Mutex
	raw [][]byte
}

// tune makes a memberlist configuration's delegate keep what it receives
// in h (gossip.Config.Tuning).
func (h *heard) tune(mc *memberlist.Config) { mc.Delegate = capture{Delegate: mc.Delegate, h: h} }

func (h *heard) add(b []byte) {
	h.mu.Lock()
	h.raw = append(h.raw, bytes.Clone(b))
	h.mu.Unlock()
}

func (h *heard) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.raw)
}

// holds reports whether anything received contains one of forms.
func (h *heard) holds(forms [][]byte) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, b := range h.raw {
		for _, f := range forms {
			if bytes.Contains(b, f) {
				return true
			}
		}
	}
	return false
}

// directFrom returns the signed direct messages received from the named
// sender: version 3, kind 1, then the sender's name (gossip's envelope).
func (h *heard) directFrom(name string) [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	head := append([]byte{3, 1, byte(len(name))}, name...)
	var out [][]byte
	for _, b := range h.raw {
		if bytes.HasPrefix(b, head) {
			out = append(out, b)
		}
	}
	return out
}

// capture is a memberlist delegate that keeps a copy of what it receives
// before passing it on.
type capture struct {
	memberlist.Delegate
	h *heard
}

func (c capture) NotifyMsg(b []byte) {
	c.h.add(b)
	c.Delegate.NotifyMsg(b)
}

func (c capture) MergeRemoteState(b []byte, join bool) {
	c.h.add(b)
	c.Delegate.MergeRemoteState(b, join)
}

// adversaryReplay has a holder of a client token, joined to the gossip
// pool in its own name, record the signed answers that the servers send it
// and send them on, verbatim, to every agent: each agent drops them as
// addressed to another node, logs it, and keeps its plan and certificates.
func adversaryReplay(t *testing.T, c target) {
	_, rogueKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n := c.joinRogue(t, "rogue-replay", c.prefix+".24", uuid.NewString(), rogueKey, nopHandler{})
	servers := c.procs[:3]
	for i, p := range servers {
		if err := n.SendTo(p.name, agree.Message{Type: agree.MsgFetch, ID: uint64(i + 1)}.Encode()); err != nil {
			t.Fatalf("asking %s for its plan: %v", p.name, err)
		}
	}
	var recorded [][]byte
	waitFor(t, 20*time.Second, "the servers' answers to the rogue", func() bool {
		recorded = recorded[:0]
		for _, p := range servers {
			got := c.heard.directFrom(p.name)
			if len(got) == 0 {
				return false
			}
			recorded = append(recorded, got...)
		}
		return true
	})

	replayer := rawMemberlist(t, "replayer", c.prefix+".25", c.client.GossipKey(), c.client.GossipLabel(), junkMeta{})
	for _, p := range c.procs {
		to := memberlist.Address{Addr: net.JoinHostPort(p.addr, strconv.Itoa(gossip.DefaultPort)), Name: p.name}
		for _, b := range recorded {
			if err := replayer.SendToAddress(to, b); err != nil {
				t.Errorf("replaying to %s: %v", p.name, err)
			}
		}
	}
	waitFor(t, 20*time.Second, "every agent to drop the replayed answers", func() bool {
		for _, p := range c.procs {
			if !strings.Contains(p.log.String(), "it is addressed to another node") {
				return false
			}
		}
		return true
	})
	c.unchanged(t, "the replays")
}

// logHasLine reports whether a line of p's log holds every one of parts.
func logHasLine(p *proc, parts ...string) bool {
	for line := range strings.Lines(p.log.String()) {
		if !slices.ContainsFunc(parts, func(s string) bool { return !strings.Contains(line, s) }) {
			return true
		}
	}
	return false
}

// wireEnvelope returns a signed direct gossip message in the wire form
// internal/gossip documents (version 3): kind 1, the sender's and the
// recipient's names, the send time, the payload and a signature by key.
func wireEnvelope(from, to string, payload []byte, key ed25519.PrivateKey) []byte {
	b := []byte{3, 1}
	b = binary.AppendUvarint(b, uint64(len(from)))
	b = append(b, from...)
	b = binary.AppendUvarint(b, uint64(len(to)))
	b = append(b, to...)
	b = binary.BigEndian.AppendUint64(b, uint64(time.Now().UnixMilli()))
	b = append(b, payload...)
	return append(b, ed25519.Sign(key, b)...)
}

// adversarySpoofedSender has a holder of a client token, a member in its
// own name, send messages in the CA holder's name, signed with its own key:
// to every agent an escrow of a CA of its own sealed to that agent's
// identity key, and a commit of a plan with itself in a server's seat.
// Every agent drops them as not signed by their sender, says so, and keeps
// its escrow, plan and certificates.
func adversarySpoofedSender(t *testing.T, c target) {
	_, rogueKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rogueID := uuid.NewString()
	c.joinRogue(t, "rogue-spoof", c.prefix+".26", rogueID, rogueKey, nopHandler{})
	holder := c.plan.CAHolderName()
	before := map[string]string{}
	for _, p := range c.procs {
		b, _ := escrowOf(p)
		before[p.name] = string(b)
	}
	rogueCA, err := certs.NewCA(rand.Reader, c.plan.Region, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	forged := c.plan.Clone()
	forged.Epoch, forged.Genesis = 2, c.plan.Hash()
	seat := slices.IndexFunc(forged.Servers, func(s plan.Server) bool { return s.Name != holder })
	forged.Servers[seat] = plan.Server{ID: rogueID, Name: "rogue-spoof", Address: c.prefix + ".26",
		Key: base64.StdEncoding.EncodeToString(rogueKey.Public().(ed25519.PublicKey))}
	replayer := rawMemberlist(t, "spoofer", c.prefix+".27", c.client.GossipKey(), c.client.GossipLabel(), junkMeta{})
	for _, p := range c.procs {
		if p.name == holder {
			continue
		}
		var payloads [][]byte
		i := slices.IndexFunc(c.plan.Servers, func(s plan.Server) bool { return s.Name == p.name })
		if i >= 0 {
			key, _ := c.plan.Servers[i].PublicKey()
			sealed, err := caholder.Seal(key, rogueCA, acl.NewManagementSecret())
			if err != nil {
				t.Fatal(err)
			}
			payloads = append(payloads, agree.Message{Type: agree.MsgEscrow, Sealed: sealed, Hash: c.plan.Hash()}.Encode())
		}
		payloads = append(payloads, agree.Message{Type: agree.MsgCommit, Plan: &forged}.Encode())
		to := memberlist.Address{Addr: net.JoinHostPort(p.addr, strconv.Itoa(gossip.DefaultPort)), Name: p.name}
		for _, pl := range payloads {
			if err := replayer.SendToAddress(to, wireEnvelope(holder, p.name, pl, rogueKey)); err != nil {
				t.Errorf("sending to %s: %v", p.name, err)
			}
		}
	}
	waitFor(t, 20*time.Second, "every agent to drop the messages in the CA holder's name", func() bool {
		for _, p := range c.procs {
			if p.name != holder && !logHasLine(p, "its signature is not by its sender's identity key", holder) {
				return false
			}
		}
		return true
	})
	for _, p := range c.procs {
		if got, _ := escrowOf(p); string(got) != before[p.name] {
			t.Errorf("the escrow on %s changed", p.name)
		}
	}
	c.unchanged(t, "the spoofed messages")
}

// adversaryClusterState has a holder of a client token, a member in its
// own name, push cluster states that evict a live server and raise the
// client token generation: signed by its own key with a made-up
// endorsement, the same with the endorsement of a real server copied, and
// a real server's endorsement and name with the rogue's key. It sends them
// as state messages to every agent and offers them in push/pull. No agent
// takes one ("ignoring a cluster state" in every log), none writes a
// cluster state, and every agent's plan and certificates are unchanged.
func adversaryClusterState(t *testing.T, c target) {
	_, rogueKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rogueID := uuid.NewString()
	victim := c.plan.Servers[0]
	st, _, err := clusterstate.State{Cluster: c.client.ClusterIDString()}.Evict(clusterstate.Eviction{
		ID: victim.ID, Name: victim.Name, Key: victim.Key, At: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	if st, err = st.RotateClientToken(time.Now(), 0); err != nil {
		t.Fatal(err)
	}
	// And a rolling upgrade that would have every node install a Nomad
	// of the rogue's choosing.
	if st, _, err = st.StartNomadUpgrade(clusterstate.NomadUpgrade{Version: "1.6.0", Stage: clusterstate.UpgradeServers, Batch: 1,
		DrainDeadline: time.Minute, NodeTimeout: time.Minute, StartedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	realEndorsement, err := base64.StdEncoding.DecodeString(victim.Endorsement)
	if err != nil {
		t.Fatal(err)
	}
	var forged [][]byte
	for _, f := range []struct {
		id          string
		endorsement []byte
	}{
		{rogueID, make([]byte, ed25519.SignatureSize)},
		{rogueID, realEndorsement},
		{victim.ID, realEndorsement},
	} {
		sg, err := clusterstate.Sign(st, f.id, rogueKey, f.endorsement)
		if err != nil {
			t.Fatal(err)
		}
		forged = append(forged, sg.Encode())
	}
	n := c.joinRogue(t, "rogue-state", c.prefix+".28", rogueID, rogueKey,
		stateHandler{state: agree.EncodePush(agree.PushState{Plan: &c.plan, Cluster: forged[0]})})
	for _, f := range forged {
		msg := agree.Message{Type: agree.MsgState, Cluster: f}.Encode()
		for _, p := range c.procs {
			if err := n.SendTo(p.name, msg); err != nil {
				t.Errorf("sending to %s: %v", p.name, err)
			}
		}
	}
	waitFor(t, 20*time.Second, "every agent to ignore the forged cluster states", func() bool {
		for _, p := range c.procs {
			if !logHasLine(p, "ignoring a cluster state", "rogue-state") {
				return false
			}
		}
		return true
	})
	for _, p := range c.procs {
		if _, err := os.Stat(paths.New(p.root).ClusterStateFile()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s keeps a cluster state: %v", p.name, err)
		}
		if s, _ := statusJSON(t, p.root); s.Cluster != nil {
			t.Errorf("%s holds cluster state %+v", p.name, s.Cluster)
		}
	}
	c.unchanged(t, "the forged cluster states")
}
