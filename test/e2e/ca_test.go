package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openssl(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
		t.Fatalf("openssl %v: %v\n%s", args, err, out)
	}
}

// offlineRoot makes a root CA with openssl in dir.
func offlineRoot(t *testing.T, dir, name string) (cert, key string) {
	t.Helper()
	cert, key = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	openssl(t, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", key, "-out", cert, "-days", "3650", "-subj", "/CN="+name,
		"-addext", "basicConstraints=critical,CA:true", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
	return cert, key
}

// signedIntermediate makes an intermediate's key and request with ca csr
// in dir, for the cluster of tokenFile's token, and signs it with the root
// with openssl; it returns the intermediate's certificate and key files.
func signedIntermediate(t *testing.T, dir, tokenFile, root, rootKey string) (cert, key string) {
	t.Helper()
	if out, stderr, code := run(t, "ca", "csr", "-dir", dir, "-token-file", tokenFile); code != 0 {
		t.Fatalf("ca csr exited %d: %s %s", code, out, stderr)
	}
	key = filepath.Join(dir, "intermediate-key.pem")
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("intermediate key: %v", err)
	}
	ext := filepath.Join(dir, "ext")
	os.WriteFile(ext, []byte("basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n"), 0o644)
	cert = filepath.Join(dir, "intermediate.pem")
	openssl(t, "x509", "-req", "-in", filepath.Join(dir, "intermediate.csr"), "-CA", root, "-CAkey", rootKey,
		"-days", "1825", "-sha256", "-out", cert, "-extfile", ext)
	time.Sleep(1100 * time.Millisecond) // openssl starts the certificate on the current second
	return cert, key
}

func TestOfflineRootIntermediate(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(newToken(t)+"\n"), 0o600)
	root, rootKey := offlineRoot(t, dir, "root")

	inter, interKey := signedIntermediate(t, filepath.Join(dir, "ca"), tokenFile, root, rootKey)

	writeConfig := func(chain string) string {
		p := filepath.Join(dir, fmt.Sprintf("config-%d.hcl", time.Now().UnixNano()))
		os.WriteFile(p, []byte(fmt.Sprintf("ca {\n  cert_file  = %q\n  key_file   = %q\n  chain_file = %q\n}\n",
			inter, interKey, chain)), 0o600)
		return p
	}

	// A chain to another root is refused at start.
	other, _ := offlineRoot(t, dir, "other")
	_, stderr, code := run(t, "agent", "-root", filepath.Join(dir, "refused"), "-config", writeConfig(other),
		"-token-file", tokenFile, "-bind", "127.0.206.9", "-supervise", "none")
	if code != 1 || !strings.Contains(stderr, "intermediate CA") {
		t.Errorf("a chain to another root: exit %d, %q; want 1 and a message about the intermediate CA", code, stderr)
	}

	cfg := writeConfig(root)
	_, procs := cluster(t, 206, 3, "-config", cfg)
	defer func() {
		if t.Failed() {
			for _, p := range procs {
				out, _, _ := run(t, "status", "-root", p.root)
				t.Logf("%s:\n%s\n%s", p.name, out, p.log.String())
			}
		}
	}()
	waitFor(t, 60*time.Second, "every node to be certified", func() bool {
		for _, p := range procs {
			if s, code := statusJSON(t, p.root); code == 2 || s.Certs == nil {
				return false
			}
		}
		return true
	})
	for _, p := range procs {
		s, _ := statusJSON(t, p.root)
		role := "client"
		if s.Node.Role == "server" {
			role = "server"
		}
		tlsDir := filepath.Join(p.root, "etc", "nomad.d", "tls")
		bundle, _ := os.ReadFile(filepath.Join(tlsDir, "ca.pem"))
		rootPEM, _ := os.ReadFile(root)
		if !strings.Contains(string(bundle), strings.TrimSpace(string(rootPEM))) {
			t.Errorf("%s: ca.pem does not carry the root", p.name)
		}
		out, err := exec.Command("openssl", "verify", "-CAfile", root, "-untrusted", inter, filepath.Join(tlsDir, role+".pem")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "OK") {
			t.Errorf("%s: openssl verify: %v %s", p.name, err, out)
		}
	}
}
