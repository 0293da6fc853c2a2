package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
)

// serverTokenFile runs token create and keeps the token in a file of dir.
func serverTokenFile(t *testing.T, dir string) (certs.Token, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := Run([]string{"token", "create"}, &out, &errOut); code != exitOK {
		t.Fatalf("token create: %d %s", code, errOut.String())
	}
	server, err := certs.ParseToken(out.String())
	if err != nil {
		t.Fatal(err)
	}
	serverFile := filepath.Join(dir, "server")
	if err := os.WriteFile(serverFile, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return server, serverFile
}

func TestTokenClient(t *testing.T) {
	dir := t.TempDir()
	server, serverFile := serverTokenFile(t, dir)
	client := server.Client(time.Time{})
	clientFile := filepath.Join(dir, "client")
	if err := os.WriteFile(clientFile, []byte(client.Encode()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		args    []string
		code    int
		expires time.Time // of the printed token
		stderr  string
	}{
		{"no expiry", []string{"-token-file", serverFile}, exitOK, time.Time{}, "it does not expire"},
		{"a day", []string{"-token-file", serverFile, "-ttl", "24h"}, exitOK, now.Add(24 * time.Hour), "until 2026-12-04T10:00:00Z"},
		{"no server token", nil, exitUsage, time.Time{}, "needs -token-file"},
		{"a client token", []string{"-token-file", clientFile}, exitError, time.Time{}, "this is a client token; this needs the cluster's server token"},
		{"missing file", []string{"-token-file", filepath.Join(dir, "nope")}, exitError, time.Time{}, "no such file"},
		{"negative ttl", []string{"-token-file", serverFile, "-ttl", "-1h"}, exitUsage, time.Time{}, "-ttl -1h is negative"},
		{"ttl too short", []string{"-token-file", serverFile, "-ttl", "5s"}, exitUsage, time.Time{}, "shorter than a minute"},
		{"bad ttl", []string{"-token-file", serverFile, "-ttl", "soon"}, exitUsage, time.Time{}, "invalid value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runTokenClient(tt.args, &stdout, &stderr, func() time.Time { return now })
			if code != tt.code || !strings.Contains(stderr.String(), tt.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tt.code, tt.stderr)
			}
			if strings.Contains(stderr.String(), server.Encode()[10:]) || strings.Contains(stderr.String(), client.Encode()[10:40]) {
				t.Fatal("stderr holds a token")
			}
			if code != exitOK {
				if stdout.Len() != 0 {
					t.Errorf("printed %q on failure", stdout.String())
				}
				return
			}
			c, err := certs.ParseClientToken(stdout.String())
			if err != nil {
				t.Fatal(err)
			}
			if err := server.CheckClient(c, now); err != nil {
				t.Errorf("the printed token does not check out: %v", err)
			}
			if !c.ExpiresAt().Equal(tt.expires) {
				t.Errorf("expires %v, want %v", c.ExpiresAt(), tt.expires)
			}
		})
	}
}

func TestTokenClientGeneration(t *testing.T) {
	server, serverFile := serverTokenFile(t, t.TempDir())
	var out, errOut bytes.Buffer
	if code := Run([]string{"token", "client", "-token-file", serverFile, "-generation", "2"}, &out, &errOut); code != exitOK {
		t.Fatalf("token client -generation 2: %d %s", code, errOut.String())
	}
	got, err := certs.ParseClientToken(out.String())
	if err != nil || got != server.ClientOf(2, time.Time{}) {
		t.Fatalf("token client -generation 2 printed another token (%v)", err)
	}
	if code := Run([]string{"token", "client", "-token-file", serverFile, "-generation", "4294967296"}, &out, &errOut); code != exitUsage {
		t.Errorf("-generation past 32 bits: exit %d", code)
	}
}

func TestTokenRotateRefuses(t *testing.T) {
	root := t.TempDir()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "rotating the server token is not available yet"},
		{[]string{"-client", "-grace", "-1m"}, "-grace -1m is negative"},
		{[]string{"-client", "-ttl", "10s"}, "shorter than a minute"},
		{[]string{"-client", "-root", root}, "runs where the agent of a Nomad server runs"},
	} {
		var out, errOut bytes.Buffer
		code := Run(append([]string{"token", "rotate"}, tt.args...), &out, &errOut)
		if code != exitUsage || !strings.Contains(errOut.String(), tt.want) || out.Len() != 0 {
			t.Errorf("token rotate %v: exit %d, %q, stdout %q; want 2 and %q", tt.args, code, errOut.String(), out.String(), tt.want)
		}
	}
}

func TestKeysRotateRefuses(t *testing.T) {
	root := t.TempDir()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "Usage: nomad-bootstrapd keys rotate"},
		{[]string{"rotate", "extra"}, `unexpected argument "extra"`},
		{[]string{"rotate", "-root", root}, "keys rotate runs where the agent of a Nomad server runs"},
	} {
		var out, errOut bytes.Buffer
		code := Run(append([]string{"keys"}, tt.args...), &out, &errOut)
		if code != exitUsage || !strings.Contains(errOut.String(), tt.want) || out.Len() != 0 {
			t.Errorf("keys %v: exit %d, %q, stdout %q; want 2 and %q", tt.args, code, errOut.String(), out.String(), tt.want)
		}
	}
}

func TestCARotateRefuses(t *testing.T) {
	root := t.TempDir()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"rotate", "extra"}, `unexpected argument "extra"`},
		{[]string{"rotate", "-cert", "c.pem"}, "needs -cert, -key and -chain together"},
		{[]string{"rotate", "-cert", "c.pem", "-key", "k.pem"}, "needs -cert, -key and -chain together"},
		{[]string{"rotate", "-root", root}, "ca rotate runs where the agent of a Nomad server runs"},
	} {
		var out, errOut bytes.Buffer
		code := Run(append([]string{"ca"}, tt.args...), &out, &errOut)
		if code != exitUsage || !strings.Contains(errOut.String(), tt.want) || out.Len() != 0 {
			t.Errorf("ca %v: exit %d, %q, stdout %q; want 2 and %q", tt.args, code, errOut.String(), out.String(), tt.want)
		}
	}
}
