package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/acl"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/install"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/mounts"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadconf"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// BenchmarkHealthyCluster compares the time from start to a healthy 5-node
// Nomad cluster of 3 dedicated servers and 2 clients (a leader, ACLs
// bootstrapped, both clients ready, mTLS)
// through nomad-bootstrapd with the same cluster hand-configured: the same
// topology, pre-made certificates, static retry_join, everything started at
// once, ACLs bootstrapped as soon as a leader exists. Runs alternate, five
// of each. Run it with -benchtime 1x.
func BenchmarkHealthyCluster(b *testing.B) {
	bin := nomadBin(b)
	const runs = 5
	var ours, hand []time.Duration
	phases := map[status.Phase][]time.Duration{}
	for r := range runs {
		// Each cluster gets addresses of its own under 127.13.0.0/16, which
		// no other test uses, so no run waits for the last one's ports.
		hand = append(hand, handConfigured(b, bin, 1+2*r))
		t, ph := bootstrapped(b, bin, 2+2*r)
		ours = append(ours, t)
		// One line a run: benchmark logs are cut after ten lines.
		line := fmt.Sprintf("run %d: nomad-bootstrapd %.2fs, hand-configured %.2fs; every agent", r+1, ours[r].Seconds(), hand[r].Seconds())
		for _, p := range timedPhases {
			phases[p] = append(phases[p], ph[p])
			line += fmt.Sprintf(" %s %.2fs,", p, ph[p].Seconds())
		}
		b.Log(strings.TrimSuffix(line, ","))
	}
	slices.Sort(ours)
	slices.Sort(hand)
	med := func(d []time.Duration) float64 { return d[len(d)/2].Seconds() }
	b.ReportMetric(med(ours), "s-median-bootstrapd")
	b.ReportMetric(med(hand), "s-median-hand")
	b.ReportMetric(ours[len(ours)-1].Seconds(), "s-worst-bootstrapd")
	b.ReportMetric(hand[0].Seconds(), "s-best-hand")
	b.ReportMetric(med(ours)/med(hand), "median-ratio")
	b.ReportMetric(ours[len(ours)-1].Seconds()/hand[0].Seconds(), "worst/best-ratio")
	for _, p := range timedPhases {
		slices.Sort(phases[p])
		b.ReportMetric(med(phases[p]), "s-median-"+p.String())
	}
}

// timedPhases are the phases whose times BenchmarkHealthyCluster reports:
// when the last agent reached each.
var timedPhases = []status.Phase{status.PhaseCommitted, status.PhaseCertified, status.PhaseConfigured, status.PhaseStarting, status.PhaseRunning}

// bootstrapped runs five agents (three may be servers, dedicated; two are
// clients in pools warm and batch) and returns the time to a healthy
// cluster, and when the last agent reached each of timedPhases.
func bootstrapped(b *testing.B, bin string, net int) (time.Duration, map[status.Phase]time.Duration) {
	dir := b.TempDir()
	defer mounts.UnmountUnder(dir)
	token := newToken(b)
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	seed := fmt.Sprintf("127.13.%d.1", net)
	extra := realNomadArgs(bin, "")
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.stop(syscall.SIGTERM)
		}
	}()
	began := time.Now()
	for i := range 5 {
		addr := fmt.Sprintf("127.13.%d.%d", net, i+1)
		args := append([]string{"-bind", addr, "-join", seed, "-token-file", tokenFile, "-settle", "1s", "-bootstrap-size", "5", "-dedicated-servers"}, extra(i)...)
		p := start(b, filepath.Join(dir, fmt.Sprint("node", i+1)), fmt.Sprint("node", i+1), args...)
		p.addr = addr
		procs = append(procs, p)
	}
	// The clock stops as the hand-configured one does, on what Nomad's API
	// shows: ACLs bootstrapped with the policies and pools, and both
	// clients ready. Polling each agent's status instead would load the
	// two cores with five status processes every round while Nomad
	// starts; the phases are read from the agents' logs afterwards.
	var c *api.Client
	var mgmt string
	waitForOr(b, 180*time.Second, "ACLs, pools and 2 ready clients on the servers the agents started", func() bool {
		if c == nil {
			for _, p := range procs {
				tls := filepath.Join(p.root, "etc", "nomad.d", "tls")
				secret, err := os.ReadFile(filepath.Join(p.root, "var", "lib", "nomad-bootstrapd", "acl", "management.token"))
				if _, cerr := os.Stat(filepath.Join(tls, "cli.pem")); err != nil || cerr != nil {
					continue
				}
				c, mgmt = apiClient(b, p.addr, filepath.Join(tls, "ca.pem"), filepath.Join(tls, "cli.pem"), filepath.Join(tls, "cli-key.pem")), strings.TrimSpace(string(secret))
				break
			}
			if c == nil {
				return false
			}
		}
		return aclsInPlace(c, mgmt) && readyNodes(c, mgmt) >= 2
	}, explainCluster(b, procs))
	took := time.Since(began)
	// Every agent reports the cluster it built as running.
	waitForOr(b, 60*time.Second, "every agent to report running", func() bool {
		for _, p := range procs {
			if s, code := statusJSON(b, p.root); code != 0 || s.Phase != status.PhaseRunning {
				return false
			}
		}
		return true
	}, explainCluster(b, procs))
	return took, phaseTimes(b, procs, began)
}

