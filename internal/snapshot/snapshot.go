// Package snapshot keeps a cluster's backups: one file per backup holding
// Nomad's Raft snapshot together with what a restore needs beside it and
// Raft does not hold — Nomad's keyring (the root keys that Variables are
// encrypted with, which each server keeps in its own keystore directory),
// the ACL management token, and the agent's signed plan and cluster state. The file is a tar archive
// written atomically with mode 0600, since the keyring is secret. Reading
// one checks every entry's name, size and order, and Nomad's snapshot
// against the digest its manifest records, so a truncated, corrupted or
// foreign file is refused before anything is restored from it.
package snapshot

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Format is the archive format this package writes and reads.
const Format = 1

// Entry names inside an archive. The manifest comes first and Nomad's
// snapshot last; the other files in between, in name order.
const (
	ManifestEntry     = "manifest.json"
	NomadEntry        = "nomad.snap"
	PlanEntry         = "plan.json"
	ClusterStateEntry = "cluster-state.json"
	// ManagementEntry is the ACL management token's secret, which a
	// restore into another cluster needs once the snapshot's ACL tokens
	// replace that cluster's.
	ManagementEntry = "management.token"
	KeystorePrefix  = "keystore/"
)

// Bounds on what an archive may hold besides Nomad's snapshot.
const (
	maxManifest     = 16 << 10
	maxFile         = 1 << 20
	maxKeystoreKeys = 256
)

