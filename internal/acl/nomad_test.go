package acl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/nomad/api"
)

// testIP is the loopback address the Nomad agents of this package's tests
// bind to, away from the 127.0.0.x addresses other tests and the demo use.
const testIP = "127.0.77.1"

// nomadBinary finds the real Nomad: $NOMAD_BIN, else the binary `make nomad`
// caches in the repository.
func nomadBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("NOMAD_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("NOMAD_BIN: %v", err)
		}
		return p
	}
	p, err := filepath.Abs(filepath.Join("..", "..", ".cache", "nomad-v1.6.3"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Skip("real nomad not built; run make nomad or set NOMAD_BIN")
	}
	return p
}

// cleanEnv is the environment without NOMAD_* variables, plus extra.
func cleanEnv(extra ...string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "NOMAD_") })
	return append(env, extra...)
}

// freePort returns a TCP port on testIP that nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(testIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type agentPorts struct{ http, rpc, serf int }

func newPorts(t *testing.T) agentPorts {
	return agentPorts{http: freePort(t), rpc: freePort(t), serf: freePort(t)}
}

// commonConfig is what both test agents share: loopback bind and advertise,
// their own ports, ACLs on, no update check.
func commonConfig(name, dataDir string, p agentPorts) string {
	return fmt.Sprintf(`name                 = %q
data_dir             = %q
bind_addr            = %q
disable_update_check = true
log_level            = "INFO"

ports {
  http = %d
  rpc  = %d
  serf = %d
}

advertise {
  http = %[3]q
  rpc  = %[3]q
  serf = %[3]q
}

acl {
  enabled = true
}
`, name, dataDir, testIP, p.http, p.rpc, p.serf)
}

// startAgent runs `nomad agent -config dir/agent.hcl` until the test ends;
// its output goes to dir/nomad.log, shown when the test fails.
func startAgent(t *testing.T, bin, dir, config string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "nomad.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "agent", "-config", cfg)
	cmd.Stdout, cmd.Stderr, cmd.Env = logf, logf, cleanEnv()
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Logf("%s: no exit 15s after SIGINT, killing", dir)
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			tail(t, logPath, 60)
		}
	})
}

func tail(t *testing.T, path string, n int) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Log(err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	t.Logf("last lines of %s:\n%s", path, strings.Join(lines, "\n"))
}

