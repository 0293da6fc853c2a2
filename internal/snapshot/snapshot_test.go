package snapshot

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const keyName = "0f4e2c3a-1b2c-4d5e-8f90-a1b2c3d4e5f6.nks.json"

func testManifest() Manifest {
	return Manifest{Cluster: strings.Repeat("ab", 16), Region: "global", Node: "node1",
		TakenAt: time.Date(2026, 12, 7, 20, 15, 0, 0, time.UTC), NomadVersion: "1.6.3"}
}

func testFiles() []File {
	return []File{
		{Name: KeystorePrefix + keyName, Data: []byte(`{"Meta":{"KeyID":"x"}}`)},
		{Name: PlanEntry, Data: []byte(`{"plan":1}`)},
	}
}

// writeArchive writes an archive of nomad's bytes and returns its bytes.
func writeArchive(t *testing.T, nomad string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.snap")
	if _, err := Write(path, testManifest(), testFiles(), strings.NewReader(nomad)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.snap")
	m, err := Write(path, testManifest(), testFiles(), strings.NewReader("raft state"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Format != Format || m.NomadSize != 10 || len(m.NomadSHA256) != 64 {
		t.Errorf("manifest as written: %+v", m)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode: %v %v", fi, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("Write left temporary files: %v", entries)
	}
	var got bytes.Buffer
	a, err := ReadFile(path, func(r io.Reader) error { _, err := io.Copy(&got, r); return err })
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != "raft state" || a.Manifest != m {
		t.Errorf("read back %q, %+v", got.String(), a.Manifest)
	}
	if len(a.Files) != 2 || a.Files[0].Name != KeystorePrefix+keyName || a.Files[1].Name != PlanEntry {
		t.Errorf("files: %v", a.Files)
	}
	if ks := a.Keystore(); len(ks) != 1 || ks[0].Name != keyName {
		t.Errorf("keystore: %v", ks)
	}
	if p, ok := a.File(PlanEntry); !ok || string(p) != `{"plan":1}` {
		t.Errorf("plan: %q %v", p, ok)
	}
}

func TestWriteRefuses(t *testing.T) {
	tests := []struct {
		name  string
		files []File
		nomad string
		want  string
	}{
		{"unknown file", []File{{Name: "etc/passwd"}}, "x", "no snapshot holds"},
		{"keystore name", []File{{Name: KeystorePrefix + "../x.nks.json"}}, "x", "no snapshot holds"},
		{"twice", []File{{Name: PlanEntry}, {Name: PlanEntry}}, "x", "given twice"},
		{"too big", []File{{Name: PlanEntry, Data: make([]byte, maxFile+1)}}, "x", "more than"},
		{"empty Nomad snapshot", nil, "", "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.snap")
			os.WriteFile(path, []byte("old"), 0o600)
			_, err := Write(path, testManifest(), tt.files, strings.NewReader(tt.nomad))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
			if b, _ := os.ReadFile(path); string(b) != "old" {
				t.Errorf("a refused Write changed the file: %q", b)
			}
			if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
				t.Errorf("a refused Write left files: %v", entries)
			}
		})
	}
}

// tarOf builds a tar of the given entries, in order.
func tarOf(t *testing.T, entries ...[2]string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: e[0], Mode: 0o600, Size: int64(len(e[1])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e[1]))
	}
	tw.Close()
	return b.Bytes()
}

