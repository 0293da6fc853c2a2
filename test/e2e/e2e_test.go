package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/mounts"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// bin is the nomad-bootstrapd binary built once for all tests.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nomad-bootstrapd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "nomad-bootstrapd")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/nomad-bootstrapd").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building nomad-bootstrapd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run runs the binary to completion (bounded by 30 s).
func run(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runWithin(t, 30*time.Second, args...)
}

// runWithin runs the binary to completion, bounded by d.
func runWithin(t testing.TB, d time.Duration, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("running %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

func newToken(t testing.TB) string {
	t.Helper()
	out, _, code := run(t, "token", "create")
	if code != 0 {
		t.Fatalf("token create exited %d", code)
	}
	return strings.TrimSpace(out)
}

// clientTokenFile writes a client token of the cluster whose server token
// is given, made by `token client`, into a file of dir, and returns its path.
func clientTokenFile(t testing.TB, dir, serverToken string) string {
	t.Helper()
	server := filepath.Join(dir, "server-token")
	if err := os.WriteFile(server, []byte(serverToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run(t, "token", "client", "-token-file", server)
	if code != 0 {
		t.Fatalf("token client exited %d: %s", code, stderr)
	}
	path := filepath.Join(dir, "client-token")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// proc is one agent process.
type proc struct {
	name, addr, root string
	args             []string
	cmd              *exec.Cmd
	log              *syncBuffer
	done             chan struct{}
}

// syncBuffer is a bytes.Buffer that a process writes to while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t testing.TB, root, name string, args ...string) *proc {
	t.Helper()
	return startWith(t, nil, root, name, args...)
}

// startWith is start with the agent's command line run by the command
// wrap (such as nsenter), which must exec it, when wrap is not empty.
func startWith(t testing.TB, wrap []string, root, name string, args ...string) *proc {
	t.Helper()
	return startBinary(t, bin, wrap, root, name, args...)
}

// startBinary is startWith for the nomad-bootstrapd binary agent, such as
// one of an earlier release.
func startBinary(t testing.TB, agent string, wrap []string, root, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, root: root, args: args, log: &syncBuffer{}, done: make(chan struct{})}
	argv := append(slices.Clone(wrap), agent, "agent", "-root", root, "-name", name)
	if !slices.Contains(args, "-metrics-addr") {
		// Many agents share this machine: each would want 127.0.0.1:4652.
		argv = append(argv, "-metrics-addr", "")
	}
	argv = append(argv, args...)
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop(syscall.SIGTERM) })
	return p
}

// stop signals the process and waits for it, killing it after 10 s.
func (p *proc) stop(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// statusJSON runs status -json on the node at root and returns what it
// printed, and its exit code.
func statusJSON(t testing.TB, root string) (status.Status, int) {
	t.Helper()
	out, _, code := run(t, "status", "-json", "-root", root)
	var s status.Status
	if code != 2 {
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("status -json: %v\n%s", err, out)
		}
	}
	return s, code
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	waitForOr(t, timeout, what, cond, nil)
}

// waitForOr is waitFor that calls explain, when not nil, before failing.
func waitForOr(t testing.TB, timeout time.Duration, what string, cond func() bool, explain func()) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			if explain != nil {
				explain()
			}
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// explainCluster logs what each agent reports and the output of those that
// exited, to tell why a wait for the cluster failed.
func explainCluster(t testing.TB, procs []*proc) func() {
	return func() {
		t.Helper()
		for _, p := range procs {
			select {
			case <-p.done:
				t.Logf("%s exited:\n%s", p.name, p.log)
				continue
			default:
			}
			s, code := statusJSON(t, p.root)
			if code == 2 {
				t.Logf("%s: no answer on the control socket\n%s", p.name, p.log)
				continue
			}
			t.Logf("%s: %s %q plan %s members %d warnings %q", p.name, s.Phase, s.Reason, planKey(s.Plan), len(s.Members), s.Warnings)
			if os.Getenv("E2E_AGENT_LOGS") != "" {
				t.Logf("%s log:\n%s", p.name, p.log)
			}
		}
	}
}

// cluster starts n agents on 127.0.<net>.1..n, all joining the first.
func cluster(t testing.TB, net, n int, extra ...string) (token string, procs []*proc) {
	return clusterEach(t, net, n, func(int) []string { return extra })
}

// clusterEach is cluster with per-node extra arguments.
func clusterEach(t testing.TB, net, n int, each func(i int) []string) (token string, procs []*proc) {
	t.Helper()
	return clusterAt(t, fmt.Sprintf("127.0.%d", net), n, each)
}

// clusterAt starts n agents on <prefix>.1..n with supervise=none, all
// joining the first, with per-node extra arguments.
func clusterAt(t testing.TB, prefix string, n int, each func(i int) []string) (token string, procs []*proc) {
	t.Helper()
	return clusterWith(t, newToken(t), prefix, n, each)
}

// clusterWith is clusterAt with the given server token. A node's extra
// arguments come after the defaults, so a -token-file among them (a client
// token, say) takes the place of the server token's.
func clusterWith(t testing.TB, token, prefix string, n int, each func(i int) []string) (string, []*proc) {
	t.Helper()
	var procs []*proc
	dir := t.TempDir()
	// Runs after the agents stop, before the directory is removed: Nomad
	// clients leave tmpfs mounts in their allocation directories.
	t.Cleanup(func() {
		if err := mounts.UnmountUnder(dir); err != nil {
			t.Error(err)
		}
	})
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	seed := prefix + ".1"
	for i := range n {
		addr := fmt.Sprintf("%s.%d", prefix, i+1)
		name := fmt.Sprintf("node%d", i+1)
		args := append([]string{"-bind", addr, "-join", seed, "-token-file", tokenFile, "-settle", "1s", "-supervise", "none"}, each(i)...)
		p := start(t, filepath.Join(dir, name), name, args...)
		p.addr = addr
		procs = append(procs, p)
		if i == 0 {
			// The others join the seed: start them once it answers.
			waitFor(t, 30*time.Second, "the seed agent to answer", func() bool {
				_, code := statusJSON(t, p.root)
				return code != 2
			})
		}
	}
	return token, procs
}

func planKey(p *status.PlanStatus) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprintf("epoch=%d servers=%v ca=%s", p.Epoch, p.Servers, p.CAHolder)
}

