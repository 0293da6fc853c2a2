package acl

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
)

func TestNewManagementSecret(t *testing.T) {
	a, b := NewManagementSecret(), NewManagementSecret()
	if a == b {
		t.Fatalf("two secrets are equal: %s", a)
	}
	for _, s := range []string{a, b} {
		u, err := uuid.Parse(s)
		if err != nil || !IsSecretID(s) {
			t.Fatalf("%q is not a UUID: %v", s, err)
		}
		if u.Version() != 4 || u.Variant() != uuid.RFC4122 || u.String() != s {
			t.Errorf("%s: version %d variant %v; want a canonical random UUID", s, u.Version(), u.Variant())
		}
	}
	for _, s := range []string{"", "not-a-uuid", a + "0", a[:35]} {
		if IsSecretID(s) {
			t.Errorf("IsSecretID(%q) = true", s)
		}
	}
}

func TestStoreAndLoadTokens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tokens")
	tokens := map[string]string{
		PolicyReadonly:      "11111111-1111-4111-8111-111111111111",
		PolicyDeployer:      "22222222-2222-4222-8222-222222222222",
		ManagementTokenName: "33333333-3333-4333-8333-333333333333",
	}
	if err := StoreTokens(dir, tokens); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir: %v %v, want mode 0700", fi.Mode(), err)
	}
	for name, secret := range tokens {
		path := filepath.Join(dir, name+".token")
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", path, fi.Mode().Perm())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != secret+"\n" {
			t.Errorf("%s holds %q", path, b)
		}
		got, err := LoadToken(dir, name)
		if err != nil || got != secret {
			t.Errorf("LoadToken(%s) = %q, %v", name, got, err)
		}
	}

	// Rewriting the same secrets leaves the files alone.
	before, _ := os.Stat(filepath.Join(dir, "readonly.token"))
	if err := StoreTokens(dir, tokens); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(filepath.Join(dir, "readonly.token"))
	if !os.SameFile(before, after) {
		t.Error("unchanged token file was replaced")
	}

	if _, err := LoadToken(dir, "missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing token: %v, want fs.ErrNotExist", err)
	}
}

func TestStoreTokensRejects(t *testing.T) {
	for _, tc := range []struct{ name, secret string }{
		{"", "x"},
		{"../escape", "x"},
		{".hidden", "x"},
		{`a\b`, "x"},
		{"ok", ""},
		{"ok", "two\nlines"},
		{"ok", " padded"},
	} {
		dir := t.TempDir()
		if err := StoreTokens(dir, map[string]string{tc.name: tc.secret}); err == nil {
			t.Errorf("StoreTokens(%q, %q) succeeded", tc.name, tc.secret)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("StoreTokens(%q, %q) wrote %v", tc.name, tc.secret, entries)
		}
	}
	if _, err := LoadToken(t.TempDir(), "../x"); err == nil {
		t.Error("LoadToken accepted ../x")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "empty.token"), []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadToken(dir, "empty"); err == nil {
		t.Error("LoadToken accepted an empty file")
	}
}
