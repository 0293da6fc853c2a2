package certs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestTLSFiles(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, now)
	key := testKey(t, "p256")
	keyPEM, err := MarshalKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	der, err := ca.Sign(mustCSR(t, key, nil), serverID, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := EncodeCertPEM(der)
	f := TLSFiles{Dir: filepath.Join(t.TempDir(), "etc", "nomad.d", "tls")}

	writes := []struct {
		name  string
		write func() (bool, error)
		path  string
		mode  os.FileMode
		data  []byte
	}{
		{"ca.pem", func() (bool, error) { return f.WriteCA(ca.BundlePEM()) }, "ca.pem", 0o644, ca.BundlePEM()},
		{"server.pem", func() (bool, error) { return f.WriteCert(RoleServer, certPEM) }, "server.pem", 0o644, certPEM},
		{"server-key.pem", func() (bool, error) { return f.WriteKey(RoleServer, keyPEM) }, "server-key.pem", 0o600, keyPEM},
		{"cli.pem", func() (bool, error) { return f.WriteCert(RoleCLI, certPEM) }, "cli.pem", 0o644, certPEM},
		{"cli-key.pem", func() (bool, error) { return f.WriteKey(RoleCLI, keyPEM) }, "cli-key.pem", 0o600, keyPEM},
	}
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			changed, err := w.write()
			if err != nil || !changed {
				t.Fatalf("first write: changed %v, %v; want true, nil", changed, err)
			}
			path := filepath.Join(f.Dir, w.path)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != w.mode {
				t.Errorf("mode %v, want %v", fi.Mode().Perm(), w.mode)
			}
			if got := readFile(t, path); !bytes.Equal(got, w.data) {
				t.Error("file content differs")
			}
			changed, err = w.write()
			if err != nil || changed {
				t.Errorf("identical rewrite: changed %v, %v; want false, nil", changed, err)
			}
			if fi2, _ := os.Stat(path); !os.SameFile(fi, fi2) || !fi2.ModTime().Equal(fi.ModTime()) {
				t.Error("identical rewrite replaced the file")
			}
			// A changed mode is repaired.
			if err := os.Chmod(path, 0o666); err != nil {
				t.Fatal(err)
			}
			if changed, err := w.write(); err != nil || !changed {
				t.Errorf("rewrite after chmod: changed %v, %v; want true, nil", changed, err)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != w.mode {
				t.Errorf("mode after repair %v, want %v", fi.Mode().Perm(), w.mode)
			}
		})
	}
	if fi, err := os.Stat(f.Dir); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("directory: %v, %v; want mode 0755", fi, err)
	}

	got, err := f.LoadCert(RoleServer)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Raw, der) {
		t.Error("LoadCert returned another certificate")
	}
	k, err := f.LoadKey(RoleCLI)
	if err != nil || !publicKeysEqual(key.Public(), k.Public()) {
		t.Errorf("LoadKey: %v", err)
	}
	if _, err := f.LoadCert(RoleClient); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadCert of a missing file: %v, want ErrNotExist", err)
	}
	// The paths Nomad's config and the operator's environment use.
	paths := []string{f.CAPath(), f.CertPath(RoleCLI), f.KeyPath(RoleCLI), f.CertPath(RoleClient), f.KeyPath(RoleServer)}
	want := []string{"ca.pem", "cli.pem", "cli-key.pem", "client.pem", "server-key.pem"}
	for i, p := range paths {
		if p != filepath.Join(f.Dir, want[i]) {
			t.Errorf("path %d = %s, want %s", i, p, want[i])
		}
	}
}

func TestTLSFilesRefusals(t *testing.T) {
	f := TLSFiles{Dir: t.TempDir()}
	keyPEM, _ := MarshalKeyPEM(testKey(t, "p256"))
	if _, err := f.WriteKey("../../etc/shadow", keyPEM); err == nil {
		t.Error("WriteKey accepted an unknown role")
	}
	if _, err := f.WriteCert(RoleServer, keyPEM); err == nil {
		t.Error("WriteCert accepted a key as certificate")
	}
	if _, err := f.WriteKey(RoleServer, []byte("garbage")); err == nil {
		t.Error("WriteKey accepted garbage")
	}
	if _, err := f.WriteCA(nil); err == nil {
		t.Error("WriteCA accepted an empty bundle")
	}
	entries, _ := os.ReadDir(f.Dir)
	if len(entries) != 0 {
		t.Errorf("refused writes left %d files", len(entries))
	}
}
