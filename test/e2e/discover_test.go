package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// srvServer is a DNS server on port 53 of a loopback address that answers
// for one SRV name, with records the test changes, and for the A records
// of their targets.
type srvServer struct {
	addr       string
	mu         sync.Mutex
	targets    []string // the SRV records' targets, host names under cluster.test.
	hosts      map[string]string
	srvQueries atomic.Int64 // SRV questions, for any name
}

const srvName = "_gossip._tcp.cluster.test."

func startSRVServer(t *testing.T, addr string, hosts map[string]string) *srvServer {
	t.Helper()
	s := &srvServer{addr: addr, hosts: hosts}
	mux := dns.NewServeMux()
	mux.HandleFunc("cluster.test.", s.answer)
	for _, network := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: net.JoinHostPort(addr, "53"), Net: network, Handler: mux}
		started := make(chan error, 1)
		srv.NotifyStartedFunc = func() { started <- nil }
		go func() { started <- srv.ListenAndServe() }()
		select {
		case err := <-started:
			if err != nil {
				t.Fatalf("starting the test's DNS server: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the test's DNS server did not start")
		}
		t.Cleanup(func() { srv.Shutdown() })
	}
	return s
}

func (s *srvServer) set(targets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.targets = targets
}

func (s *srvServer) answer(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	s.mu.Lock()
	defer s.mu.Unlock()
	q := r.Question[0]
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 1}
	if q.Qtype == dns.TypeSRV {
		s.srvQueries.Add(1)
	}
	switch {
	case q.Qtype == dns.TypeSRV && q.Name == srvName:
		hdr.Rrtype = dns.TypeSRV
		for _, target := range s.targets {
			m.Answer = append(m.Answer, &dns.SRV{Hdr: hdr, Priority: 1, Weight: 1, Port: 4650, Target: target})
		}
	case q.Qtype == dns.TypeA && s.hosts[q.Name] != "":
		hdr.Rrtype = dns.TypeA
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.ParseIP(s.hosts[q.Name])})
	case q.Qtype == dns.TypeAAAA && s.hosts[q.Name] != "":
	default:
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}

// TestSRVSeed runs five agents whose only seed is a DNS SRV name, served by
// a real DNS server on loopback that each agent's resolver is pointed at
// (its own /etc/resolv.conf, in a mount namespace of its own): they form one
// cluster with one plan. When the records name another machine, an agent
// restarted while the first one is gone looks the name up again and joins
// through the new record.
func TestSRVSeed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: each agent gets its own /etc/resolv.conf in a mount namespace")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skipf("needs unshare (util-linux): %v", err)
	}
	if _, err := os.Stat("/etc/resolv.conf"); err != nil {
		t.Skipf("needs an /etc/resolv.conf to bind the test's over: %v", err)
	}
	const prefix = "127.22.16"
	hosts := map[string]string{}
	for i := 1; i <= 5; i++ {
		hosts[fmt.Sprintf("n%d.cluster.test.", i)] = fmt.Sprintf("%s.%d", prefix, i)
	}
	server := startSRVServer(t, prefix+".53", hosts)
	server.set("n1.cluster.test.")
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver "+prefix+".53\noptions timeout:1 attempts:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// unshare execs sh, which binds the file over /etc/resolv.conf in
	// the new mount namespace only and execs the agent.
	wrap := []string{"unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
		`mount --bind "$0" /etc/resolv.conf && exec "$@"`, resolv}
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(newToken(t)+"\n"), 0o600)
	args := func(i int) []string {
		a := []string{"-bind", fmt.Sprintf("%s.%d", prefix, i+1), "-token-file", tokenFile, "-settle", "1s", "-supervise", "none"}
		if i > 0 {
			a = append(a, "-join", "dns+srv://"+srvName)
		}
		return a
	}
	var procs []*proc
	for i := range 5 {
		name := fmt.Sprintf("node%d", i+1)
		p := startWith(t, wrap, filepath.Join(dir, name), name, args(i)...)
		p.addr = fmt.Sprintf("%s.%d", prefix, i+1)
		procs = append(procs, p)
	}
	before := waitSettled(t, procs, 90*time.Second, "the agents to form one cluster through the SRV name")
	t.Logf("plan %s after %d SRV queries", before, server.srvQueries.Load())

	// The name now points at node2; node1 goes, and node5 starts again.
	server.set("n2.cluster.test.")
	procs[0].stop(syscall.SIGTERM)
	procs[4].stop(syscall.SIGTERM)
	queries := server.srvQueries.Load()
	again := startWith(t, wrap, procs[4].root, procs[4].name, procs[4].args...)
	again.addr = procs[4].addr
	procs[4] = again
	waitForOr(t, 90*time.Second, "the restarted agent to join through node2", func() bool {
		s, code := statusJSON(t, again.root)
		alive := 0
		for _, m := range s.Members {
			if m.Status == "alive" && m.Name != "node1" {
				alive++
			}
		}
		return code != 2 && alive == 4 && s.Phase >= status.PhaseCommitted
	}, explainCluster(t, procs[1:]))
	if server.srvQueries.Load() == queries {
		t.Error("the restarted agent did not look the SRV name up")
	}
	if !slices.ContainsFunc(procs[1:], func(p *proc) bool { s, _ := statusJSON(t, p.root); return s.Plan != nil }) {
		t.Error("no agent holds a plan")
	}

	// A machine whose seed names nothing says so, keeps trying, logs it
	// once, and does not start a cluster of its own.
	const missing = "dns+srv://_missing._tcp.cluster.test"
	lost := startWith(t, wrap, filepath.Join(dir, "node6"), "node6",
		"-bind", prefix+".6", "-token-file", tokenFile, "-settle", "1s", "-supervise", "none", "-join", missing)
	waitFor(t, 30*time.Second, "node6 to say that its seed does not resolve", func() bool {
		s, _ := statusJSON(t, lost.root)
		return strings.Contains(s.Reason, "cannot look the seeds up yet") && strings.Contains(s.Reason, "looking up "+missing)
	})
	tries := server.srvQueries.Load()
	waitFor(t, 30*time.Second, "node6 to look its seed up again", func() bool { return server.srvQueries.Load() >= tries+3 })
	if n := strings.Count(lost.log.String(), "cannot look a seed up"); n != 1 {
		t.Errorf("node6 logged the failed lookup %d times, want once:\n%s", n, lost.log.String())
	}
	if s, _ := statusJSON(t, lost.root); s.Plan != nil || s.Phase >= status.PhaseCommitted {
		t.Errorf("node6 is %s with plan %v; want it waiting for its seed", s.Phase, s.Plan)
	}
}