func waitSamePlan(t *testing.T, procs []*proc, timeout time.Duration) string {
	t.Helper()
	var key string
	waitFor(t, timeout, "every agent to report the same committed plan", func() bool {
		key = ""
		for _, p := range procs {
			s, code := statusJSON(t, p.root)
			if code == 2 || s.Plan == nil {
				return false
			}
			if k := planKey(s.Plan); key == "" {
				key = k
			} else if k != key {
				t.Fatalf("%s reports %s, another agent %s", p.name, k, key)
			}
		}
		return true
	})
	return key
}

func TestFiveProcessesAgreeAndSurviveRestart(t *testing.T) {
	_, procs := cluster(t, 201, 5, "-min-members", "5")
	key := waitSamePlan(t, procs, 60*time.Second)
	t.Logf("plan: %s", key)

	s, code := statusJSON(t, procs[0].root)
	if code != 1 {
		t.Errorf("status exit code %d while not running Nomad, want 1", code)
	}
	if len(s.Plan.Servers) != 3 || len(s.Members) != 5 {
		t.Fatalf("status: %d servers, %d members; want 3 and 5", len(s.Plan.Servers), len(s.Members))
	}

	// Kill a server that is not the seed (SIGKILL: no chance to clean up) and restart it.
	var victim *proc
	for _, p := range procs[1:] {
		if st, _ := statusJSON(t, p.root); st.Node.Role == "server" {
			victim = p
			break
		}
	}
	if victim == nil {
		t.Fatal("no server besides the seed")
	}
	before, _ := statusJSON(t, victim.root)
	victim.stop(syscall.SIGKILL)
	if _, code := statusJSON(t, victim.root); code != 2 {
		t.Errorf("status of a killed agent exited %d, want 2", code)
	}
	restarted := start(t, victim.root, victim.name, victim.args...)
	waitFor(t, 20*time.Second, "the restarted agent to answer", func() bool {
		_, code := statusJSON(t, restarted.root)
		return code != 2
	})
	after, _ := statusJSON(t, restarted.root)
	if after.Node.ID != before.Node.ID {
		t.Errorf("node ID changed: %s -> %s", before.Node.ID, after.Node.ID)
	}
	if planKey(after.Plan) != key {
		t.Errorf("restarted agent reports %s, want %s", planKey(after.Plan), key)
	}
	for i, p := range procs {
		if p == victim {
			procs[i] = restarted
		}
	}
	if got := waitSamePlan(t, procs, 30*time.Second); got != key {
		t.Errorf("after the restart the cluster reports %s, want %s", got, key)
	}
}

