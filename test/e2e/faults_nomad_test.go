package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// Fault scenarios that need the real Nomad (RELIABILITY.md). Their agents
// run Nomad as a child (supervise=process) and bind in 127.22.0.0/16, apart
// from the other end-to-end tests.

// nomadAPIAt returns a client of the Nomad HTTP API of the agent at addr,
// authenticated with the CLI certificate of the server whose root is root
// and with token (may be empty).
func nomadAPIAt(t testing.TB, root, addr, token string) *api.Client {
	t.Helper()
	tlsDir := paths.New(root).NomadTLSDir()
	c, err := api.NewClient(&api.Config{
		Address:  "https://" + addr + ":4646",
		Region:   "global",
		SecretID: token,
		TLSConfig: &api.TLSConfig{
			CACert:     filepath.Join(tlsDir, "ca.pem"),
			ClientCert: filepath.Join(tlsDir, "cli.pem"),
			ClientKey:  filepath.Join(tlsDir, "cli-key.pem"),
		},
	})
	if err != nil {
		t.Fatalf("nomad API client for %s: %v", addr, err)
	}
	return c
}

// bounded returns query options that give up after d.
func bounded(d time.Duration) (*api.QueryOptions, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	return (&api.QueryOptions{}).WithContext(ctx), cancel
}

// nomadChildPID returns the PID of the Nomad agent a supervise=process
// agent runs, as its status reports it ("process (pid N)"); 0 if none.
func nomadChildPID(s status.Status) int {
	if s.Nomad == nil {
		return 0
	}
	_, rest, ok := strings.Cut(s.Nomad.Unit, "(pid ")
	if !ok {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSuffix(rest, ")"))
	return pid
}