// aclsInPlace reports whether every policy and pool of nomad-bootstrapd's
// is in Nomad.
func aclsInPlace(c *api.Client, token string) bool {
	q := &api.QueryOptions{AuthToken: token}
	policies, _, err := c.ACLPolicies().List(q)
	if err != nil {
		return false
	}
	pools, _, err := c.NodePools().List(q)
	if err != nil {
		return false
	}
	have := map[string]bool{}
	for _, p := range policies {
		have["policy "+p.Name] = true
	}
	for _, p := range pools {
		have["pool "+p.Name] = true
	}
	for _, p := range acl.Policies() {
		if !have["policy "+p.Name] {
			return false
		}
	}
	for _, p := range acl.DefaultPools() {
		if !have["pool "+p.Name] {
			return false
		}
	}
	return true
}

// readyNodes counts the Nomad clients that are ready.
func readyNodes(c *api.Client, token string) int {
	nodes, _, err := c.Nodes().List(&api.QueryOptions{AuthToken: token})
	if err != nil {
		return 0
	}
	ready := 0
	for _, n := range nodes {
		if n.Status == "ready" {
			ready++
		}
	}
	return ready
}

// phaseTimes returns, for each of timedPhases, when the last agent logged
// reaching it, counted from began.
func phaseTimes(b *testing.B, procs []*proc, began time.Time) map[status.Phase]time.Duration {
	reached := map[status.Phase]time.Duration{}
	for _, p := range procs {
		seen := map[status.Phase]bool{}
		for line := range strings.Lines(p.log.String()) {
			var at time.Time
			var ph status.Phase
			switch {
			case strings.Contains(line, ` msg="plan committed" `):
				ph = status.PhaseCommitted
			case strings.Contains(line, " msg=phase "):
			default:
				continue
			}
			for _, f := range strings.Fields(line) {
				k, v, _ := strings.Cut(f, "=")
				switch k {
				case "time":
					at, _ = time.Parse(time.RFC3339Nano, v)
				case "phase":
					ph.UnmarshalText([]byte(v))
				}
			}
			if at.IsZero() || seen[ph] {
				continue
			}
			seen[ph] = true
			reached[ph] = max(reached[ph], at.Sub(began))
		}
		for _, ph := range timedPhases {
			if !seen[ph] {
				b.Fatalf("%s logged no phase %s:\n%s", p.name, ph, p.log.String())
			}
		}
	}
	return reached
}