func TestTwoAgentsWithExpectThreeWait(t *testing.T) {
	_, procs := cluster(t, 202, 2, "-expect", "3")
	waitFor(t, 30*time.Second, "both agents to see each other", func() bool {
		for _, p := range procs {
			if s, code := statusJSON(t, p.root); code == 2 || len(s.Members) != 2 {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * time.Second) // longer than the settle time
	for _, p := range procs {
		s, code := statusJSON(t, p.root)
		if s.Plan != nil {
			t.Fatalf("%s committed %s with 2 of 3 nodes", p.name, planKey(s.Plan))
		}
		if code != 1 || !strings.Contains(s.Reason, "waiting for 3") {
			t.Errorf("%s: exit %d, reason %q; want 1 and a reason saying it waits for 3", p.name, code, s.Reason)
		}
		out, _, _ := run(t, "status", "-root", p.root)
		if !strings.Contains(out, "none committed yet") || !strings.Contains(out, "waiting for 3") {
			t.Errorf("status table does not say why:\n%s", out)
		}
	}
}

// SIGHUP, a reload to many operators, neither stops the agent nor changes
// what it does; it says so in its log.
func TestHangupKeepsTheAgentRunning(t *testing.T) {
	_, procs := cluster(t, 208, 1, "-expect", "3")
	p := procs[0]
	before, _ := statusJSON(t, p.root)
	for range 2 {
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the agent to log the SIGHUP", func() bool {
		return strings.Contains(p.log.String(), "SIGHUP ignored")
	})
	select {
	case <-p.done:
		t.Fatalf("the agent exited on SIGHUP:\n%s", p.log)
	case <-time.After(time.Second):
	}
	after, code := statusJSON(t, p.root)
	if code == 2 || after.Agent.PID != before.Agent.PID || after.Phase != before.Phase {
		t.Errorf("after SIGHUP: exit %d, pid %d, phase %s; before: pid %d, phase %s", code, after.Agent.PID, after.Phase, before.Agent.PID, before.Phase)
	}
}

func TestWrongTokenFailsFast(t *testing.T) {
	cluster(t, 203, 1)
	root := filepath.Join(t.TempDir(), "intruder")
	os.MkdirAll(root, 0o755)
	began := time.Now()
	_, stderr, code := run(t, "agent", "-root", root, "-name", "intruder", "-bind", "127.0.203.9",
		"-join", "127.0.203.1", "-token", newToken(t), "-supervise", "none")
	elapsed := time.Since(began)
	t.Logf("exited %d after %v: %s", code, elapsed, stderr)
	if code != 1 || !strings.Contains(stderr, "token does not match") {
		t.Errorf("exit %d, stderr %q; want 1 and a message that the token does not match", code, stderr)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("the refused agent wrote %d entries under its root", len(entries))
	}
}

func TestBadInputIsRefusedClearly(t *testing.T) {
	dir := t.TempDir()
	badConfig := filepath.Join(dir, "bad.hcl")
	os.WriteFile(badConfig, []byte("pool = \"warm\"\nexpectt = 3\n"), 0o600)
	token := newToken(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"malformed token", []string{"-token", "nbd2_abc"}, "truncated"},
		{"token of 0.1.0-dev", []string{"-token", "nbd1_abc"}, "another nomad-bootstrapd version"},
		{"wrong prefix", []string{"-token", "hello"}, "nbd2_"},
		{"no token", nil, "no join token"},
		{"unknown config key", []string{"-config", badConfig, "-token", token}, "bad.hcl:2"},
		{"even expect", []string{"-token", token, "-expect", "4"}, "even"},
		{"unknown pool name", []string{"-token", token, "-pool", "all"}, "pool"},
		{"template matching nothing", []string{"-token", token, "-bind", `{{ GetAllInterfaces | include "name" "nosuchif0" | attr "address" }}`}, "matched no address"},
		{"malformed seed", []string{"-token", token, "-join", "10.0.0.5:0,dns+srv://_gossip._tcp.example.com/x"}, `join: "10.0.0.5:0" has a bad port`},
		{"malformed SRV seed", []string{"-token", token, "-join", "dns+srv://_gossip._tcp..example.com"}, `is not a DNS SRV seed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			os.MkdirAll(root, 0o755)
			args := append([]string{"agent", "-root", root, "-supervise", "none"}, tt.args...)
			_, stderr, code := run(t, args...)
			if code == 0 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want non-zero and %q", code, stderr, tt.want)
			}
			if strings.Contains(stderr, token) {
				t.Errorf("stderr echoes the token")
			}
			if entries, _ := os.ReadDir(root); len(entries) != 0 {
				t.Errorf("wrote %d entries under the root", len(entries))
			}
		})
	}
}

func TestStatusWithoutAgent(t *testing.T) {
	_, stderr, code := run(t, "status", "-root", t.TempDir())
	if code != 2 || !strings.Contains(stderr, "not running") {
		t.Errorf("exit %d, stderr %q; want 2 and a message that the agent is not running", code, stderr)
	}
}

func TestDemo(t *testing.T) {
	out, stderr, code := run(t, "demo", "-nodes", "4", "-once", "-base", "127.0.204.2", "-timeout", "25s", "-nomad", "")
	if code != 0 {
		t.Fatalf("demo exited %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	if !strings.Contains(out, "every node committed plan epoch 1") {
		t.Errorf("demo output lacks the agreement line:\n%s", out)
	}
	dir := strings.Fields(out[strings.Index(out, " in /")+4:])[0]
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("demo left its directory %s behind", dir)
	}
}