// killLeftovers kills, by PID, the processes whose command line names dir
// (Nomad agents, executors and tasks of the test's nodes) and reports them.
func killLeftovers(t testing.TB, dir string) {
	t.Helper()
	out, _ := exec.Command("pgrep", "-f", dir).Output()
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		t.Logf("killing leftover process %d: %s", pid, strings.ReplaceAll(string(cmdline), "\x00", " "))
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// leaderWatch polls the given Nomad servers for their raft leader every
// interval until stopped. A poll has a leader when every server answers
// with the same non-empty leader.
type leaderWatch struct {
	stop chan struct{}
	once sync.Once
	done chan struct{}

	mu         sync.Mutex
	polls      int
	leaderless int           // polls where a server answered with no leader, or servers disagreed
	unanswered int           // polls where a server did not answer in time
	longestGap time.Duration // longest time between two polls with a leader
	lastOK     time.Time
	why        string // the first leaderless poll
}

func watchLeader(clients []*api.Client, interval, limit time.Duration) *leaderWatch {
	w := &leaderWatch{stop: make(chan struct{}), done: make(chan struct{}), lastOK: time.Now()}
	go func() {
		defer close(w.done)
		deadline := time.Now().Add(limit)
		t := time.NewTicker(interval)
		defer t.Stop()
		for time.Now().Before(deadline) {
			w.poll(clients)
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

func (w *leaderWatch) poll(clients []*api.Client) {
	leaders := make([]string, len(clients))
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			q, cancel := bounded(2 * time.Second)
			defer cancel()
			var leader string
			_, errs[i] = c.Raw().Query("/v1/status/leader", &leader, q)
			leaders[i] = leader
		})
	}
	wg.Wait()
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polls++
	switch {
	case slices.ContainsFunc(errs, func(err error) bool { return err != nil }):
		w.unanswered++
		return
	case leaders[0] == "" || slices.ContainsFunc(leaders, func(l string) bool { return l != leaders[0] }):
		w.leaderless++
		if w.why == "" {
			w.why = fmt.Sprintf("%s: leaders %q", now.Format(time.TimeOnly), leaders)
		}
		return
	}
	w.longestGap = max(w.longestGap, now.Sub(w.lastOK))
	w.lastOK = now
}

// close stops the watch; it may be called more than once.
func (w *leaderWatch) close() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

// finish stops the watch and returns its counts.
func (w *leaderWatch) finish() (polls, leaderless, unanswered int, longestGap time.Duration, why string) {
	w.close()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.polls, w.leaderless, w.unanswered, max(w.longestGap, time.Since(w.lastOK)), w.why
}

// Scenario 5: a Nomad server is lost for good (agent and Nomad killed).
// After server_replace_after the survivors commit epoch 2 with a former
// client in its place; that node restarts Nomad as a server, autopilot
// removes the dead server from the raft peers, the cluster keeps a leader
// throughout and a running job keeps running.
func TestFaultServerLostNomad(t *testing.T) {
	nomad := nomadBin(t)
	const prefix = "127.22.1"
	// Nodes 1-4 may be servers: three are elected, the fourth is the spare
	// that replaces the lost one. Node 5 is a client of pool warm, which
	// runs the job.
	_, procs := clusterAt(t, prefix, 5, func(i int) []string {
		args := []string{"-min-members", "5", "-supervise", "process", "-nomad", nomad, "-raw-exec",
			"-server-replace-after", "5s", "-ca-failover-after", "2s"}
		if i == 4 {
			args = append(args, "-role", "client", "-pool", "warm")
		}
		return args
	})
	dir := filepath.Dir(procs[0].root)
	// Cleanups run last registered first: this one runs before clusterAt's
	// own, and after the job is stopped (below). It stops the agents, which
	// stop their Nomad, then kills what outlived them (the Nomad of a killed
	// agent), so that nothing holds the directory when it is unmounted.
	t.Cleanup(func() {
		for _, p := range procs {
			p.stop(syscall.SIGTERM)
		}
		killLeftovers(t, dir)
	})
	byName := map[string]*proc{}
	for _, p := range procs {
		byName[p.name] = p
	}
	explain := explainCluster(t, procs)
	waitForOr(t, 180*time.Second, "every agent to run a healthy Nomad", func() bool {
		for _, p := range procs {
			if s, code := statusJSON(t, p.root); code != 0 || s.Phase != status.PhaseRunning {
				return false
			}
		}
		return true
	}, explain)

	s1, _ := statusJSON(t, procs[0].root)
	p1 := s1.Plan
	if p1 == nil || p1.Epoch != 1 || len(p1.Servers) != 3 {
		t.Fatalf("plan %s: want epoch 1 with 3 servers", planKey(p1))
	}
	leaderAddr, _, _ := strings.Cut(s1.Nomad.Leader, ":")
	// The victim: a server that is not Nomad's leader, the CA holder when
	// it is not the leader, so that the CA moves too.
	var victim, spare *proc
	var survivors []*proc
	for _, name := range p1.Servers {
		p := byName[name]
		if p.addr != leaderAddr && (victim == nil || name == p1.CAHolder) {
			victim = p
		}
	}
	for _, name := range p1.Servers {
		if byName[name] != victim {
			survivors = append(survivors, byName[name])
		}
	}
	for _, p := range procs[:4] {
		if !slices.Contains(p1.Servers, p.name) {
			spare = p
		}
	}
	if victim == nil || spare == nil || len(survivors) != 2 {
		t.Fatalf("plan %s, leader %s: want a server that is not the leader and a spare", planKey(p1), s1.Nomad.Leader)
	}

	// A service job on the client of pool warm, submitted as the deployer.
	deployer := readToken(t, survivors[0].root, "deployer")
	mgmt := managementToken(t, survivors[0].root)
	jobs := nomadAPIAt(t, survivors[0].root, survivors[0].addr, deployer)
	job := api.NewServiceJob("probe", "probe", "global", 50)
	// Clients share Nomad's default node pool; the job finds pool warm by
	// its meta.pool, as the seed's jobs do.
	job.Constrain(api.NewConstraint("${meta.pool}", "=", "warm"))
	tg := api.NewTaskGroup("g", 1)
	// $0 names the test's directory, so a task that outlives the test is
	// found and killed.
	tg.AddTask(api.NewTask("t", "raw_exec").
		SetConfig("command", "/bin/sh").
		SetConfig("args", []string{"-c", "while :; do sleep 1; done", filepath.Join(dir, "probe")}))
	job.AddTaskGroup(tg)
	if _, _, err := jobs.Jobs().Register(job, nil); err != nil {
		t.Fatalf("registering the job as the deployer: %v", err)
	}
	t.Cleanup(func() {
		// Stop the job first: a task survives its Nomad client.
		c := nomadAPIAt(t, survivors[0].root, survivors[0].addr, mgmt)
		if _, _, err := c.Jobs().Deregister("probe", false, nil); err != nil {
			t.Logf("stopping the job: %v", err)
			return
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			q, cancel := bounded(5 * time.Second)
			allocs, _, err := c.Jobs().Allocations("probe", true, q)
			cancel()
			if err == nil && len(allocs) > 0 && !slices.ContainsFunc(allocs, func(a *api.AllocationListStub) bool { return a.ClientStatus == api.AllocClientStatusRunning }) {
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Logf("the job's allocation still runs 30s after the job was stopped")
	})
	var alloc string
	waitFor(t, 60*time.Second, "the job's allocation to run on "+procs[4].name, func() bool {
		q, cancel := bounded(5 * time.Second)
		defer cancel()
		allocs, _, err := jobs.Jobs().Allocations("probe", false, q)
		if err != nil {
			return false
		}
		for _, a := range allocs {
			if a.ClientStatus == api.AllocClientStatusRunning && a.NodeName == procs[4].name {
				alloc = a.ID
				return true
			}
		}
		return false
	})

	// Watch the leader as the survivors see it, then kill the victim for
	// good: its agent first, so that nothing restarts its Nomad, then
	// Nomad's process group.
	var watched []*api.Client
	for _, p := range survivors {
		watched = append(watched, nomadAPIAt(t, p.root, p.addr, ""))
	}
	watch := watchLeader(watched, 250*time.Millisecond, 5*time.Minute)
	defer watch.close()
	vs, _ := statusJSON(t, victim.root)
	pid := nomadChildPID(vs)
	if pid == 0 {
		t.Fatalf("%s: no Nomad child in status (%+v)", victim.name, vs.Nomad)
	}
	victim.stop(syscall.SIGKILL)
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing %s's Nomad (pid %d): %v", victim.name, pid, err)
	}
	killed := time.Now()
	t.Logf("killed %s (CA holder: %v) and its Nomad (pid %d); leader %s; spare %s", victim.name, victim.name == p1.CAHolder, pid, s1.Nomad.Leader, spare.name)
	live := slices.DeleteFunc(slices.Clone(procs), func(p *proc) bool { return p == victim })
	explain = explainCluster(t, live)

	failures := 0
	// Epoch 2 on every live node, the spare in the victim's place.
	want := slices.Clone(p1.Servers)
	want[slices.Index(want, victim.name)] = spare.name
	waitForOr(t, 90*time.Second, "every live node to commit epoch 2 with "+spare.name+" in "+victim.name+"'s place", func() bool {
		for _, p := range live {
			s, code := statusJSON(t, p.root)
			if code == 2 || s.Plan == nil || s.Plan.Epoch != 2 || !slices.Equal(s.Plan.Servers, want) {
				return false
			}
		}
		return true
	}, explain)
	committed := time.Since(killed)

	// The spare runs Nomad as a server, alive among the server members;
	// the dead server leaves the raft peers; every live agent is healthy.
	mgmtAPI := nomadAPIAt(t, survivors[0].root, survivors[0].addr, mgmt)
	wantPeers := []string{spare.name, survivors[0].name, survivors[1].name}
	slices.Sort(wantPeers)
	// Each check, and when it first passed after the kill.
	checks := []struct {
		what  string
		check func() string // why it does not pass yet, or ""
		why   string
		at    time.Duration
	}{
		{what: spare.name + " is an alive Nomad server member", check: func() string {
			q, cancel := bounded(5 * time.Second)
			defer cancel()
			members, err := mgmtAPI.Agent().MembersOpts(q)
			if err != nil {
				return fmt.Sprintf("server members: %v", err)
			}
			var seen []string
			for _, m := range members.Members {
				if m.Name == spare.name+".global" && m.Status == "alive" {
					return ""
				}
				seen = append(seen, m.Name+" "+m.Status)
			}
			return fmt.Sprintf("server members %q", seen)
		}},
		{what: "the raft voters are " + strings.Join(wantPeers, ", "), check: func() string {
			q, cancel := bounded(5 * time.Second)
			defer cancel()
			cfg, err := mgmtAPI.Operator().RaftGetConfiguration(q)
			if err != nil {
				return fmt.Sprintf("raft configuration: %v", err)
			}
			var peers []string
			for _, s := range cfg.Servers {
				peer := strings.TrimSuffix(s.Node, ".global")
				if !s.Voter {
					peer += "(non-voter)"
				}
				peers = append(peers, peer)
			}
			slices.Sort(peers)
			if !slices.Equal(peers, wantPeers) {
				return fmt.Sprintf("raft peers %v", peers)
			}
			return ""
		}},
		{what: "every live agent is healthy", check: func() string {
			for _, p := range live {
				if s, code := statusJSON(t, p.root); code != 0 {
					return fmt.Sprintf("%s: %s %q warnings %q", p.name, s.Phase, s.Reason, s.Warnings)
				}
			}
			return ""
		}},
	}
	waitForOr(t, 180*time.Second, spare.name+" to serve and "+victim.name+" to leave the raft peers", func() bool {
		ok := true
		for i := range checks {
			c := &checks[i]
			if c.why = c.check(); c.why != "" {
				ok = false
			} else if c.at == 0 {
				c.at = time.Since(killed)
			}
		}
		return ok
	}, func() {
		for _, c := range checks {
			if c.why != "" {
				t.Logf("not yet: %s: %s", c.what, c.why)
			}
		}
		explain()
	})
	for _, c := range checks {
		t.Logf("%s %s after the kill", c.what, c.at.Round(100*time.Millisecond))
	}
	recovered := time.Since(killed)

	polls, leaderless, unanswered, gap, first := watch.finish()
	t.Logf("epoch 2 committed %s after the kill; %s serving, %s out of the raft peers and every agent healthy after %s",
		committed.Round(100*time.Millisecond), spare.name, victim.name, recovered.Round(100*time.Millisecond))
	t.Logf("leader polls every 250ms: %d, %d without a leader, %d unanswered within 2s, longest gap between polls with a leader %s",
		polls, leaderless, unanswered, gap.Round(10*time.Millisecond))
	if leaderless > 0 {
		failures++
		t.Errorf("%d of %d polls found no leader (first at %s)", leaderless, polls, first)
	}

	// The spare's Nomad runs as a server with the new plan's settings, and
	// the survivors' configuration joins the new server, not the dead one.
	ss, _ := statusJSON(t, spare.root)
	if ss.Node.Role != "server" || ss.ACL == nil || ss.ACL.State != "bootstrapped" {
		failures++
		t.Errorf("%s: role %s, ACL %+v; want a server with its ACL tokens", spare.name, ss.Node.Role, ss.ACL)
	}
	// Every live node's configuration names the new server instead of the
	// dead one: servers join it (Serf, 4648), clients use it (RPC, 4647).
	for _, p := range live {
		for file, port := range map[string]string{"nomad-bootstrapd-server.hcl": ":4648", "nomad-bootstrapd-client.hcl": ":4647"} {
			b, err := os.ReadFile(filepath.Join(paths.New(p.root).NomadConfigDir(), file))
			if err != nil {
				if slices.Contains(want, p.name) || file == "nomad-bootstrapd-client.hcl" {
					failures++
					t.Errorf("%s: %v", p.name, err)
				}
				continue
			}
			if !strings.Contains(string(b), `"`+spare.addr+port+`"`) || strings.Contains(string(b), `"`+victim.addr+port+`"`) {
				failures++
				t.Errorf("%s: %s does not name %s instead of %s:\n%s", p.name, file, spare.addr, victim.addr, b)
			}
		}
	}

	// The job's allocation still runs, never rescheduled.
	q, cancel := bounded(5 * time.Second)
	defer cancel()
	info, _, err := jobs.Allocations().Info(alloc, q)
	switch {
	case err != nil:
		failures++
		t.Errorf("allocation %s: %v", alloc, err)
	case info.ClientStatus != api.AllocClientStatusRunning:
		failures++
		t.Errorf("allocation %s is %s, want running", alloc, info.ClientStatus)
	}
	figures(t, "server-lost-nomad", 1, failures, []time.Duration{recovered})
}
