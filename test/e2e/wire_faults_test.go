package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/casvc"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
)

// fuzzCorpus returns the committed fuzz corpus of one target:
// internal/<pkg>/testdata/fuzz/<target>, whose entries each hold one []byte.
func fuzzCorpus(t *testing.T, pkg, target string) [][]byte {
	t.Helper()
	dir := filepath.Join("..", "..", "internal", pkg, "testdata", "fuzz", target)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" ||
			!strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
			t.Fatalf("%s/%s: not a corpus entry of one []byte", dir, e.Name())
		}
		v, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s/%s: %v", dir, e.Name(), err)
		}
		out = append(out, []byte(v))
	}
	if len(out) == 0 {
		t.Fatalf("%s: empty corpus", dir)
	}
	return out
}

// junkHandler is the gossip handler of a member that speaks the cluster's
// key but sends malformed push/pull state.
type junkHandler struct {
	mu    sync.Mutex
	state []byte
}

func (h *junkHandler) HandleMessage(string, []byte)  {}
func (h *junkHandler) MergeRemoteState([]byte, bool) {}
func (h *junkHandler) MembersChanged()               {}
func (h *junkHandler) LocalState(bool) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state
}
func (h *junkHandler) set(b []byte) {
	h.mu.Lock()
	h.state = b
	h.mu.Unlock()
}

// junkMeta is a memberlist delegate that announces arbitrary node meta.
type junkMeta struct{ meta []byte }

func (d junkMeta) NodeMeta(limit int) []byte     { return d.meta[:min(len(d.meta), limit)] }
func (junkMeta) NotifyMsg([]byte)                {}
func (junkMeta) GetBroadcasts(int, int) [][]byte { return nil }
func (junkMeta) LocalState(bool) []byte          { return nil }
func (junkMeta) MergeRemoteState([]byte, bool)   {}

// rawMemberlist starts a bare memberlist on addr with the given key and
// label, outside the gossip package's checks.
func rawMemberlist(t *testing.T, name, addr string, key []byte, label string, d memberlist.Delegate) *memberlist.Memberlist {
	t.Helper()
	c := memberlist.DefaultLANConfig()
	c.Name, c.BindAddr, c.BindPort, c.AdvertisePort = name, addr, 0, 0
	c.SecretKey, c.Label, c.Delegate = key, label, d
	c.LogOutput = io.Discard
	ml, err := memberlist.Create(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ml.Shutdown() })
	return ml
}

