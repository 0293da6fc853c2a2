package snapshot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/atomicfile"
)

// The scheduled snapshots are called nomad-bootstrapd-<UTC time>.snap, so
// that their names sort by time.
const (
	namePrefix = "nomad-bootstrapd-"
	nameSuffix = ".snap"
	nameTime   = "20060102T150405Z"
)

// Name returns the file name of a scheduled snapshot taken at t.
func Name(t time.Time) string { return namePrefix + t.UTC().Format(nameTime) + nameSuffix }

// Stored is a scheduled snapshot in a snapshots directory.
type Stored struct {
	Path    string
	TakenAt time.Time // from its name
	Size    int64
}

// List returns the scheduled snapshots in dir, oldest first; a missing dir
// holds none. Other files, and the temporary files of a Write under way,
// are not listed.
func List(dir string) ([]Stored, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	var out []Stored
	for _, e := range entries {
		stamp, ok := strings.CutPrefix(e.Name(), namePrefix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		stamp, ok = strings.CutSuffix(stamp, nameSuffix)
		t, err := time.Parse(nameTime, stamp)
		if !ok || err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed since ReadDir
		}
		out = append(out, Stored{Path: filepath.Join(dir, e.Name()), TakenAt: t, Size: info.Size()})
	}
	slices.SortFunc(out, func(a, b Stored) int { return a.TakenAt.Compare(b.TakenAt) })
	return out, nil
}

// staleTemp is the age after which Prune removes what a Write cut short
// (the agent stopped, the machine crashed) left in the directory.
const staleTemp = time.Hour

// Prune removes the oldest scheduled snapshots in dir until retain are
// left, and the temporary files of writes cut short over an hour ago, and
// returns the paths it removed.
func Prune(dir string, retain int) ([]string, error) {
	stored, err := List(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "."+namePrefix) || !e.Type().IsRegular() {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleTemp {
			path := filepath.Join(dir, e.Name())
			if os.Remove(path) == nil {
				removed = append(removed, path)
			}
		}
	}
	for i := 0; i < len(stored)-retain; i++ {
		if err := os.Remove(stored[i].Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("snapshot: %w", err)
		}
		removed = append(removed, stored[i].Path)
	}
	return removed, nil
}

// ReadKeystore returns the root keys in dir, Nomad's keystore directory
// (<data_dir>/server/keystore), as Files of an archive. A missing dir holds
// none.
func ReadKeystore(dir string) ([]File, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: Nomad's keystore: %w", err)
	}
	var out []File
	for _, e := range entries {
		if !e.Type().IsRegular() || !keystoreName.MatchString(e.Name()) {
			continue
		}
		if len(out) == maxKeystoreKeys {
			return nil, fmt.Errorf("snapshot: Nomad's keystore %s holds more than %d keys", dir, maxKeystoreKeys)
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("snapshot: Nomad's keystore: %w", err)
		}
		if len(b) > maxFile {
			return nil, fmt.Errorf("snapshot: Nomad's keystore file %s is %d bytes, more than %d", e.Name(), len(b), maxFile)
		}
		out = append(out, File{Name: KeystorePrefix + e.Name(), Data: b})
	}
	return out, nil
}

// InstallKeystore writes the keystore files of a that dir, Nomad's
// keystore directory, lacks, mode 0600, and returns their names. A file is
// named by its root key's ID, and each server wraps the same key in a file
// of its own, so a key dir holds already is left as it is.
func InstallKeystore(dir string, a Archive) ([]string, error) {
	keys := a.Keystore()
	var add []File
	for _, k := range keys {
		_, err := os.Lstat(filepath.Join(dir, k.Name))
		switch {
		case err == nil:
		case errors.Is(err, fs.ErrNotExist):
			add = append(add, k)
		default:
			return nil, fmt.Errorf("snapshot: Nomad's keystore: %w", err)
		}
	}
	if len(add) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("snapshot: Nomad's keystore: %w", err)
	}
	var added []string
	for _, k := range add {
		if err := atomicfile.WriteFile(filepath.Join(dir, k.Name), k.Data, 0o600); err != nil {
			return added, fmt.Errorf("snapshot: Nomad's keystore: %w", err)
		}
		added = append(added, k.Name)
	}
	return added, nil
}