// handConfigured starts the same cluster from hand-written configuration and
// pre-made certificates, bootstraps ACLs once a leader exists, and returns
// the time to a healthy cluster.
func handConfigured(b *testing.B, bin string, net int) time.Duration {
	dir := b.TempDir()
	defer mounts.UnmountUnder(dir)
	ca, err := certs.NewCA(rand.Reader, "handconfigured", time.Now(), 0)
	if err != nil {
		b.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	encrypt := base64.StdEncoding.EncodeToString(key)
	addr := func(i int) string { return fmt.Sprintf("127.13.%d.%d", net, i+1) }
	servers := []string{addr(0), addr(1), addr(2)}
	pools := []string{"default", "default", "default", "warm", "batch"}
	var cmds []*exec.Cmd
	var roots []string
	for i := range 5 {
		root := filepath.Join(dir, fmt.Sprint("node", i+1))
		roots = append(roots, root)
		files := certs.TLSFiles{Dir: filepath.Join(root, "tls")}
		role := certs.RoleClient
		if i < 3 {
			role = certs.RoleServer
		}
		issue(b, ca, files, role, addr(i))
		if i < 3 {
			issue(b, ca, files, certs.RoleCLI, addr(i))
		}
		files.WriteCA(ca.BundlePEM())
		a := nomadconf.Agent{
			Name: fmt.Sprint("node", i+1), Region: "global", Datacenter: "dc1", DataDir: filepath.Join(root, "data"),
			BindAddr: addr(i), AdvertiseAddr: addr(i), LogLevel: "INFO", ACL: true, Telemetry: true,
			TLS: nomadconf.TLS{CAFile: files.CAPath(), CertFile: files.CertPath(role), KeyFile: files.KeyPath(role)},
		}
		if i < 3 {
			a.Server = &nomadconf.Server{BootstrapExpect: 3, Encrypt: encrypt, RetryJoin: servers, RetryInterval: 2 * time.Second}
		} else {
			a.Client = &nomadconf.Client{Servers: servers, NodePool: pools[i], Options: map[string]string{"fingerprint.denylist": "env_aws,env_gce,env_azure,env_digitalocean"}}
		}
		rendered, err := nomadconf.Render(a)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := install.Apply(filepath.Join(root, "nomad.d"), rendered); err != nil {
			b.Fatal(err)
		}
	}
	defer func() {
		for _, c := range cmds {
			c.Process.Signal(os.Interrupt)
		}
		for _, c := range cmds {
			done := make(chan struct{})
			go func() { c.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				c.Process.Kill()
				<-done
			}
		}
	}()
	began := time.Now()
	for _, root := range roots {
		cmd := exec.Command(bin, "agent", "-config", filepath.Join(root, "nomad.d"))
		log, _ := os.Create(filepath.Join(root, "nomad.log"))
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		log.Close()
		cmds = append(cmds, cmd)
	}
	tls := certs.TLSFiles{Dir: filepath.Join(roots[0], "tls")}
	c := apiClient(b, addr(0), tls.CAPath(), tls.CertPath(certs.RoleCLI), tls.KeyPath(certs.RoleCLI))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	boot := acl.New(c)
	if err := boot.WaitLeader(ctx, 120*time.Second); err != nil {
		b.Fatal(err)
	}
	secret := acl.NewManagementSecret()
	if _, err := boot.Bootstrap(ctx, secret); err != nil {
		b.Fatal(err)
	}
	if _, err := boot.Apply(ctx, secret, acl.DefaultPools()); err != nil {
		b.Fatal(err)
	}
	waitReady(b, c, secret, 2)
	return time.Since(began)
}

// issue writes a key and a certificate for role into files.
func issue(b *testing.B, ca *certs.CA, files certs.TLSFiles, role certs.Role, addr string) {
	key, _ := certs.NewKey(rand.Reader)
	keyPEM, _ := certs.MarshalKeyPEM(key)
	csrDER, _ := certs.CreateCSR(key, "node")
	csr, _ := certs.ParseCSR(csrDER)
	der, err := ca.Sign(csr, certs.Identity{NodeName: "node", Region: "global", Address: addr, Role: role}, time.Now(), 0)
	if err != nil {
		b.Fatal(err)
	}
	files.WriteKey(role, keyPEM)
	files.WriteCert(role, certs.EncodeCertPEM(der))
}

// apiClient returns a Nomad API client over mTLS.
func apiClient(b *testing.B, addr, ca, cert, key string) *api.Client {
	cfg := api.DefaultConfig()
	cfg.Address = "https://" + net.JoinHostPort(addr, "4646")
	cfg.SecretID = ""
	cfg.TLSConfig = &api.TLSConfig{CACert: ca, ClientCert: cert, ClientKey: key}
	c, err := api.NewClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// waitReady waits until n nodes are ready.
func waitReady(b *testing.B, c *api.Client, token string, n int) {
	waitFor(b, 120*time.Second, fmt.Sprintf("%d ready Nomad nodes", n), func() bool { return readyNodes(c, token) == n })
}

// BenchmarkFootprint reports the size of the binary as `make build` makes it
// (-trimpath, -ldflags '-s -w') and what an idle agent costs: five agents
// with -supervise none (no Nomad, so the figure is the agent's own) form a
// cluster, get their certificates and write Nomad's configuration; then,
// after a minute of idling, the resident set of each process and the CPU
// it used during that minute. Run it with -benchtime 1x.
func BenchmarkFootprint(b *testing.B) {
	stripped := filepath.Join(b.TempDir(), "nomad-bootstrapd")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", stripped, "../../cmd/nomad-bootstrapd")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	fi, err := os.Stat(stripped)
	if err != nil {
		b.Fatal(err)
	}
	const agents, idle = 5, 60 * time.Second
	nomad := nomadBin(b)
	// The agent's own figures (supervise none), then the same agents
	// watching the real Nomad they run (supervise process): the figures
	// are the agents' processes, without their Nomad children.
	for _, v := range []struct {
		suffix string
		prefix string
		args   []string
	}{
		{"", "127.14.1", []string{"-supervise", "none"}},
		{"-nomad", "127.14.2", []string{"-supervise", "process", "-nomad", nomad}},
	} {
		var rssMax, rssSum, cpuMax, cpuSum float64
		for range b.N {
			rss, cpu := idleAgents(b, v.prefix, agents, idle, v.args...)
			for i := range rss {
				rssMax, cpuMax = max(rssMax, rss[i]), max(cpuMax, cpu[i])
				rssSum += rss[i]
				cpuSum += cpu[i]
			}
		}
		b.ReportMetric(rssMax, "MB-rss-max"+v.suffix)
		b.ReportMetric(rssSum/float64(agents*b.N), "MB-rss-mean"+v.suffix)
		b.ReportMetric(cpuMax, "cpu-%-max"+v.suffix)
		b.ReportMetric(cpuSum/float64(agents*b.N), "cpu-%-mean"+v.suffix)
	}
	b.ReportMetric(float64(fi.Size())/1e6, "MB-binary")
	b.ReportMetric(idle.Seconds(), "s-idle")
}

// idleAgents starts n agents on <prefix>.x with the extra arguments, waits
// until every one has written Nomad's configuration (with supervise none)
// or runs a healthy Nomad, lets them idle, and returns each agent process's
// VmRSS in MB (10^6 bytes) after the idle time and the CPU it used during
// it, in percent of one core.
func idleAgents(b *testing.B, prefix string, n int, idle time.Duration, extra ...string) (rss, cpu []float64) {
	dir := b.TempDir()
	b.Cleanup(func() {
		if err := mounts.UnmountUnder(dir); err != nil {
			b.Error(err)
		}
	})
	want := status.PhaseConfigured
	if slices.Contains(extra, "process") {
		want = status.PhaseRunning
	}
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(newToken(b)+"\n"), 0o600)
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.stop(syscall.SIGTERM)
		}
	}()
	for i := range n {
		addr := fmt.Sprintf("%s.%d", prefix, i+1)
		name := fmt.Sprint("node", i+1)
		args := append([]string{"-bind", addr, "-join", prefix + ".1",
			"-token-file", tokenFile, "-settle", "1s", "-min-members", strconv.Itoa(n),
			"-metrics-addr", addr + ":4652"}, extra...) // the endpoint is on by default
		p := start(b, filepath.Join(dir, name), name, args...)
		p.addr = addr
		procs = append(procs, p)
	}
	waitFor(b, 120*time.Second, "every agent to reach "+want.String(), func() bool {
		for _, p := range procs {
			s, code := statusJSON(b, p.root)
			if code == 2 || s.Phase < want || s.Phase == status.PhaseDegraded {
				return false
			}
		}
		return true
	})
	before := make([]int64, n)
	for i, p := range procs {
		before[i] = cpuTicks(b, p.cmd.Process.Pid)
	}
	began := time.Now()
	time.Sleep(idle)
	elapsed := time.Since(began).Seconds()
	for i, p := range procs {
		pid := p.cmd.Process.Pid
		rss = append(rss, vmRSS(b, pid))
		// Linux reports utime and stime in clock ticks of 1/100 s (USER_HZ).
		cpu = append(cpu, float64(cpuTicks(b, pid)-before[i])/100/elapsed*100)
	}
	return rss, cpu
}

// vmRSS returns the resident set of process pid in MB, from /proc.
func vmRSS(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				b.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb * 1024 / 1e6
		}
	}
	b.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// cpuTicks returns utime+stime of process pid, from /proc/PID/stat.
func cpuTicks(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	_, rest, ok := strings.Cut(string(data), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		b.Fatalf("/proc/%d/stat: %q", pid, data)
	}
	// rest starts at field 3 (state); utime and stime are fields 14 and 15.
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, data)
	}
	return utime + stime
}