// keystoreName is a Nomad keystore file's name: a root key's UUID and the
// extension Nomad 1.6 gives it.
var keystoreName = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.nks\.json$`)

// KeystoreExt is the extension of Nomad's keystore files.
const KeystoreExt = ".nks.json"

// Manifest describes an archive.
type Manifest struct {
	Format  int       `json:"format"`
	Cluster string    `json:"cluster"` // the cluster ID, 32 hex characters
	Region  string    `json:"region"`
	Node    string    `json:"node"` // the server that took it
	TakenAt time.Time `json:"taken_at"`
	// NomadVersion is the version of the Nomad server that took it.
	NomadVersion string `json:"nomad_version,omitempty"`
	// NomadSize and NomadSHA256 are Nomad's snapshot's size and digest
	// (lowercase hex); Write sets them.
	NomadSize   int64  `json:"nomad_size"`
	NomadSHA256 string `json:"nomad_sha256"`
}

// File is a file an archive holds besides its manifest and Nomad's
// snapshot: PlanEntry, ClusterStateEntry, ManagementEntry, or
// KeystorePrefix followed by a keystore file's name.
type File struct {
	Name string
	Data []byte
}

// Archive is what Read found in an archive, Nomad's snapshot aside.
type Archive struct {
	Manifest Manifest
	Files    []File // in name order
}

// File returns the data of the file called name, if the archive holds it.
func (a Archive) File(name string) ([]byte, bool) {
	i := slices.IndexFunc(a.Files, func(f File) bool { return f.Name == name })
	if i < 0 {
		return nil, false
	}
	return a.Files[i].Data, true
}

// Keystore returns the archive's keystore files, by file name.
func (a Archive) Keystore() []File {
	var out []File
	for _, f := range a.Files {
		if name, ok := strings.CutPrefix(f.Name, KeystorePrefix); ok {
			out = append(out, File{Name: name, Data: f.Data})
		}
	}
	return out
}

// checkName reports whether name may be a File's name.
func checkName(name string) error {
	switch {
	case name == PlanEntry, name == ClusterStateEntry, name == ManagementEntry:
		return nil
	case strings.HasPrefix(name, KeystorePrefix) && keystoreName.MatchString(strings.TrimPrefix(name, KeystorePrefix)):
		return nil
	}
	return fmt.Errorf("snapshot: the archive holds an entry %q that no snapshot holds", name)
}

// Write writes an archive to path atomically with mode 0600: m, files and
// Nomad's snapshot read from nomad to its end. Nomad's snapshot is first
// spooled to a temporary file beside path, since tar needs its size first.
// It returns the manifest as written. On error path is left as it was.
func Write(path string, m Manifest, files []File, nomad io.Reader) (Manifest, error) {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	for i, f := range files {
		if err := checkName(f.Name); err != nil {
			return m, err
		}
		if len(f.Data) > maxFile {
			return m, fmt.Errorf("snapshot: %s is %d bytes, more than %d", f.Name, len(f.Data), maxFile)
		}
		if i > 0 && files[i-1].Name == f.Name {
			return m, fmt.Errorf("snapshot: %s given twice", f.Name)
		}
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	spool, err := os.CreateTemp(dir, "."+base+".nomad-*")
	if err != nil {
		return m, fmt.Errorf("snapshot: %w", err)
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(spool, h), nomad)
	if err != nil {
		return m, fmt.Errorf("snapshot: reading Nomad's snapshot: %w", err)
	}
	if n == 0 {
		return m, errors.New("snapshot: Nomad's snapshot is empty")
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return m, fmt.Errorf("snapshot: %w", err)
	}
	m.Format, m.NomadSize, m.NomadSHA256 = Format, n, hex.EncodeToString(h.Sum(nil))
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, fmt.Errorf("snapshot: %w", err)
	}
	out, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return m, fmt.Errorf("snapshot: %w", err)
	}
	tmp := out.Name()
	ok := false
	defer func() {
		if !ok {
			out.Close()
			os.Remove(tmp)
		}
	}()
	if err := out.Chmod(0o600); err != nil {
		return m, fmt.Errorf("snapshot: %w", err)
	}
	tw := tar.NewWriter(out)
	put := func(name string, size int64, r io.Reader) error {
		hdr := &tar.Header{Name: name, Mode: 0o600, Size: size, ModTime: m.TakenAt, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	if err := put(ManifestEntry, int64(len(manifest)), bytes.NewReader(manifest)); err != nil {
		return m, fmt.Errorf("snapshot: writing %s: %w", path, err)
	}
	for _, f := range files {
		if err := put(f.Name, int64(len(f.Data)), bytes.NewReader(f.Data)); err != nil {
			return m, fmt.Errorf("snapshot: writing %s: %w", path, err)
		}
	}
	if err := put(NomadEntry, n, spool); err != nil {
		return m, fmt.Errorf("snapshot: writing %s: %w", path, err)
	}
	if err := tw.Close(); err != nil {
		return m, fmt.Errorf("snapshot: writing %s: %w", path, err)
	}
	if err := out.Sync(); err != nil {
		return m, fmt.Errorf("snapshot: syncing %s: %w", path, err)
	}
	if err := out.Close(); err != nil {
		return m, fmt.Errorf("snapshot: closing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return m, fmt.Errorf("snapshot: %w", err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return m, nil
}

// ErrNotSnapshot is wrapped by Read's errors for a file that is not an
// archive of this format: damaged, truncated, or something else.
var ErrNotSnapshot = errors.New("snapshot: not a nomad-bootstrapd snapshot")

// Read reads an archive from r. It passes Nomad's snapshot, streamed, to
// nomad, which must read it to its end; a nil nomad discards it. The
// digest is checked only once nomad has read everything, so a caller that
// restores from the stream checks the whole file with a first Read that
// discards.
func Read(r io.Reader, nomad func(io.Reader) error) (Archive, error) {
	var a Archive
	tr := tar.NewReader(r)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrNotSnapshot, fmt.Sprintf(format, args...))
	}
	next := func() (*tar.Header, error) {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil, err
		}
		if err != nil {
			return nil, bad("%v", err)
		}
		if hdr.Typeflag != tar.TypeReg || path.Clean(hdr.Name) != hdr.Name || hdr.Size < 0 {
			return nil, bad("entry %q is not a plain file", hdr.Name)
		}
		return hdr, nil
	}
	small := func(hdr *tar.Header, limit int64) ([]byte, error) {
		if hdr.Size > limit {
			return nil, bad("%s is %d bytes, more than %d", hdr.Name, hdr.Size, limit)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, bad("reading %s: %v", hdr.Name, err)
		}
		return b, nil
	}
	hdr, err := next()
	if err == io.EOF {
		return a, bad("the file is empty")
	}
	if err != nil {
		return a, err
	}
	if hdr.Name != ManifestEntry {
		return a, bad("its first entry is %q, not %s", hdr.Name, ManifestEntry)
	}
	b, err := small(hdr, maxManifest)
	if err != nil {
		return a, err
	}
	if err := json.Unmarshal(b, &a.Manifest); err != nil {
		return a, bad("its manifest: %v", err)
	}
	if err := a.Manifest.check(); err != nil {
		return a, err
	}
	keys := 0
	for {
		hdr, err = next()
		if err == io.EOF {
			return a, bad("it ends before Nomad's snapshot (truncated?)")
		}
		if err != nil {
			return a, err
		}
		if hdr.Name == NomadEntry {
			break
		}
		if err := checkName(hdr.Name); err != nil {
			return a, fmt.Errorf("%w: %v", ErrNotSnapshot, strings.TrimPrefix(err.Error(), "snapshot: "))
		}
		if n := len(a.Files); n > 0 && a.Files[n-1].Name >= hdr.Name {
			return a, bad("entry %s is out of order or repeated", hdr.Name)
		}
		if strings.HasPrefix(hdr.Name, KeystorePrefix) {
			if keys++; keys > maxKeystoreKeys {
				return a, bad("it holds more than %d keystore files", maxKeystoreKeys)
			}
		}
		data, err := small(hdr, maxFile)
		if err != nil {
			return a, err
		}
		a.Files = append(a.Files, File{Name: hdr.Name, Data: data})
	}
	if hdr.Size != a.Manifest.NomadSize {
		return a, bad("Nomad's snapshot is %d bytes, the manifest says %d", hdr.Size, a.Manifest.NomadSize)
	}
	h := sha256.New()
	body := io.TeeReader(tr, h)
	if nomad == nil {
		nomad = func(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err }
	}
	if err := nomad(body); err != nil {
		return a, err
	}
	if _, err := io.Copy(io.Discard, body); err != nil {
		return a, bad("reading Nomad's snapshot: %v", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != a.Manifest.NomadSHA256 {
		return a, bad("Nomad's snapshot does not match the manifest's digest (the file is damaged)")
	}
	if _, err := tr.Next(); err != io.EOF {
		return a, bad("it goes on after Nomad's snapshot")
	}
	return a, nil
}

// check validates a manifest read from a file.
func (m Manifest) check() error {
	switch {
	case m.Format > Format:
		return fmt.Errorf("snapshot: the archive is of format %d, which this nomad-bootstrapd cannot read (it reads format %d); use a newer release", m.Format, Format)
	case m.Format != Format:
		return fmt.Errorf("%w: its manifest has no format", ErrNotSnapshot)
	case len(m.Cluster) != 32 || strings.Trim(m.Cluster, "0123456789abcdef") != "":
		return fmt.Errorf("%w: its manifest has no cluster ID", ErrNotSnapshot)
	case m.NomadSize <= 0 || len(m.NomadSHA256) != 2*sha256.Size || strings.Trim(m.NomadSHA256, "0123456789abcdef") != "":
		return fmt.Errorf("%w: its manifest does not describe Nomad's snapshot", ErrNotSnapshot)
	case m.TakenAt.IsZero():
		return fmt.Errorf("%w: its manifest has no time", ErrNotSnapshot)
	}
	return nil
}

// ReadFile reads the archive at path as Read does.
func ReadFile(path string, nomad func(io.Reader) error) (Archive, error) {
	f, err := os.Open(path)
	if err != nil {
		return Archive{}, fmt.Errorf("snapshot: %w", err)
	}
	defer f.Close()
	a, err := Read(f, nomad)
	if err != nil {
		return a, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}