// runCLI runs the real nomad CLI against addr with token.
func runCLI(t *testing.T, bin, addr, token string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = cleanEnv("NOMAD_ADDR="+addr, "NOMAD_TOKEN="+token)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nomad %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// poll calls f every 250 ms until it reports done or timeout passes.
func poll(t *testing.T, timeout time.Duration, what string, f func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := f()
		if ok {
			return
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s (last error: %v)", what, timeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func statusOf(err error) int {
	code, _ := response(err)
	return code
}

func batchJob(id, pool string) *api.Job {
	job := api.NewBatchJob(id, id, "global", 50)
	job.Datacenters = []string{"*"}
	job.NodePool = &pool
	task := api.NewTask("t", "raw_exec").SetConfig("command", "/bin/sh").SetConfig("args", []string{"-c", "echo ok"})
	task.Require(&api.Resources{CPU: new(50), MemoryMB: new(32)})
	return job.AddTaskGroup(api.NewTaskGroup("g", 1).AddTask(task))
}

// TestRealNomad bootstraps a real Nomad server (1.6.3 here) with ACLs enabled,
// applies the policies, pools and tokens twice, then starts a client in pool
// batch and checks what each token may do. The subtests build on each other.
func TestRealNomad(t *testing.T) {
	bin := nomadBinary(t)
	root := t.TempDir()
	// Nomad clients running as root leave tmpfs mounts in their alloc dirs;
	// this runs after the agents stopped and before root is removed.
	t.Cleanup(func() { unmountUnder(t, root) })

	sp := newPorts(t)
	startAgent(t, bin, filepath.Join(root, "server"), commonConfig("acl-test-server", filepath.Join(root, "server", "data"), sp)+`
server {
  enabled          = true
  bootstrap_expect = 1
}
`)
	addr := fmt.Sprintf("http://%s:%d", testIP, sp.http)
	c, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	start := time.Now()
	if err := New(c).WaitLeader(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("leader after %v", time.Since(start).Round(time.Millisecond))

	mgmt := NewManagementSecret()
	mgmtQ := &api.QueryOptions{AuthToken: mgmt}

	ok := t.Run("Bootstrap", func(t *testing.T) {
		tok, err := New(c).Bootstrap(ctx, mgmt)
		if err != nil {
			t.Fatal(err)
		}
		if tok.SecretID != mgmt || tok.Type != "management" {
			t.Fatalf("bootstrap token %s type %s, want our secret, management", tok.SecretID, tok.Type)
		}
		again, err := New(c).Bootstrap(ctx, mgmt)
		if err != nil {
			t.Fatalf("second bootstrap with the same secret: %v", err)
		}
		if again.AccessorID != tok.AccessorID {
			t.Errorf("second bootstrap returned token %s, want %s", again.AccessorID, tok.AccessorID)
		}

		before, _, err := c.ACLTokens().List(mgmtQ)
		if err != nil {
			t.Fatal(err)
		}
		other := NewManagementSecret()
		_, err = New(c).Bootstrap(ctx, other)
		if !errors.Is(err, ErrBootstrappedElsewhere) {
			t.Fatalf("bootstrap with another secret: %v, want ErrBootstrappedElsewhere", err)
		}
		if !regexp.MustCompile(`write \d+ into <data_dir>/server/acl-bootstrap-reset`).MatchString(err.Error()) {
			t.Errorf("message lacks the reset procedure: %v", err)
		}
		t.Logf("foreign bootstrap: %v", err)
		after, _, err := c.ACLTokens().List(mgmtQ)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(before, after); d != "" {
			t.Errorf("refused bootstrap changed the tokens (-before +after):\n%s", d)
		}
		// A secret Nomad does not know: 404 "ACL token not found" on 1.6,
		// 403 on newer Nomads; TokenSelf takes both as "not a token".
		if _, _, err := c.ACLTokens().Self(&api.QueryOptions{AuthToken: other}); statusOf(err) != http.StatusForbidden && statusOf(err) != http.StatusNotFound {
			t.Errorf("the other secret: %v, want 403 or 404", err)
		}
		if tok, err := NewAPI(c).TokenSelf(ctx, other); tok != nil || err != nil {
			t.Errorf("TokenSelf(the other secret) = %v, %v; want nil, nil", tok, err)
		}
	})
	if !ok {
		return
	}

	var secrets map[string]string
	custom := []Pool{{Name: "gpu", Description: "GPU nodes"}}
	ok = t.Run("Apply", func(t *testing.T) {
		start := time.Now()
		res, err := New(c).Apply(ctx, mgmt, custom)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("first Apply took %v", time.Since(start).Round(time.Millisecond))
		want := Result{
			Policies: map[string]Action{PolicyAnonymous: Created, PolicyReadonly: Created, PolicyDeployer: Created, PolicyOpsAdmin: Created},
			Pools:    map[string]Action{"warm": Created, "batch": Created, "special": Created, "gpu": Created},
			Tokens:   map[string]Action{PolicyReadonly: Created, PolicyDeployer: Created, PolicyOpsAdmin: Created},
		}
		if d := cmp.Diff(want, res, cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Secrets" }, cmp.Ignore())); d != "" {
			t.Errorf("Apply (-want +got):\n%s", d)
		}
		secrets = res.Secrets
		for _, p := range tokenPolicies {
			if !validUUID.MatchString(secrets[p]) {
				t.Fatalf("secret for %s: %q", p, secrets[p])
			}
			self, _, err := c.ACLTokens().Self(&api.QueryOptions{AuthToken: secrets[p]})
			if err != nil {
				t.Fatalf("%s token: %v", p, err)
			}
			if self.Name != TokenName(p) || self.Type != "client" || !slices.Equal(self.Policies, []string{p}) {
				t.Errorf("%s token: %+v", p, self)
			}
		}

		var policies []api.ACLPolicyListStub
		if err := json.Unmarshal(runCLI(t, bin, addr, mgmt, "acl", "policy", "list", "-json"), &policies); err != nil {
			t.Fatal(err)
		}
		gotPolicies := map[string]string{}
		for _, p := range policies {
			gotPolicies[p.Name] = p.Description
		}
		wantPolicies := map[string]string{}
		for _, p := range Policies() {
			wantPolicies[p.Name] = p.Description
		}
		if d := cmp.Diff(wantPolicies, gotPolicies); d != "" {
			t.Errorf("nomad acl policy list (-want +got):\n%s", d)
		}

		var pools []api.NodePool
		if err := json.Unmarshal(runCLI(t, bin, addr, mgmt, "node", "pool", "list", "-json"), &pools); err != nil {
			t.Fatal(err)
		}
		gotPools := map[string]string{}
		for _, p := range pools {
			gotPools[p.Name] = p.Description
		}
		for _, p := range append(DefaultPools(), custom...) {
			if gotPools[p.Name] != p.Description {
				t.Errorf("nomad node pool list: %s has %q, want %q", p.Name, gotPools[p.Name], p.Description)
			}
		}
	})
	if !ok {
		return
	}

	ok = t.Run("ApplyAgain", func(t *testing.T) {
		res, err := New(c).Apply(ctx, mgmt, custom)
		if err != nil {
			t.Fatal(err)
		}
		if res.Changed() {
			t.Errorf("second Apply changed something: %+v", res)
		}
		if d := cmp.Diff(secrets, res.Secrets); d != "" {
			t.Errorf("second Apply returned other secrets (-first +second):\n%s", d)
		}
		tokens, _, err := c.ACLTokens().List(mgmtQ)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range tokenPolicies {
			n := 0
			for _, tok := range tokens {
				if tok.Name == TokenName(p) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d tokens named %s, want 1", n, TokenName(p))
			}
		}

		// A policy changed behind our back is put back, and only it.
		ro := Policies()[1]
		ro.Description = "edited by hand"
		if _, err := c.ACLPolicies().Upsert(&api.ACLPolicy{Name: ro.Name, Description: ro.Description, Rules: ro.Rules}, &api.WriteOptions{AuthToken: mgmt}); err != nil {
			t.Fatal(err)
		}
		res, err = New(c).Apply(ctx, mgmt, custom)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]Action{PolicyAnonymous: Unchanged, PolicyReadonly: Updated, PolicyDeployer: Unchanged, PolicyOpsAdmin: Unchanged}
		if d := cmp.Diff(want, res.Policies); d != "" {
			t.Errorf("Apply after an edit (-want +got):\n%s", d)
		}
	})
	if !ok {
		return
	}

	jobID := "acl-deployer-batch"
	ok = t.Run("DeployerRunsBatchJob", func(t *testing.T) {
		// The client starts once the pools exist and the server is ready,
		// as the daemon does.
		cp := newPorts(t)
		clientDir := filepath.Join(root, "client")
		start := time.Now()
		startAgent(t, bin, clientDir, commonConfig("acl-test-client", filepath.Join(clientDir, "data"), cp)+fmt.Sprintf(`
client {
  enabled   = true
  servers   = ["%s:%d"]
  node_pool = "batch"
  options = {
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
  }
}

plugin "raw_exec" {
  config {
    enabled = true
  }
}
`, testIP, sp.rpc))
		poll(t, 60*time.Second, "client ready in pool batch", func() (bool, error) {
			nodes, _, err := c.Nodes().List(mgmtQ)
			for _, n := range nodes {
				if n.NodePool == "batch" && n.Status == "ready" && n.Drivers["raw_exec"] != nil && n.Drivers["raw_exec"].Healthy {
					return true, nil
				}
			}
			return false, err
		})
		t.Logf("client ready after %v", time.Since(start).Round(time.Millisecond))

		start = time.Now()
		deployer := secrets[PolicyDeployer]
		if _, _, err := c.Jobs().Register(batchJob(jobID, "batch"), &api.WriteOptions{AuthToken: deployer}); err != nil {
			t.Fatalf("deployer registers a job: %v", err)
		}
		poll(t, 60*time.Second, "allocation complete", func() (bool, error) {
			allocs, _, err := c.Jobs().Allocations(jobID, false, &api.QueryOptions{AuthToken: deployer})
			for _, a := range allocs {
				switch a.ClientStatus {
				case "complete":
					return true, nil
				case "failed", "lost":
					t.Fatalf("allocation %s %s: %+v", a.ID, a.ClientStatus, a.TaskStates)
				}
			}
			return false, err
		})
		t.Logf("batch job complete %v after submission", time.Since(start).Round(time.Millisecond))
	})
	if !ok {
		return
	}

	ok = t.Run("Permissions", func(t *testing.T) {
		job := batchJob("acl-forbidden", "batch")

		// No token: the anonymous policy.
		if _, _, err := c.Jobs().Register(job, &api.WriteOptions{}); statusOf(err) != http.StatusForbidden {
			t.Errorf("anonymous Register: %v, want 403", err)
		}
		jobs, _, err := c.Jobs().List(&api.QueryOptions{})
		if err != nil {
			t.Fatalf("anonymous job list: %v", err)
		}
		if len(jobs) != 1 || jobs[0].ID != jobID || jobs[0].Status != "dead" {
			t.Errorf("anonymous job list: %+v, want %s, dead", jobs, jobID)
		}
		if _, _, err := c.Jobs().Info(jobID, &api.QueryOptions{}); statusOf(err) != http.StatusForbidden {
			t.Errorf("anonymous reads a job spec: %v, want 403", err)
		}
		if _, _, err := c.Nodes().List(&api.QueryOptions{}); err != nil {
			t.Errorf("anonymous node list: %v", err)
		}
		if _, err := c.Raw().Query("/v1/agent/self", new(map[string]any), &api.QueryOptions{}); statusOf(err) != http.StatusForbidden {
			t.Errorf("anonymous reads the agent configuration: %v, want 403", err)
		}

		ro := secrets[PolicyReadonly]
		if _, _, err := c.Jobs().Register(job, &api.WriteOptions{AuthToken: ro}); statusOf(err) != http.StatusForbidden {
			t.Errorf("readonly Register: %v, want 403", err)
		}
		if jobs, _, err := c.Jobs().List(&api.QueryOptions{AuthToken: ro}); err != nil || len(jobs) != 1 {
			t.Errorf("readonly job list: %v, %+v", err, jobs)
		}
		if _, _, err := c.Jobs().Info(jobID, &api.QueryOptions{AuthToken: ro}); err != nil {
			t.Errorf("readonly reads a job spec: %v", err)
		}

		dep := secrets[PolicyDeployer]
		if _, err := c.NodePools().Register(&api.NodePool{Name: "sneaky"}, &api.WriteOptions{AuthToken: dep}); statusOf(err) != http.StatusForbidden {
			t.Errorf("deployer registers a node pool: %v, want 403", err)
		}

		ops := secrets[PolicyOpsAdmin]
		if _, _, err := c.ACLTokens().List(&api.QueryOptions{AuthToken: ops}); statusOf(err) != http.StatusForbidden {
			t.Errorf("ops-admin lists ACL tokens: %v, want 403", err)
		}
		if _, _, err := c.Operator().SchedulerGetConfiguration(&api.QueryOptions{AuthToken: ops}); err != nil {
			t.Errorf("ops-admin reads the scheduler configuration: %v", err)
		}
		if _, _, err := c.Operator().AutopilotServerHealth(&api.QueryOptions{AuthToken: ro}); err != nil {
			t.Errorf("readonly reads server health: %v", err)
		}
		// Raft peers stay with the management token whatever a policy says.
		if _, err := c.Operator().RaftGetConfiguration(&api.QueryOptions{AuthToken: ops}); statusOf(err) != http.StatusForbidden {
			t.Errorf("ops-admin reads the Raft configuration: %v, want 403", err)
		}
	})
	if !ok {
		return
	}

	// What each policy may do, against the real Nomad: the table of
	// SECURITY.md. Each action is one request; denied means 403, allowed
	// anything else (an action on something that does not exist answers
	// 404 once the policy let it through).
	ok = t.Run("PolicyTable", func(t *testing.T) {
		const D, A = false, true
		missing := "00000000-0000-4000-8000-000000000000"
		actions := []struct {
			name  string
			do    func(token string) error
			allow [5]bool // anonymous, readonly, deployer, ops-admin, management
		}{
			{"list jobs", func(tok string) error { _, _, err := c.Jobs().List(&api.QueryOptions{AuthToken: tok}); return err },
				[5]bool{A, A, A, A, A}},
			{"read a job", func(tok string) error {
				_, _, err := c.Jobs().Info(jobID, &api.QueryOptions{AuthToken: tok})
				return err
			},
				[5]bool{D, A, A, A, A}},
			{"plan a job", func(tok string) error {
				_, _, err := c.Jobs().Plan(batchJob("acl-table", "batch"), false, &api.WriteOptions{AuthToken: tok})
				return err
			}, [5]bool{D, D, A, A, A}},
			{"write a node pool", func(tok string) error {
				_, err := c.NodePools().Delete("no-such-pool", &api.WriteOptions{AuthToken: tok})
				return err
			}, [5]bool{D, D, D, A, A}},
			{"drain a node", func(tok string) error {
				_, err := c.Nodes().UpdateDrain(missing, nil, false, &api.WriteOptions{AuthToken: tok})
				return err
			}, [5]bool{D, D, D, A, A}},
			{"read the agent's configuration", func(tok string) error {
				_, err := c.Raw().Query("/v1/agent/self", new(map[string]any), &api.QueryOptions{AuthToken: tok})
				return err
			}, [5]bool{D, A, D, A, A}},
			{"change the scheduler configuration", func(tok string) error {
				cfg, _, err := c.Operator().SchedulerGetConfiguration(&api.QueryOptions{AuthToken: mgmt})
				if err != nil {
					t.Fatal(err)
				}
				_, _, err = c.Operator().SchedulerSetConfiguration(cfg.SchedulerConfig, &api.WriteOptions{AuthToken: tok})
				return err
			}, [5]bool{D, D, D, A, A}},
			{"list ACL tokens", func(tok string) error { _, _, err := c.ACLTokens().List(&api.QueryOptions{AuthToken: tok}); return err },
				[5]bool{D, D, D, D, A}},
			{"read an ACL token's secret", func(tok string) error {
				_, _, err := c.ACLTokens().Info(missing, &api.QueryOptions{AuthToken: tok})
				return err
			}, [5]bool{D, D, D, D, A}},
			{"save a Raft snapshot", func(tok string) error {
				r, err := c.Operator().Snapshot(&api.QueryOptions{AuthToken: tok})
				if err == nil {
					r.Close()
				}
				return err
			}, [5]bool{D, D, D, D, A}},
			{"read the Raft configuration", func(tok string) error {
				_, err := c.Operator().RaftGetConfiguration(&api.QueryOptions{AuthToken: tok})
				return err
			}, [5]bool{D, D, D, D, A}},
		}
		tokens := []struct{ name, secret string }{
			{"anonymous", ""}, {PolicyReadonly, secrets[PolicyReadonly]}, {PolicyDeployer, secrets[PolicyDeployer]},
			{PolicyOpsAdmin, secrets[PolicyOpsAdmin]}, {"management", mgmt},
		}
		for _, a := range actions {
			for i, tok := range tokens {
				err := a.do(tok.secret)
				denied := statusOf(err) == http.StatusForbidden
				if denied == a.allow[i] {
					t.Errorf("%s with the %s token: %v; want allowed %v", a.name, tok.name, err, a.allow[i])
				}
			}
		}
	})
	if !ok {
		return
	}

	// The reset procedure ErrBootstrappedElsewhere describes works as
	// described: one more bootstrap, with our secret, old tokens kept.
	t.Run("ResetProcedure", func(t *testing.T) {
		other := NewManagementSecret()
		_, err := New(c).Bootstrap(ctx, other)
		m := regexp.MustCompile(`write (\d+) into`).FindStringSubmatch(fmt.Sprint(err))
		if !errors.Is(err, ErrBootstrappedElsewhere) || m == nil {
			t.Fatalf("bootstrap with another secret: %v", err)
		}
		reset := filepath.Join(root, "server", "data", "server", "acl-bootstrap-reset")
		if err := os.WriteFile(reset, []byte(m[1]), 0o600); err != nil {
			t.Fatal(err)
		}
		tok, err := New(c).Bootstrap(ctx, other)
		if err != nil || tok.SecretID != other {
			t.Fatalf("bootstrap after the reset: %v", err)
		}
		for _, secret := range []string{mgmt, secrets[PolicyDeployer]} {
			if _, _, err := c.ACLTokens().Self(&api.QueryOptions{AuthToken: secret}); err != nil {
				t.Errorf("a token from before the reset: %v", err)
			}
		}
	})
}

// unmountUnder unmounts everything mounted below dir, deepest first.
func unmountUnder(t *testing.T, dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return // not Linux
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			points = append(points, fields[4])
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		if err := unmount(p); err != nil {
			t.Logf("unmount %s: %v", p, err)
		}
	}
}
