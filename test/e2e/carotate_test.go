package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agent"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
)

// TestCARotation rotates the cluster CA of a running 5-node cluster of real
// Nomad that runs a service job: Nomad's leader answers at every poll
// (every 250 ms), no Nomad process restarts (same PIDs), the job's
// allocation is the same one, still running, and a `nomad alloc logs -f`
// started before the rotation still streams the task's lines after every
// reload. At the end every node's bundle holds the new CA alone, every
// certificate chains to it, a client that was down through the rotation
// catches up when it is back, a second rotation continues from the new CA,
// a third, cut short by the CA holder's agent stopping, is finished by the
// holder on its own once it is back, and a machine that joins afterwards
// gets its certificates from it. A fourth rotates to an intermediate of an
// offline root made with openssl: every bundle then holds the intermediate
// and the root, every certificate chains to the root, and ca rotate
// without another intermediate is refused. ca rotate refuses to run on a server that does not
// sign.
func TestCARotation(t *testing.T) {
	const prefix = "127.22.8"
	bin, dir := nomadBin(t), t.TempDir()
	serverToken, clientToken, procs := runningCluster(t, prefix, dir)
	s, _ := statusJSON(t, procs[0].root)
	holder := procs[slices.IndexFunc(procs, func(p *proc) bool { return p.name == s.Plan.CAHolder })]
	other := procs[slices.IndexFunc(procs, func(p *proc) bool { return p != holder && slices.Contains(s.Plan.Servers, p.name) })]
	oldFP := s.Plan.CAFingerprint
	pids := map[string]int{}
	for _, p := range procs {
		st, _ := statusJSON(t, p.root)
		if pids[p.name] = nomadChildPID(st); pids[p.name] == 0 {
			t.Fatalf("%s runs no Nomad: %+v", p.name, st.Nomad)
		}
	}

	// A service job on the warm client that prints a numbered line every
	// 200 ms.
	job := filepath.Join(dir, "ticker.nomad.hcl")
	os.WriteFile(job, []byte(`job "ticker" {
  node_pool = "default"
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done # `+filepath.Dir(dir)+`"]
      }
    }
  }
}
`), 0o644)
	dep := append(nomadEnv(holder.root, holder.addr), "NOMAD_TOKEN="+readToken(t, holder.root, "deployer"))
	if out, err := nomadCLI(t, bin, dep, "job", "run", "-detach", job); err != nil {
		t.Fatalf("job run: %v\n%s", err, out)
	}
	// The job is stopped at the end, through a server that is never
	// stopped, so that its task, executor and log monitor do not outlive
	// the cluster; a test that ends early stops it in its cleanup, which
	// runs before the cluster's (last registered first) but after the
	// agents started later stopped, and kills what outlives the stop.
	var once sync.Once
	stopJob := func() {
		once.Do(func() {
			env := append(nomadEnv(other.root, other.addr), "NOMAD_TOKEN="+readToken(t, holder.root, "deployer"))
			if out, err := nomadOnce(t, bin, env, "job", "stop", "-detach", "-purge", "ticker"); err != nil {
				t.Logf("job stop: %v\n%s", err, out)
			}
			task := "echo tick .*" + filepath.Dir(dir)
			gone := false
			for range 120 {
				if out, _ := exec.Command("pgrep", "-f", task).Output(); len(out) == 0 {
					gone = true
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			if !gone {
				t.Errorf("the service job's task outlived its stop")
				killTaskProcesses(t, filepath.Dir(dir))
				return
			}
			// The task's executor and log monitor end a moment after it;
			// one the client had no time to stop before the cluster goes
			// would outlive the test.
			for range 20 {
				if len(taskProcesses(filepath.Dir(dir))) == 0 {
					return
				}
				time.Sleep(500 * time.Millisecond)
			}
			killTaskProcesses(t, filepath.Dir(dir))
		})
	}
	t.Cleanup(stopJob)
	type alloc struct{ ID, ClientStatus, NodeName string }
	running := func() []alloc {
		out, err := nomadCLI(t, bin, dep, "job", "allocs", "-json", "ticker")
		if err != nil {
			return nil
		}
		var all, run []alloc
		json.Unmarshal([]byte(out), &all)
		for _, a := range all {
			if a.ClientStatus == "running" {
				run = append(run, a)
			}
		}
		return run
	}
	waitFor(t, 60*time.Second, "the service job to run", func() bool { return len(running()) == 1 })
	before := running()[0]

	// The log stream, from before the rotation; the CLI's own files are
	// copied, since the rotation replaces the node's.
	cli := filepath.Join(dir, "cli-tls")
	os.MkdirAll(cli, 0o700)
	tls := paths.New(holder.root).NomadTLSDir()
	env := slices.Clone(dep)
	for i, f := range []string{"ca.pem", "cli.pem", "cli-key.pem"} {
		b, err := os.ReadFile(filepath.Join(tls, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(cli, f), b, 0o600)
		env = append(env, []string{"NOMAD_CACERT=", "NOMAD_CLIENT_CERT=", "NOMAD_CLIENT_KEY="}[i]+filepath.Join(cli, f))
	}
	var stream syncBuffer
	follow := exec.Command(bin, "alloc", "logs", "-f", before.ID)
	follow.Env, follow.Stdout, follow.Stderr = env, &stream, &stream
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { follow.Process.Kill(); follow.Wait() })
	lines := func() int { return strings.Count(stream.String(), "tick ") }
	waitFor(t, 30*time.Second, "the log stream to show the task's lines", func() bool { return lines() > 5 })

	// A client that is down through the rotation catches up when it is
	// back.
	away := procs[4]
	away.stop(15)

	stop := pollLeaderOf(t, holder)
	stopRPC := pollRPC(t, other, readToken(t, holder.root, "readonly"))
	if _, stderr, code := run(t, "ca", "rotate", "-root", other.root); code != 1 || !strings.Contains(stderr, "run ca rotate on the CA holder") {
		t.Errorf("ca rotate on a server that does not sign: exit %d, %q", code, stderr)
	}
	began := time.Now()
	out, stderr, code := runWithin(t, 6*time.Minute, "ca", "rotate", "-json", "-root", holder.root)
	t.Logf("ca rotate took %s; the stream showed %d lines", time.Since(began).Round(time.Millisecond), lines())
	var ans agent.CAAnswer
	if code != 0 || json.Unmarshal([]byte(out), &ans) != nil || ans.Generation != 1 || ans.Fingerprint == oldFP || len(ans.Lagging) != 0 {
		explainCluster(t, procs)()
		t.Fatalf("ca rotate: exit %d, %q, %q", code, out, stderr)
	}
	afterRotation := lines()
	waitForOr(t, 30*time.Second, "the log stream started before the rotation to show new lines", func() bool {
		return lines() > afterRotation+5
	}, func() { t.Logf("the stream:\n%s", stream.String()) })
	polls := stop()
	if len(polls.leaders) != 1 || polls.leaders[""] > 0 || polls.n < 10 {
		t.Errorf("Nomad's leader during the rotation: %d polls, %v", polls.n, polls.leaders)
	}
	rpc := stopRPC()
	t.Logf("RPC through %s during the rotation: %d polls, %d answered with a stale connection's error after a reload, %d reset while %s reloaded its HTTP listener",
		other.name, rpc.n, rpc.eof, rpc.reset, other.name)
	if rpc.n < 10 || len(rpc.failures) > 0 {
		t.Errorf("RPC through %s during the rotation: %d polls, failures %v", other.name, rpc.n, rpc.failures)
	}

	// Every node trusts the new CA alone and holds certificates from it.
	checkCA := func(p *proc) {
		t.Helper()
		files := certs.TLSFiles{Dir: paths.New(p.root).NomadTLSDir()}
		cas, err := certs.ParseCertsPEM([]byte(readFile(t, files.CAPath())))
		if err != nil || len(cas) != 1 || certs.Fingerprint(cas[0]) != ans.Fingerprint {
			t.Errorf("%s: the bundle holds %d certificates, not the new CA alone (%v)", p.name, len(cas), err)
			return
		}
		roots := x509.NewCertPool()
		roots.AddCert(cas[0])
		st, _ := statusJSON(t, p.root)
		for _, role := range []certs.Role{certs.RoleServer, certs.RoleClient, certs.RoleCLI} {
			c, err := files.LoadCert(role)
			if err != nil {
				continue // not this node's role
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				t.Errorf("%s: its %s certificate does not chain to the new CA: %v", p.name, role, err)
			}
		}
		if st.Cluster == nil || st.Cluster.CA.Generation != ans.Generation || st.Cluster.CA.Rotating != "" {
			t.Errorf("%s: status shows the CA %+v", p.name, st.Cluster)
		}
	}
	back := start(t, away.root, away.name, away.args...)
	back.addr = away.addr
	waitForOr(t, 90*time.Second, "the client that was down through the rotation to run with the new CA", func() bool {
		st, _ := statusJSON(t, back.root)
		return st.Phase.String() == "running" && st.Cluster != nil && st.Cluster.CA.Generation == 1
	}, explainCluster(t, []*proc{back}))
	checkCA(back)
	for _, p := range procs {
		if p == away {
			continue
		}
		checkCA(p)
		if st, _ := statusJSON(t, p.root); nomadChildPID(st) != pids[p.name] {
			t.Errorf("%s's Nomad was restarted: pid %d, was %d", p.name, nomadChildPID(st), pids[p.name])
		}
		if strings.Contains(p.log.String(), "BEGIN EC PRIVATE KEY") || strings.Contains(p.log.String(), "PRIVATE KEY") {
			t.Errorf("%s logs a private key", p.name)
		}
	}
	if after := running(); len(after) != 1 || after[0].ID != before.ID {
		t.Errorf("the job's allocations after the rotation: %+v, before %+v", after, before)
	}
	// The CLI with the node's new files streams the logs too.
	if out, err := nomadOnce(t, bin, dep, "alloc", "logs", "-tail", "-n", "3", before.ID); err != nil || !strings.Contains(out, "tick ") {
		t.Errorf("nomad alloc logs after the rotation: %v\n%s", err, out)
	}

	// Another rotation continues from the new CA.
	out, stderr, code = runWithin(t, 6*time.Minute, "ca", "rotate", "-json", "-root", holder.root)
	var second agent.CAAnswer
	if code != 0 || json.Unmarshal([]byte(out), &second) != nil || second.Generation != 2 || second.Fingerprint == ans.Fingerprint {
		t.Fatalf("the second ca rotate: exit %d, %q, %q", code, out, stderr)
	}
	ans = second

	// A rotation cut short by the CA holder's agent stopping is finished by
	// the holder once it is back, on its own.
	cut := make(chan struct{})
	go func() {
		defer close(cut)
		run(t, "ca", "rotate", "-root", holder.root)
	}()
	waitFor(t, 60*time.Second, "the third rotation to begin", func() bool {
		st, _ := statusJSON(t, holder.root)
		return st.Cluster != nil && st.Cluster.CA.Generation == 3 && st.Cluster.CA.Rotating != ""
	})
	holder.stop(15)
	<-cut
	again := start(t, holder.root, holder.name, holder.args...)
	again.addr = holder.addr
	waitForOr(t, 120*time.Second, "the CA holder to finish the rotation cut short", func() bool {
		st, _ := statusJSON(t, again.root)
		return st.Cluster != nil && st.Cluster.CA.Generation == 3 && st.Cluster.CA.Rotating == ""
	}, explainCluster(t, []*proc{again}))
	if !strings.Contains(again.log.String(), "finishing a rotation of the cluster CA that was cut short") {
		t.Errorf("the CA holder did not say it finished the rotation cut short")
	}
	if st, _ := statusJSON(t, again.root); st.Cluster.CA.NextRotation.IsZero() {
		t.Errorf("the CA holder's status shows no next rotation of the CA")
	}
	nodes := append(slices.DeleteFunc(slices.Clone(procs), func(p *proc) bool { return p == holder || p == away }), again, back)
	prev := ans.Fingerprint
	waitForOr(t, 60*time.Second, "every node to trust the third CA alone", func() bool {
		fps := map[string]bool{}
		for _, p := range nodes {
			cas, err := certs.ParseCertsPEM([]byte(readFile(t, filepath.Join(paths.New(p.root).NomadTLSDir(), "ca.pem"))))
			if err != nil || len(cas) != 1 {
				return false
			}
			fps[certs.Fingerprint(cas[0])] = true
		}
		for fp := range fps {
			ans.Fingerprint = fp
		}
		return len(fps) == 1 && !fps[prev]
	}, explainCluster(t, nodes))
	ans.Generation = 3
	for _, p := range nodes {
		checkCA(p)
	}

	// A machine that joins now gets its certificates from the new CA.
	addr := prefix + ".6"
	args := append([]string{"-bind", addr, "-join", procs[0].addr, "-settle", "1s"}, realNomadArgs(bin, clientToken)(3)...)
	late := start(t, filepath.Join(dir, "node6"), "node6", args...)
	waitForOr(t, 90*time.Second, "a machine joining after the rotation to run", func() bool {
		st, _ := statusJSON(t, late.root)
		return st.Phase.String() == "running"
	}, explainCluster(t, []*proc{late}))
	checkCA(late)
	nodes = append(nodes, late)

	// The CA rotates to an intermediate of an offline root the same way;
	// the intermediate is then replaced only by another intermediate.
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Log("openssl is not installed: the rotation to an intermediate is not tried")
		return
	}
	root, rootKey := offlineRoot(t, dir, "root")
	inter, interKey := signedIntermediate(t, filepath.Join(dir, "intermediate"), serverToken, root, rootKey)
	if _, stderr, code := run(t, "ca", "rotate", "-cert", inter, "-key", interKey, "-chain", inter, "-root", again.root); code != 1 || !strings.Contains(stderr, "holds the certificate itself") {
		t.Errorf("ca rotate to an intermediate with a chain that is not its root: exit %d, %q", code, stderr)
	}
	out, stderr, code = runWithin(t, 6*time.Minute, "ca", "rotate", "-json", "-cert", inter, "-key", interKey, "-chain", root, "-root", again.root)
	var toInter agent.CAAnswer
	if code != 0 || json.Unmarshal([]byte(out), &toInter) != nil || toInter.Generation != 4 || len(toInter.Lagging) != 0 {
		t.Fatalf("ca rotate to an intermediate: exit %d, %q, %q", code, out, stderr)
	}
	interCert, _ := certs.ParseCertPEM([]byte(readFile(t, inter)))
	rootCert, _ := certs.ParseCertPEM([]byte(readFile(t, root)))
	if toInter.Fingerprint != certs.Fingerprint(interCert) {
		t.Errorf("ca rotate rotated to %s, not the intermediate %s", toInter.Fingerprint, certs.Fingerprint(interCert))
	}
	for _, p := range nodes {
		files := certs.TLSFiles{Dir: paths.New(p.root).NomadTLSDir()}
		cas, err := certs.ParseCertsPEM([]byte(readFile(t, files.CAPath())))
		if err != nil || len(cas) != 2 || certs.Fingerprint(cas[0]) != toInter.Fingerprint || certs.Fingerprint(cas[1]) != certs.Fingerprint(rootCert) {
			t.Errorf("%s: the bundle is not the intermediate and its root (%d certificates, %v)", p.name, len(cas), err)
			continue
		}
		roots, inters := x509.NewCertPool(), x509.NewCertPool()
		roots.AddCert(rootCert)
		inters.AddCert(interCert)
		for _, role := range []certs.Role{certs.RoleServer, certs.RoleClient, certs.RoleCLI} {
			if c, err := files.LoadCert(role); err == nil {
				if _, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
					t.Errorf("%s: its %s certificate does not chain to the offline root: %v", p.name, role, err)
				}
			}
		}
	}
	if _, stderr, code := run(t, "ca", "rotate", "-root", again.root); code != 1 || !strings.Contains(stderr, "whose key is not on this server") {
		t.Errorf("ca rotate of an intermediate without another: exit %d, %q", code, stderr)
	}
	if out, err := nomadOnce(t, bin, dep, "alloc", "logs", "-tail", "-n", "3", before.ID); err != nil || !strings.Contains(out, "tick ") {
		t.Errorf("nomad alloc logs after the rotation to an intermediate: %v\n%s", err, out)
	}
	stopJob()
}