// Scenario 6 (on the wire): the fuzz corpora of every decoder of network
// input, replayed against a running cluster from every place they can come
// from: strangers without the key (raw UDP and TCP), a node of another
// cluster, a member with the cluster's key (malformed gossip envelopes,
// agreement messages, push/pull state and node meta), and sign requests to
// the CA endpoint, malformed or sealed with the cluster's key around a
// malformed CSR. Every agent keeps running with the same plan and the same
// files, the CA signs none of them, and a stranger never becomes a member.
func TestFaultBadInputOnTheWire(t *testing.T) {
	const prefix = "127.21.104"
	token, procs := clusterAt(t, prefix, 3, func(int) []string { return nil })
	before := waitSettled(t, procs, 60*time.Second, "the cluster to settle")
	snaps := map[string]map[string]string{}
	for _, p := range procs {
		snaps[p.name] = nodeFiles(t, p)
	}
	tok, err := certs.ParseToken(token)
	if err != nil {
		t.Fatal(err)
	}
	gossipAddrs := make([]string, len(procs))
	for i, p := range procs {
		gossipAddrs[i] = net.JoinHostPort(p.addr, strconv.Itoa(gossip.DefaultPort))
	}
	t.Run("strangers", func(t *testing.T) {
		var junk [][]byte
		for _, c := range [][2]string{{"gossip", "FuzzDecodeEnvelope"}, {"agent", "FuzzDecodeMessage"}, {"certs", "FuzzDecodeSignRequest"}} {
			junk = append(junk, fuzzCorpus(t, c[0], c[1])...)
		}
		for _, addr := range gossipAddrs {
			u, err := net.Dial("udp", addr)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range junk {
				u.Write(b)
			}
			u.Close()
			for _, b := range junk[:min(len(junk), 40)] {
				c, err := net.DialTimeout("tcp", addr, 2*time.Second)
				if err != nil {
					t.Fatalf("%s: %v", addr, err)
				}
				c.SetDeadline(time.Now().Add(2 * time.Second))
				c.Write(b)
				io.Copy(io.Discard, c) // the agent closes the stream
				c.Close()
			}
		}
	})

	t.Run("another cluster", func(t *testing.T) {
		other, err := certs.ParseToken(newToken(t))
		if err != nil {
			t.Fatal(err)
		}
		ml := rawMemberlist(t, "foreign", prefix+".20", other.GossipKey(), other.GossipLabel(), junkMeta{})
		if n, err := ml.Join(gossipAddrs); n != 0 || err == nil {
			t.Errorf("a node of another cluster joined %d agents (err %v)", n, err)
		}
		for _, addr := range gossipAddrs {
			for _, b := range fuzzCorpus(t, "agent", "FuzzDecodeMessage") {
				ml.SendToAddress(memberlist.Address{Addr: addr}, b)
			}
		}
	})

	t.Run("member with the cluster key", func(t *testing.T) {
		// Raw memberlist user messages: malformed gossip envelopes.
		ml := rawMemberlist(t, "raw", prefix+".21", tok.GossipKey(), tok.GossipLabel(), junkMeta{})
		for _, addr := range gossipAddrs {
			for _, b := range fuzzCorpus(t, "gossip", "FuzzDecodeEnvelope") {
				ml.SendToAddress(memberlist.Address{Addr: addr}, b)
			}
		}
		// Members whose node meta is malformed.
		for i, m := range fuzzCorpus(t, "gossip", "FuzzDecodeMeta")[:8] {
			jm := rawMemberlist(t, fmt.Sprintf("meta%d", i), fmt.Sprintf("%s.%d", prefix, 30+i), tok.GossipKey(), tok.GossipLabel(), junkMeta{meta: m})
			if n, err := jm.Join(gossipAddrs[:1]); n != 1 {
				t.Fatalf("a member with junk meta could not join: %v", err)
			}
			jm.Leave(time.Second)
			jm.Shutdown()
		}
		// A member of the gossip pool: malformed agreement messages, sent
		// to each agent and broadcast, and malformed push/pull state.
		// It signs its messages with its own identity key, so that they
		// reach the agents' decoders.
		h := &junkHandler{}
		_, insiderKey, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		n, err := gossip.Start(gossip.Config{
			Name: "insider", BindAddr: prefix + ".22", Key: tok.GossipKey(), Label: tok.GossipLabel(),
			Meta: gossip.Meta{ID: "8f7e6d5c-0000-4000-8000-000000000001", Role: "client", Pool: "warm", Region: "global", Expect: 3,
				Identity: insiderKey.Public().(ed25519.PublicKey)},
			Identity: insiderKey,
			Handler:  h,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Shutdown()
		for _, b := range fuzzCorpus(t, "agent", "FuzzDecodePushState") {
			h.set(b)
			if joined, err := n.Join(gossipAddrs); joined == 0 {
				t.Fatalf("the insider could not join: %v", err)
			}
		}
		for _, b := range fuzzCorpus(t, "agent", "FuzzDecodeMessage") {
			for _, p := range procs {
				n.SendTo(p.name, b)
			}
			n.Broadcast(b)
		}
		n.Leave(2 * time.Second)
	})

	t.Run("certificate requests", func(t *testing.T) {
		var s struct {
			Plan struct {
				CAHolder string `json:"ca_holder"`
				CAPort   int    `json:"ca_port"`
				Servers  []struct {
					ID, Name, Address string
				} `json:"servers"`
			} `json:"plan"`
		}
		b, err := os.ReadFile(paths.New(procs[0].root).PlanFile())
		if err == nil {
			err = json.Unmarshal(b, &s)
		}
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(s.Plan.Servers, func(v struct{ ID, Name, Address string }) bool { return v.ID == s.Plan.CAHolder })
		if i < 0 || s.Plan.CAPort == 0 {
			t.Fatalf("plan.json names no CA holder: %s", b)
		}
		caPEM, err := os.ReadFile(filepath.Join(paths.New(procs[0].root).NomadTLSDir(), certs.CAFileName))
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: s.Plan.Servers[i].Address},
		}}
		defer client.CloseIdleConnections()
		url := "https://" + net.JoinHostPort(s.Plan.Servers[i].Address, strconv.Itoa(s.Plan.CAPort)) + casvc.SignPath
		post := func(body []byte) int {
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatalf("POST %s: %v", url, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}
		codes := map[int]int{}
		for _, b := range fuzzCorpus(t, "certs", "FuzzDecodeSignRequest") {
			codes[post(b)]++
		}
		// Sealed with the cluster's key, so they pass the MAC, around
		// malformed CSRs; and a valid CSR asking for a node the plan does not
		// know.
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		_, intruder, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		good, err := certs.CreateCSR(key, "intruder")
		if err != nil {
			t.Fatal(err)
		}
		for j, der := range append(fuzzCorpus(t, "certs", "FuzzParseCSR"), good) {
			r := &certs.SignRequest{NodeID: fmt.Sprintf("8f7e6d5c-0000-4000-8000-%012d", j), NodeName: "intruder", Role: certs.RoleServer, CSR: der}
			if err := r.Seal(tok.CSRKey(), intruder, time.Now(), rand.Reader); err != nil {
				t.Fatal(err)
			}
			body, err := r.Encode()
			if err != nil {
				t.Fatal(err)
			}
			codes[post(body)]++
		}
		t.Logf("CA endpoint answers: %v", codes)
		for code := range codes {
			if code < 400 || code >= 500 {
				t.Errorf("the CA endpoint answered %d to a malformed or unauthorised request, want 4xx only: %v", code, codes)
			}
		}
	})

	// Every agent still runs, with the same plan, the same files and only
	// the cluster's nodes (and the insider, gone or leaving) as members.
	failures := 0
	for _, p := range procs {
		select {
		case <-p.done:
			failures++
			t.Errorf("%s exited:\n%s", p.name, p.log)
		default:
		}
	}
	began := time.Now()
	if after := waitSettled(t, procs, 30*time.Second, "the cluster to report its plan after the bad input"); after != before {
		failures++
		t.Errorf("plan %s, was %s", after, before)
	}
	for _, p := range procs {
		for f, b := range nodeFiles(t, p) {
			if snaps[p.name][f] != b {
				failures++
				t.Errorf("%s changed on %s", filepath.Base(f), p.name)
			}
		}
		s, _ := statusJSON(t, p.root)
		for _, m := range s.Members {
			if m.Name == "foreign" || m.Name == "raw" {
				failures++
				t.Errorf("%s lists %s (%s) as a member", p.name, m.Name, m.Status)
			}
		}
		// The input reached each decoder: the agent logs what it dropped.
		for _, want := range []string{"gossip: dropped a malformed message", "dropping malformed message", "dropping malformed push/pull state"} {
			if !strings.Contains(p.log.String(), want) {
				t.Errorf("%s never logged %q: that bad input did not reach its decoder", p.name, want)
			}
		}
	}
	figures(t, "bad-input-on-the-wire", 1, failures, []time.Duration{time.Since(began)})
}