func TestReadRefuses(t *testing.T) {
	good := writeArchive(t, "raft state")
	manifest := func(edit func(string) string) string {
		var m bytes.Buffer
		tr := tar.NewReader(bytes.NewReader(good))
		tr.Next()
		io.Copy(&m, tr)
		return edit(m.String())
	}
	same := func(s string) string { return s }
	damaged := bytes.Clone(good)
	i := bytes.Index(damaged, []byte("raft state"))
	damaged[i] = 'R'
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "the file is empty"},
		{"not a tar", []byte("hello, this is not a snapshot at all, just some text that is long enough"), "not a nomad-bootstrapd snapshot"},
		{"truncated", good[:len(good)/2], "not a nomad-bootstrapd snapshot"},
		{"damaged", damaged, "does not match the manifest's digest"},
		{"manifest not first", tarOf(t, [2]string{PlanEntry, "{}"}), "first entry"},
		{"manifest not JSON", tarOf(t, [2]string{ManifestEntry, "nope"}), "its manifest"},
		{"newer format", tarOf(t, [2]string{ManifestEntry, `{"format":2}`}), "format 2, which this nomad-bootstrapd cannot read"},
		{"no format", tarOf(t, [2]string{ManifestEntry, `{}`}), "has no format"},
		{"no cluster", tarOf(t, [2]string{ManifestEntry, strings.Replace(manifest(same), strings.Repeat("ab", 16), "ZZ", 1)}), "no cluster ID"},
		{"no Nomad snapshot", tarOf(t, [2]string{ManifestEntry, manifest(same)}), "ends before Nomad's snapshot"},
		{"unknown entry", tarOf(t, [2]string{ManifestEntry, manifest(same)}, [2]string{"../../etc/passwd", "x"}), "no snapshot holds"},
		{"unclean name", tarOf(t, [2]string{ManifestEntry, manifest(same)}, [2]string{"./plan.json", "x"}), "not a plain file"},
		{"foreign entry", tarOf(t, [2]string{ManifestEntry, manifest(same)}, [2]string{"passwd", "x"}), "no snapshot holds"},
		{"out of order", tarOf(t, [2]string{ManifestEntry, manifest(same)}, [2]string{PlanEntry, "x"}, [2]string{ClusterStateEntry, "x"}), "out of order"},
		{"wrong size", tarOf(t, [2]string{ManifestEntry, manifest(same)}, [2]string{NomadEntry, "raft"}), "the manifest says 10"},
		{"trailing entry", tarOf(t, [2]string{ManifestEntry, manifest(same)}, [2]string{NomadEntry, "raft state"}, [2]string{PlanEntry, "x"}), "goes on after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tt.data), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}

func TestReadPassesNomadsError(t *testing.T) {
	boom := errors.New("boom")
	if _, err := Read(bytes.NewReader(writeArchive(t, "raft state")), func(io.Reader) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("err %v", err)
	}
}

func TestListPrune(t *testing.T) {
	dir := t.TempDir()
	base := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		os.WriteFile(filepath.Join(dir, Name(base.Add(time.Duration(i)*time.Hour))), []byte("x"), 0o600)
	}
	os.WriteFile(filepath.Join(dir, "manual.snap"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dir, "."+Name(base)+".tmp-1"), []byte("x"), 0o600)
	stale := filepath.Join(dir, "."+Name(base)+".nomad-2")
	os.WriteFile(stale, []byte("x"), 0o600)
	os.Chtimes(stale, base, base)
	os.WriteFile(filepath.Join(dir, "nomad-bootstrapd-notatime.snap"), []byte("x"), 0o600)
	stored, err := List(dir)
	if err != nil || len(stored) != 5 || !stored[0].TakenAt.Equal(base) || stored[4].Size != 1 {
		t.Fatalf("List: %v %v", stored, err)
	}
	removed, err := Prune(dir, 2)
	if err != nil || len(removed) != 4 || !slices.Contains(removed, stale) {
		t.Fatalf("Prune: %v %v", removed, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "."+Name(base)+".tmp-1")); err != nil {
		t.Errorf("Prune removed a temporary file of a write that may be under way: %v", err)
	}
	stored, _ = List(dir)
	if len(stored) != 2 || !stored[0].TakenAt.Equal(base.Add(3*time.Hour)) {
		t.Errorf("after Prune: %v", stored)
	}
	if _, err := os.Stat(filepath.Join(dir, "manual.snap")); err != nil {
		t.Errorf("Prune removed a file it did not write: %v", err)
	}
	if s, err := List(filepath.Join(dir, "missing")); err != nil || s != nil {
		t.Errorf("List of a missing dir: %v %v", s, err)
	}
}

func TestKeystore(t *testing.T) {
	from, to := t.TempDir(), filepath.Join(t.TempDir(), "keystore")
	os.WriteFile(filepath.Join(from, keyName), []byte("key"), 0o600)
	os.WriteFile(filepath.Join(from, "readme.txt"), []byte("x"), 0o600)
	files, err := ReadKeystore(from)
	if err != nil || len(files) != 1 || files[0].Name != KeystorePrefix+keyName {
		t.Fatalf("ReadKeystore: %v %v", files, err)
	}
	a := Archive{Files: files}
	added, err := InstallKeystore(to, a)
	if err != nil || len(added) != 1 {
		t.Fatalf("InstallKeystore: %v %v", added, err)
	}
	if fi, err := os.Stat(filepath.Join(to, keyName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("installed key: %v %v", fi, err)
	}
	if added, err := InstallKeystore(to, a); err != nil || len(added) != 0 {
		t.Errorf("again: %v %v", added, err)
	}
	// Another server's file of the same key differs, and stays.
	os.WriteFile(filepath.Join(to, keyName), []byte("other"), 0o600)
	if added, err := InstallKeystore(to, a); err != nil || len(added) != 0 {
		t.Errorf("another server's file of the key: %v %v", added, err)
	}
	if b, _ := os.ReadFile(filepath.Join(to, keyName)); string(b) != "other" {
		t.Errorf("the key file was replaced: %q", b)
	}
	if files, err := ReadKeystore(filepath.Join(from, "missing")); err != nil || files != nil {
		t.Errorf("missing keystore: %v %v", files, err)
	}
}

func FuzzRead(f *testing.F) {
	path := filepath.Join(f.TempDir(), "s.snap")
	if _, err := Write(path, testManifest(), testFiles(), strings.NewReader("raft state")); err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	f.Add(good)
	f.Add(good[:512])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Read(bytes.NewReader(b), nil)
		if err != nil {
			return
		}
		if a.Manifest.check() != nil {
			t.Fatalf("Read accepted a manifest that check refuses: %+v", a.Manifest)
		}
		for _, f := range a.Files {
			if checkName(f.Name) != nil || len(f.Data) > maxFile {
				t.Fatalf("Read accepted file %q of %d bytes", f.Name, len(f.Data))
			}
		}
	})
}