// nomadOnce runs the nomad CLI, again when Nomad answered with a stale
// connection's error: a server forwarding to one that reloaded its TLS
// (SIGHUP) fails the first call on its pooled connection, and the next one
// succeeds (hashicorp/nomad#4413).
func nomadOnce(t *testing.T, bin string, env []string, args ...string) (string, error) {
	t.Helper()
	out, err := nomadCLI(t, bin, env, args...)
	if err != nil && staleRPC(out) {
		out, err = nomadCLI(t, bin, env, args...)
	}
	return out, err
}

// staleRPC reports whether Nomad's answer is the error of a pooled RPC
// connection that the server at its other end closed when it reloaded:
// "rpc error: EOF" on a read, a broken pipe or a reset on a write, or
// yamux's "stream closed" and "session shutdown", which Nomad's own
// helper.IsErrEOF counts as EOF and on which its pool drops the session.
func staleRPC(answer string) bool {
	if !strings.Contains(answer, "rpc error:") {
		return false
	}
	for _, stale := range []string{"EOF", "broken pipe", "connection reset by peer", "stream closed", "session shutdown"} {
		if strings.Contains(answer, stale) {
			return true
		}
	}
	return false
}

// rpcPolls is what pollRPC saw.
type rpcPolls struct {
	n, eof int
	// reset counts polls whose own connection the polled server reset
	// while it reloaded its HTTP listener (SIGHUP with new TLS files).
	reset    int
	failures []string // a poll that failed otherwise, or right after one that failed
}

