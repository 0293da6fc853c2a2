package e2e

import (
	"bytes"
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nomadBin returns the real nomad binary: $NOMAD_BIN (set by make), else
// the one `make nomad` links under .cache. Without either the test is
// skipped, never faked.
func nomadBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("NOMAD_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("NOMAD_BIN=%s: %v", p, err)
		}
		return p
	}
	p, _ := filepath.Abs("../../.cache/nomad-v1.6.3")
	if _, err := os.Stat(p); err != nil {
		t.Skip("the real nomad is not built; run make nomad")
	}
	return p
}

// nomadEnv returns the environment for the nomad CLI on a server node.
func nomadEnv(root, addr string) []string {
	tls := filepath.Join(root, "etc", "nomad.d", "tls")
	return append(os.Environ(),
		"NOMAD_ADDR=https://"+addr+":4646",
		"NOMAD_CACERT="+filepath.Join(tls, "ca.pem"),
		"NOMAD_CLIENT_CERT="+filepath.Join(tls, "cli.pem"),
		"NOMAD_CLIENT_KEY="+filepath.Join(tls, "cli-key.pem"),
	)
}

// nomadCLI runs the real nomad CLI (bounded by 30 s).
func nomadCLI(t testing.TB, bin string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		return string(out), fmt.Errorf("nomad %v timed out", args)
	}
	return string(out), err
}

// realNomadArgs gives nodes 4 and 5 the client pools warm and batch, warm
// in Nomad's default node pool (the default) and batch isolated in its own;
// nodes 1-3 are the only server candidates. With clientToken set, nodes 4
// and 5 join with that client token instead of the server token.
func realNomadArgs(bin, clientToken string) func(i int) []string {
	return func(i int) []string {
		args := []string{"-min-members", "5", "-supervise", "process", "-nomad", bin, "-raw-exec"}
		switch i {
		case 3:
			args = append(args, "-role", "client", "-pool", "warm")
		case 4:
			args = append(args, "-role", "client", "-pool", "batch", "-isolate-pools")
		}
		if i >= 3 && clientToken != "" {
			args = append(args, "-token-file", clientToken)
		}
		return args
	}
}

