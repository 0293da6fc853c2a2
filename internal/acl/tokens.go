package acl

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/atomicfile"
)

// managementInfo is the HKDF info label of the management secret. Changing it
// changes every cluster's management secret.
const managementInfo = "nomad-bootstrapd acl management v1"

// ManagementSecret derives the secret ID of the management token from seed:
// HKDF-SHA256 with info "nomad-bootstrapd acl management v1", 16 bytes shaped
// as a random (version 4) UUID, lowercase. The same seed always gives the same
// secret, so every server that holds the seed computes it without exchanging
// it.
//
// The caller must pass a secret that only servers hold (the CA private key,
// for instance), never something a client or the join token alone can
// reproduce: whoever knows the seed holds the management token. seed must be
// at least 16 bytes; ManagementSecret panics otherwise.
func ManagementSecret(seed []byte) string {
	if len(seed) < 16 {
		panic("acl: ManagementSecret needs a seed of at least 16 secret bytes")
	}
	b, err := hkdf.Key(sha256.New, seed, nil, managementInfo, 16)
	if err != nil {
		// Only possible for lengths beyond 255*32 bytes.
		panic("acl: hkdf: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

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