// pollRPC lists Nomad's jobs through server p every 250 ms, which Nomad
// forwards to its leader over RPC, with the node's current bundle and CLI
// certificate each time, until the returned function is called. A poll
// answered with a stale connection's error after a reload counts as a
// failure only when the poll before failed too (hashicorp/nomad#4413: the
// first call on a pooled connection to a server that reloaded fails, and
// clears it); so does a poll whose connection p reset while it reloaded
// its own HTTP listener, which a client retries.
func pollRPC(t *testing.T, p *proc, token string) func() rpcPolls {
	t.Helper()
	tlsDir := paths.New(p.root).NomadTLSDir()
	get := func() (int, string, error) {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(readFile(t, filepath.Join(tlsDir, "ca.pem"))))
		cert, err := tls.LoadX509KeyPair(filepath.Join(tlsDir, "cli.pem"), filepath.Join(tlsDir, "cli-key.pem"))
		if err != nil {
			return 0, "", err
		}
		client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
		req, _ := http.NewRequest(http.MethodGet, "https://"+p.addr+":4646/v1/jobs", nil)
		req.Header.Set("X-Nomad-Token", token)
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return resp.StatusCode, string(body), nil
	}
	var polls rpcPolls
	lastFailed := false
	stop := pollEvery(t, func() {
		polls.n++
		code, body, err := get()
		switch {
		case err == nil && code == http.StatusOK:
			lastFailed = false
		case err == nil && code == http.StatusInternalServerError && staleRPC(body) && !lastFailed:
			polls.eof++
			lastFailed = true
		case err != nil && strings.Contains(err.Error(), "connection reset by peer") && !lastFailed:
			polls.reset++
			lastFailed = true
		default:
			polls.failures = append(polls.failures, fmt.Sprintf("poll %d: %d %q %v", polls.n, code, strings.TrimSpace(body), err))
		}
	})
	return func() rpcPolls {
		stop()
		return polls
	}
}

// killTaskProcesses kills what a Nomad client under scope left running for
// a task: the task and the executor, whose command lines name scope, and
// the log monitor, which holds the task's log files under it open.
func killTaskProcesses(t *testing.T, scope string) {
	t.Helper()
	for pid, args := range taskProcesses(scope) {
		t.Logf("killing the leftover process %d: %s", pid, args)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// taskProcesses returns, by PID with their command lines, what
// killTaskProcesses kills.
func taskProcesses(scope string) map[int]string {
	out := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := strings.ReplaceAll(string(cmdline), "\x00", " ")
		holds := strings.Contains(args, scope) && (strings.Contains(args, "echo tick") || strings.Contains(args, " executor "))
		if strings.HasSuffix(strings.TrimSpace(args), " logmon") {
			fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
			for _, fd := range fds {
				if target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); strings.HasPrefix(target, scope) {
					holds = true
					break
				}
			}
		}
		if holds {
			out[pid] = args
		}
	}
	return out
}
