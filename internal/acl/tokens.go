package acl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/atomicfile"
)

// NewManagementSecret returns a new secret ID for the management token: a
// random (version 4) UUID, lowercase, from crypto/rand. The CA holder makes
// it once, before the ACL bootstrap, and hands it to the other servers only
// inside the escrow sealed to each server's identity key: nothing else a
// node holds, neither token nor key, derives it.
func NewManagementSecret() string { return uuid.NewString() }

// IsSecretID reports whether s has the shape of a Nomad secret ID: a UUID,
// the check Nomad applies to a bootstrap secret.
func IsSecretID(s string) bool { return validUUID.MatchString(s) }

// tokenPath returns the file of the token called name in dir.
func tokenPath(dir, name string) (string, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`+"\x00") || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("acl: invalid token name %q", name)
	}
	return filepath.Join(dir, name+".token"), nil
}

// StoreTokens writes each token secret to <dir>/<name>.token, mode 0600, one
// line, atomically; files that already hold the same secret are left alone.
// dir is created with mode 0700 if missing. Names are like the keys of
// Result.Secrets, or ManagementTokenName.
func StoreTokens(dir string, tokens map[string]string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("acl: token directory: %w", err)
	}
	names := make([]string, 0, len(tokens))
	for name := range tokens {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		path, err := tokenPath(dir, name)
		if err != nil {
			return err
		}
		secret := tokens[name]
		if secret == "" || strings.ContainsAny(secret, "\r\n\x00") || strings.TrimSpace(secret) != secret {
			return fmt.Errorf("acl: token %s: secret is empty or has spaces or line breaks", name)
		}
		if _, err := atomicfile.WriteFileIfChanged(path, []byte(secret+"\n"), 0o600); err != nil {
			return fmt.Errorf("acl: storing token %s: %w", name, err)
		}
	}
	return nil
}

// LoadToken returns the secret stored by [StoreTokens] for name in dir. A
// missing file gives an error for which errors.Is(err, fs.ErrNotExist) holds.
func LoadToken(dir, name string) (string, error) {
	path, err := tokenPath(dir, name)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("acl: loading token %s: %w", name, err)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return "", errors.New("acl: token file " + path + " is empty")
	}
	return secret, nil
}