// A cluster of three server-token and two client-token agents runs real
// Nomad with mTLS and ACLs: the client-token nodes are Nomad clients with
// certificates of the cluster's CA and hold none of the servers' secrets.
func TestRealNomadCluster(t *testing.T) {
	bin := nomadBin(t)
	token := newToken(t)
	clientToken := clientTokenFile(t, t.TempDir(), token)
	_, procs := clusterWith(t, token, "127.0.205", 5, realNomadArgs(bin, clientToken))
	defer func() {
		if t.Failed() {
			for _, p := range procs {
				out, _, _ := run(t, "status", "-root", p.root)
				t.Logf("%s:\n%s\nlog:\n%s", p.name, out, p.log.String())
			}
		}
	}()
	waitFor(t, 120*time.Second, "every agent to run a healthy Nomad", func() bool {
		for _, p := range procs {
			s, code := statusJSON(t, p.root)
			if code != 0 || s.Phase.String() != "running" {
				return false
			}
		}
		return true
	})
	var server *proc
	for _, p := range procs {
		s, _ := statusJSON(t, p.root)
		if s.Nomad == nil || !s.Nomad.Healthy || len(s.Nomad.Peers) != 3 || s.Nomad.Leader == "" {
			t.Errorf("%s: nomad status %+v; want healthy with a leader and 3 peers", p.name, s.Nomad)
		}
		if s.Node.Role == "server" && server == nil {
			server = p
		}
	}
	if server == nil {
		t.Fatal("no server")
	}
	tlsDir := filepath.Join(server.root, "etc", "nomad.d", "tls")
	url := "https://" + server.addr + ":4646/v1/status/peers"

	// The Nomad API answers only over TLS, and only to holders of a
	// certificate of the cluster's CA.
	plain, err := http.Get("http://" + server.addr + ":4646/v1/status/peers")
	if err == nil {
		body, _ := io.ReadAll(plain.Body)
		plain.Body.Close()
		if plain.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP answered 200: %s", body)
		}
	}
	caPEM, err := os.ReadFile(filepath.Join(tlsDir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	noCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if resp, err := noCert.Get(url); err == nil {
		resp.Body.Close()
		t.Errorf("TLS without a client certificate answered %s", resp.Status)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(tlsDir, "cli.pem"), filepath.Join(tlsDir, "cli-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	withCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
	resp, err := withCert.Get(url)
	if err != nil {
		t.Fatalf("mTLS request: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.Count(string(body), ":4647") != 3 {
		t.Errorf("mTLS peers: %s %s; want 3 peers", resp.Status, body)
	}

	checkNomadCLI(t, bin, server, procs)
	checkStatusAgreesWithNomad(t, bin, server)
	checkACL(t, bin, server, procs)
	checkClientTokenNodes(t, procs)

	// Restarting every agent keeps the plan and creates no duplicate
	// policy, token or pool.
	before, _ := statusJSON(t, server.root)
	for i, p := range procs {
		p.stop(syscall.SIGTERM)
		procs[i] = start(t, p.root, p.name, p.args...)
		procs[i].addr = p.addr
	}
	server = procs[slices.IndexFunc(procs, func(p *proc) bool { return p.name == server.name })]
	waitFor(t, 120*time.Second, "every restarted agent to run a healthy Nomad", func() bool {
		for _, p := range procs {
			if s, code := statusJSON(t, p.root); code != 0 || s.Phase.String() != "running" {
				return false
			}
		}
		return true
	})
	if after, _ := statusJSON(t, server.root); planKey(after.Plan) != planKey(before.Plan) {
		t.Errorf("plan after restarting every agent %s, before %s", planKey(after.Plan), planKey(before.Plan))
	}
	checkACL(t, bin, server, procs)

	// Stopping the agents stops every Nomad they started.
	for _, p := range procs {
		p.stop(syscall.SIGTERM)
	}
	for _, p := range procs {
		if out, _ := exec.Command("pgrep", "-f", p.root).Output(); len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("processes under %s survive their agent: %s", p.root, out)
		}
	}
}

// managementToken reads the management token a server stored.
func managementToken(t testing.TB, root string) string {
	t.Helper()
	return readToken(t, root, "management")
}

// checkNomadCLI checks the cluster as an operator would, with the nomad CLI.
func checkNomadCLI(t *testing.T, bin string, server *proc, procs []*proc) {
	t.Helper()
	env := append(nomadEnv(server.root, server.addr), "NOMAD_TOKEN="+managementToken(t, server.root))
	out, err := nomadCLI(t, bin, env, "server", "members")
	if err != nil {
		t.Fatalf("nomad server members: %v\n%s", err, out)
	}
	if n := strings.Count(out, "alive"); n != 3 || strings.Count(out, "true") != 1 {
		t.Errorf("nomad server members: %d alive, want 3 with one leader:\n%s", n, out)
	}
	var nodes string
	waitFor(t, 60*time.Second, "five ready Nomad nodes", func() bool {
		nodes, err = nomadCLI(t, bin, env, "node", "status", "-verbose")
		return err == nil && strings.Count(nodes, "ready") == 5
	})
	for _, want := range []struct{ name, pool, nodePool string }{{procs[3].name, "warm", "default"}, {procs[4].name, "batch", "batch"}} {
		id := ""
		for _, line := range strings.Split(nodes, "\n") {
			if f := strings.Fields(line); len(f) > 3 && strings.Contains(line, " "+want.name+" ") {
				id = f[0]
			}
		}
		if id == "" {
			t.Errorf("node %s missing from:\n%s", want.name, nodes)
			continue
		}
		info, err := nomadCLI(t, bin, env, "node", "status", "-verbose", id)
		if err != nil {
			t.Errorf("nomad node status %s: %v\n%s", id, err, info)
			continue
		}
		for _, w := range []string{`Node Pool\s+= ` + want.nodePool + `\n`, `Class\s+= ` + want.pool, `\n\s*pool\s+= ` + want.pool + `\n`} {
			if !regexp.MustCompile(w).MatchString(info) {
				t.Errorf("node %s lacks %q:\n%s", want.name, w, info)
			}
		}
	}
}

// checkStatusAgreesWithNomad compares `status -json` on a server with what
// `nomad server members` and `nomad node status` say.
func checkStatusAgreesWithNomad(t *testing.T, bin string, server *proc) {
	t.Helper()
	env := append(nomadEnv(server.root, server.addr), "NOMAD_TOKEN="+managementToken(t, server.root))
	var why string
	defer func() {
		if t.Failed() {
			t.Logf("last disagreement: %s", why)
		}
	}()
	waitFor(t, 30*time.Second, "status -json to agree with the nomad CLI", func() bool {
		members, err := nomadCLI(t, bin, env, "server", "members")
		if err != nil {
			why = fmt.Sprintf("nomad server members: %v\n%s", err, members)
			return false
		}
		var fromCLI []string
		for _, line := range strings.Split(strings.TrimSpace(members), "\n")[1:] {
			// Name  Address  Port  Status  Leader  ...
			if f := strings.Fields(line); len(f) >= 5 && !strings.HasPrefix(line, "==>") {
				fromCLI = append(fromCLI, strings.Join([]string{f[0], f[1], f[3], f[4]}, " "))
			}
		}
		nodes, err := nomadCLI(t, bin, env, "node", "status", "-json")
		if err != nil {
			why = fmt.Sprintf("nomad node status -json: %v\n%s", err, nodes)
			return false
		}
		var stubs []struct{ NodeClass, NodePool, Status string }
		if err := json.Unmarshal([]byte(nodes), &stubs); err != nil {
			why = fmt.Sprintf("nomad node status -json: %v", err)
			return false
		}
		// status counts clients by their pool, which is the node class.
		ready := map[string]int{}
		total := map[string]int{}
		for _, n := range stubs {
			pool := cmp.Or(n.NodeClass, n.NodePool)
			total[pool]++
			if n.Status == "ready" {
				ready[pool]++
			}
		}

		s, code := statusJSON(t, server.root)
		if code == 2 || s.Nomad == nil {
			why = "status has no Nomad section"
			return false
		}
		var fromStatus []string
		for _, sv := range s.Nomad.Servers {
			fromStatus = append(fromStatus, fmt.Sprintf("%s %s %s %v", sv.Name, sv.Address, sv.Status, sv.Leader))
		}
		slices.Sort(fromCLI)
		slices.Sort(fromStatus)
		if !slices.Equal(fromCLI, fromStatus) {
			why = fmt.Sprintf("servers: nomad server members %q, status %q", fromCLI, fromStatus)
			return false
		}
		if len(s.Nomad.Clients) != len(total) {
			why = fmt.Sprintf("pools: nomad node status %v, status %+v", total, s.Nomad.Clients)
			return false
		}
		for _, pc := range s.Nomad.Clients {
			if pc.Ready != ready[pc.Pool] || pc.Total != total[pc.Pool] {
				why = fmt.Sprintf("pool %s: nomad node status %d/%d ready, status %d/%d", pc.Pool, ready[pc.Pool], total[pc.Pool], pc.Ready, pc.Total)
				return false
			}
		}
		if ap := s.Nomad.Autopilot; ap == nil || !ap.Healthy || ap.Voters != 3 || ap.FailureTolerance != 1 {
			why = fmt.Sprintf("autopilot %+v, want healthy with 3 voters and failure tolerance 1", ap)
			return false
		}
		return true
	})
}

// checkACL checks what the servers set up in Nomad's ACL system.
func checkACL(t *testing.T, bin string, server *proc, procs []*proc) {
	t.Helper()
	mgmt := managementToken(t, server.root)
	env := append(nomadEnv(server.root, server.addr), "NOMAD_TOKEN="+mgmt)
	out, err := nomadCLI(t, bin, env, "acl", "policy", "list", "-json")
	if err != nil {
		t.Fatalf("nomad acl policy list: %v\n%s", err, out)
	}
	var policies []struct{ Name string }
	json.Unmarshal([]byte(out), &policies)
	var names []string
	for _, p := range policies {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	if want := []string{"anonymous", "deployer", "ops-admin", "readonly"}; !slices.Equal(names, want) {
		t.Errorf("policies %v, want %v", names, want)
	}
	out, err = nomadCLI(t, bin, env, "acl", "token", "list", "-json")
	if err != nil {
		t.Fatalf("nomad acl token list: %v\n%s", err, out)
	}
	var tokens []struct{ Name string }
	json.Unmarshal([]byte(out), &tokens)
	count := map[string]int{}
	for _, tk := range tokens {
		count[tk.Name]++
	}
	for _, name := range []string{"nomad-bootstrapd-readonly", "nomad-bootstrapd-deployer", "nomad-bootstrapd-ops-admin"} {
		if count[name] != 1 {
			t.Errorf("%d tokens named %s, want 1 (%v)", count[name], name, count)
		}
	}
	out, err = nomadCLI(t, bin, env, "node", "pool", "list", "-json")
	if err != nil {
		t.Fatalf("nomad node pool list: %v\n%s", err, out)
	}
	var pools []struct{ Name string }
	json.Unmarshal([]byte(out), &pools)
	var poolNames []string
	for _, p := range pools {
		poolNames = append(poolNames, p.Name)
	}
	for _, want := range []string{"warm", "batch", "special"} {
		if !slices.Contains(poolNames, want) {
			t.Errorf("node pool %s missing from %v", want, poolNames)
		}
	}

	// Every server stores the tokens, 0600; status says where, never what.
	for _, p := range procs {
		s, _ := statusJSON(t, p.root)
		if s.Node.Role != "server" {
			continue
		}
		if s.ACL == nil || s.ACL.State != "bootstrapped" {
			t.Errorf("%s: acl status %+v, want bootstrapped", p.name, s.ACL)
		}
		for _, name := range []string{"management", "readonly", "deployer", "ops-admin"} {
			fi, err := os.Stat(filepath.Join(p.root, "var", "lib", "nomad-bootstrapd", "acl", name+".token"))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: %s token: %v (mode %v)", p.name, name, err, fi.Mode().Perm())
			}
		}
		if js, _, _ := run(t, "status", "-json", "-root", p.root); strings.Contains(js, mgmt) {
			t.Errorf("%s: status prints the management token", p.name)
		}
	}

	// With the deployer token a raw_exec batch job in pool batch runs to
	// completion; the anonymous and readonly tokens cannot submit it.
	job := filepath.Join(t.TempDir(), "hello.nomad.hcl")
	os.WriteFile(job, []byte(`job "hello" {
  type      = "batch"
  node_pool = "batch"
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo hello from the batch pool"]
      }
    }
  }
}
`), 0o644)
	readonly := readToken(t, server.root, "readonly")
	deployer := readToken(t, server.root, "deployer")
	base := nomadEnv(server.root, server.addr)
	if out, err := nomadCLI(t, bin, base, "job", "run", "-detach", job); err == nil || !strings.Contains(out, "403") {
		t.Errorf("anonymous job run: err %v, want 403:\n%s", err, out)
	}
	if out, err := nomadCLI(t, bin, append(base, "NOMAD_TOKEN="+readonly), "job", "run", "-detach", job); err == nil || !strings.Contains(out, "403") {
		t.Errorf("readonly job run: err %v, want 403:\n%s", err, out)
	}
	if out, err := nomadCLI(t, bin, append(base, "NOMAD_TOKEN="+readonly), "job", "status"); err != nil {
		t.Errorf("readonly job status: %v\n%s", err, out)
	}
	dep := append(base, "NOMAD_TOKEN="+deployer)
	if out, err := nomadCLI(t, bin, dep, "job", "run", "-detach", job); err != nil {
		t.Fatalf("deployer job run: %v\n%s", err, out)
	}
	waitFor(t, 60*time.Second, "the batch job to complete", func() bool {
		out, err := nomadCLI(t, bin, dep, "job", "allocs", "-json", "hello")
		if err != nil {
			return false
		}
		var allocs []struct{ ClientStatus, NodeName string }
		json.Unmarshal([]byte(out), &allocs)
		for _, a := range allocs {
			if a.ClientStatus == "complete" && a.NodeName == procs[4].name {
				return true
			}
		}
		return false
	})

	// The production layout's own job, which chooses pool warm by
	// meta.pool and names no node_pool, runs on the warm client; so does
	// (somewhere) a job that names nothing at all.
	for _, j := range []struct{ file, job, node, status string }{
		{"testdata/seed-warm.nomad.hcl", "seed-warm", procs[3].name, "running"},
		{"testdata/plain.nomad.hcl", "plain", "", "complete"},
	} {
		abs, _ := filepath.Abs(j.file)
		if out, err := nomadCLI(t, bin, dep, "job", "run", "-detach", abs); err != nil {
			t.Fatalf("deployer job run %s: %v\n%s", j.file, err, out)
		}
		var last string
		waitForOr(t, 60*time.Second, "an allocation of job "+j.job+" "+j.status+" on "+cmp.Or(j.node, "any client"), func() bool {
			out, err := nomadCLI(t, bin, dep, "job", "allocs", "-json", j.job)
			if err != nil {
				last = out
				return false
			}
			var allocs []struct{ ClientStatus, NodeName string }
			json.Unmarshal([]byte(out), &allocs)
			last = fmt.Sprintf("%+v", allocs)
			for _, a := range allocs {
				if a.ClientStatus == j.status && (j.node == "" || a.NodeName == j.node) {
					return true
				}
			}
			return false
		}, func() {
			st, _ := nomadCLI(t, bin, dep, "job", "status", j.job)
			t.Logf("job %s: allocations %s\n%s", j.job, last, st)
		})
	}
	// Stop the service, so that its task and executor do not outlive the
	// cluster.
	if out, err := nomadCLI(t, bin, dep, "job", "stop", "-detach", "seed-warm"); err != nil {
		t.Fatalf("deployer job stop: %v\n%s", err, out)
	}
	waitFor(t, 60*time.Second, "job seed-warm to stop", func() bool {
		out, err := nomadCLI(t, bin, dep, "job", "allocs", "-json", "seed-warm")
		if err != nil {
			return false
		}
		var allocs []struct{ ClientStatus string }
		json.Unmarshal([]byte(out), &allocs)
		for _, a := range allocs {
			if a.ClientStatus == "running" || a.ClientStatus == "pending" {
				return false
			}
		}
		return true
	})
}

// checkClientTokenNodes checks that nodes 4 and 5, which joined with a
// client token, are Nomad clients and hold none of the servers' secrets
// anywhere under their roots: not the CA key, its escrow, an ACL token or
// Nomad's gossip key.
func checkClientTokenNodes(t *testing.T, procs []*proc) {
	t.Helper()
	for _, p := range procs[:3] {
		s, _ := statusJSON(t, p.root)
		if s.Node.Role != "server" {
			t.Errorf("%s (server token) is a %s", p.name, s.Node.Role)
		}
	}
	secrets := serverSecrets(t, procs[:3])
	for _, p := range procs[3:] {
		s, _ := statusJSON(t, p.root)
		if s.Node.Role != "client" || s.Nomad == nil || !s.Nomad.Healthy {
			t.Errorf("%s (client token): role %s, nomad %+v; want a healthy Nomad client", p.name, s.Node.Role, s.Nomad)
		}
		err := filepath.WalkDir(p.root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			for what, secret := range secrets {
				if slices.ContainsFunc(secretForms(secret), func(f []byte) bool { return bytes.Contains(b, f) }) {
					t.Errorf("%s (client token) holds %s in %s", p.name, what, path)
				}
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
}

// serverSecrets returns the secrets the servers hold, by what they are:
// the CA key, the escrow, every ACL token and Nomad's gossip key.
func serverSecrets(t *testing.T, servers []*proc) map[string]string {
	t.Helper()
	secrets := map[string]string{}
	for _, p := range servers {
		state := filepath.Join(p.root, "var", "lib", "nomad-bootstrapd")
		for _, f := range []string{"ca/ca-key.pem", "ca/ca-key.sealed", "acl/management.token", "acl/ops-admin.token", "acl/deployer.token", "acl/readonly.token"} {
			if b, err := os.ReadFile(filepath.Join(state, f)); err == nil && len(b) > 30 {
				secrets[p.name+":"+f] = strings.TrimSpace(string(b))
			}
		}
		conf, err := os.ReadFile(filepath.Join(p.root, "etc", "nomad.d", "nomad-bootstrapd-server.hcl"))
		if err != nil {
			t.Fatal(err)
		}
		if _, key, ok := strings.Cut(string(conf), "encrypt"); ok {
			if _, v, ok := strings.Cut(key, "\""); ok {
				v, _, _ = strings.Cut(v, "\"")
				secrets[p.name+": Nomad's gossip key"] = v
			}
		}
	}
	if len(secrets) < 6 {
		t.Fatalf("found only %d of the servers' secrets to look for: %v", len(secrets), slices.Collect(maps.Keys(secrets)))
	}
	return secrets
}

// secretForms returns the forms in which secret could be held: itself,
// and for a PEM key its DER and the first line of its base64 body (which
// JSON leaves as it is), for base64 its bytes.
func secretForms(secret string) [][]byte {
	forms := [][]byte{[]byte(secret)}
	if block, _ := pem.Decode([]byte(secret)); block != nil {
		forms = append(forms, block.Bytes)
		body := strings.Split(secret, "\n")
		if len(body) > 2 {
			forms = append(forms, []byte(body[1]))
		}
	} else if b, err := base64.StdEncoding.DecodeString(secret); err == nil && len(b) >= 16 {
		forms = append(forms, b)
	}
	return forms
}

func readToken(t testing.TB, root, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "var", "lib", "nomad-bootstrapd", "acl", name+".token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
