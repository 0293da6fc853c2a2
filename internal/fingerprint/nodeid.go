package fingerprint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/atomicfile"
)

// LoadNodeID reads the node ID at path. It returns a new random ID and
// fresh=true when the file does not exist; it writes nothing.
//
// Surrounding whitespace in the file is ignored. A file that does not hold a
// UUID is an error that says how to recover; the ID is returned in canonical
// lowercase form.
func LoadNodeID(path string) (id string, fresh bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return uuid.NewString(), true, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("fingerprint: reading node ID: %w", err)
	}
	id, err = canonicalID(strings.TrimSpace(string(data)))
	if err != nil {
		return "", false, fmt.Errorf("fingerprint: node ID file %s is corrupted (%v); remove it to give this node a new identity, which makes the cluster see a new node", path, err)
	}
	return id, false, nil
}

// SaveNodeID writes id to path atomically (0644), creating the directory.
func SaveNodeID(path, id string) error {
	id, err := canonicalID(id)
	if err != nil {
		return fmt.Errorf("fingerprint: saving node ID: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("fingerprint: saving node ID: %w", err)
	}
	if err := atomicfile.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		return fmt.Errorf("fingerprint: saving node ID: %w", err)
	}
	return nil
}

// canonicalID accepts a UUID in its 36-character hyphenated form, in either
// case, and returns it in lowercase. uuid.Parse alone would also accept the
// urn:uuid:, braced and unhyphenated forms, which Nomad does not use.
func canonicalID(s string) (string, error) {
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return "", fmt.Errorf("%q is not a UUID", s)
	}
	return u.String(), nil
}
