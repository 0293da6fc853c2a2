// Package install puts Nomad's configuration on the node: it writes the
// rendered files atomically, moves the package's default configuration out
// of the way, removes files it no longer renders, and shows what it would
// change as a unified diff.
package install

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/atomicfile"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadconf"
)

// File is one file to put in the configuration directory.
type File = nomadconf.File

// ManagedPrefix starts the name of every file this package owns.
const ManagedPrefix = "nomad-bootstrapd-"

// DefaultConfig is the file the nomad package installs; Nomad merges every
// file of the directory, and its `bootstrap_expect = 1` would break the
// cluster, so it is moved to DefaultConfig + BackupSuffix (Nomad reads only
// .hcl and .json files).
const (
	DefaultConfig = "nomad.hcl"
	BackupSuffix  = ".nomad-bootstrapd-backup"
)

// Change is one file that Apply changed or would change.
type Change struct {
	Path   string
	Action string // "create", "update", "remove", "backup"
}

// Plan computes the changes that Apply would make in dir, without writing.
func Plan(dir string, files []File) ([]Change, error) {
	var changes []Change
	want := map[string]bool{}
	for _, f := range files {
		if err := checkName(f.Name); err != nil {
			return nil, err
		}
		want[f.Name] = true
		p := filepath.Join(dir, f.Name)
		old, err := os.ReadFile(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			changes = append(changes, Change{p, "create"})
		case err != nil:
			return nil, fmt.Errorf("install: %w", err)
		default:
			fi, err := os.Stat(p)
			if err != nil {
				return nil, fmt.Errorf("install: %w", err)
			}
			if !bytes.Equal(old, f.Content) || fi.Mode().Perm() != f.Mode.Perm() {
				changes = append(changes, Change{p, "update"})
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("install: %w", err)
	}
	for _, e := range entries {
		switch name := e.Name(); {
		case name == DefaultConfig && !isManaged(filepath.Join(dir, name)):
			changes = append(changes, Change{filepath.Join(dir, name), "backup"})
		case strings.HasPrefix(name, ManagedPrefix) && strings.HasSuffix(name, ".hcl") && !want[name]:
			changes = append(changes, Change{filepath.Join(dir, name), "remove"})
		}
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].Path < changes[j].Path })
	return changes, nil
}

// Apply makes dir hold exactly files among the managed ones: it writes each
// file that differs (atomically, with its mode), moves the package's default
// nomad.hcl to a backup, and removes managed files no longer rendered. A
// second Apply with the same files changes nothing and returns no changes.
func Apply(dir string, files []File) ([]Change, error) {
	changes, err := Plan(dir, files)
	if err != nil || len(changes) == 0 {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	byName := map[string]File{}
	for _, f := range files {
		byName[filepath.Join(dir, f.Name)] = f
	}
	for _, c := range changes {
		switch c.Action {
		case "create", "update":
			f := byName[c.Path]
			if err := atomicfile.WriteFile(c.Path, f.Content, f.Mode); err != nil {
				return nil, fmt.Errorf("install: %w", err)
			}
		case "backup":
			if err := os.Rename(c.Path, c.Path+BackupSuffix); err != nil {
				return nil, fmt.Errorf("install: moving the package's default configuration aside: %w", err)
			}
		case "remove":
			if err := os.Remove(c.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("install: %w", err)
			}
		}
	}
	return changes, nil
}

// Diff returns what Apply would change in dir as a unified diff; "" when
// nothing would change. Files whose mode alone would change are listed.
func Diff(dir string, files []File) (string, error) {
	changes, err := Plan(dir, files)
	if err != nil {
		return "", err
	}
	byName := map[string]File{}
	for _, f := range files {
		byName[filepath.Join(dir, f.Name)] = f
	}
	var b strings.Builder
	for _, c := range changes {
		old, _ := os.ReadFile(c.Path)
		switch c.Action {
		case "create", "update":
			f := byName[c.Path]
			if d := unifiedDiff(c.Path, string(old), string(f.Content)); d != "" {
				b.WriteString(d)
			} else {
				fmt.Fprintf(&b, "mode %s: %v\n", c.Path, f.Mode.Perm())
			}
		case "remove":
			b.WriteString(unifiedDiff(c.Path, string(old), ""))
		case "backup":
			fmt.Fprintf(&b, "rename %s -> %s\n", c.Path, c.Path+BackupSuffix)
		}
	}
	return b.String(), nil
}

func checkName(name string) error {
	if name == "" || filepath.Base(name) != name || !strings.HasPrefix(name, ManagedPrefix) {
		return fmt.Errorf("install: %q is not a managed file name (%s*)", name, ManagedPrefix)
	}
	return nil
}

// isManaged reports whether the file at p starts with a "managed by" line.
func isManaged(p string) bool {
	b, err := os.ReadFile(p)
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return strings.Contains(strings.ToLower(first), "managed by nomad-bootstrapd")
}