// TestMDNSSeed runs five agents of one cluster and one of another, each
// machine in a network namespace of its own on one bridge, all started
// with provider=mdns as their only seed and no address: the five find each
// other by multicast DNS and form one cluster with one plan; the sixth,
// whose announcements carry another cluster's tag, is merged with none of
// them. An agent on an interface without multicast is refused at start,
// writing nothing.
func TestMDNSSeed(t *testing.T) {
	needNetns(t)
	n := newPartitionNet(t, 6, 6)
	dir := t.TempDir()
	ours, theirs := filepath.Join(dir, "token"), filepath.Join(dir, "other-token")
	os.WriteFile(ours, []byte(newToken(t)+"\n"), 0o600)
	os.WriteFile(theirs, []byte(newToken(t)+"\n"), 0o600)
	var procs []*proc
	for i := range 6 {
		token := ours
		if i == 5 {
			token = theirs
		}
		name := fmt.Sprintf("node%d", i+1)
		p := startIn(t, n.hosts[i], filepath.Join(dir, name), name,
			"-bind", n.addr(i), "-token-file", token, "-settle", "1s", "-supervise", "none", "-join", "provider=mdns")
		p.addr = n.addr(i)
		procs = append(procs, p)
	}
	cluster, other := procs[:5], procs[5]
	key := waitSettled(t, cluster, 120*time.Second, "the five agents to find each other by mDNS and agree")
	t.Logf("plan %s", key)
	for _, p := range cluster {
		s, _ := statusJSON(t, p.root)
		if slices.ContainsFunc(s.Members, func(m status.MemberStatus) bool { return m.Name == other.name }) {
			t.Errorf("%s lists %s, an agent of another cluster", p.name, other.name)
		}
	}
	s, _ := statusJSON(t, other.root)
	if len(s.Members) != 1 || s.Plan != nil {
		t.Errorf("the other cluster's agent has members %v and plan %v; want itself alone", s.Members, s.Plan)
	}

	root := filepath.Join(dir, "loopback")
	_, stderr, code := run(t, "agent", "-root", root, "-supervise", "none", "-bind", "127.0.0.1", "-token-file", ours,
		"-join", "provider=mdns", "-metrics-addr", "")
	if code == 0 || !strings.Contains(stderr, "provider=mdns needs multicast") {
		t.Errorf("an agent on loopback with provider=mdns: exit %d, %q; want a refusal", code, stderr)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("the refused agent wrote %d entries under its root", len(entries))
	}
}
