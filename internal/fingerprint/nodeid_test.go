package fingerprint

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/uuid"
)

const testID = "2f0f7a4c-52d1-4b6e-9c0a-0d5c1e8b7f11"

func TestLoadNodeIDMissing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state", "node-id")
	id, fresh, err := LoadNodeID(path)
	if err != nil {
		t.Fatalf("LoadNodeID() error = %v", err)
	}
	if !fresh {
		t.Error("LoadNodeID() fresh = false, want true")
	}
	if u, err := uuid.Parse(id); err != nil || u.String() != id {
		t.Errorf("LoadNodeID() id = %q, want a canonical UUID", id)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("LoadNodeID() wrote %v, want nothing", entries)
	}
	id2, _, _ := LoadNodeID(path)
	if id2 == id {
		t.Errorf("LoadNodeID() gave %q twice, want a new random ID each time", id)
	}
}

func TestLoadNodeID(t *testing.T) {
	tests := []struct {
		name, content, want, wantErr string
	}{
		{name: "valid", content: testID + "\n", want: testID},
		{name: "no newline", content: testID, want: testID},
		{name: "whitespace", content: " \t" + testID + "\r\n\n", want: testID},
		{name: "uppercase", content: strings.ToUpper(testID), want: testID},
		{name: "empty", content: "", wantErr: `is corrupted ("" is not a UUID)`},
		{name: "garbage", content: "node-1\n", wantErr: `is corrupted ("node-1" is not a UUID)`},
		{name: "truncated", content: testID[:20], wantErr: "is corrupted"},
		{name: "braced", content: "{" + testID + "}", wantErr: "is corrupted"},
		{name: "unhyphenated", content: strings.ReplaceAll(testID, "-", ""), wantErr: "is corrupted"},
		{name: "two IDs", content: testID + "\n" + testID + "\n", wantErr: "is corrupted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node-id")
			if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			id, fresh, err := LoadNodeID(path)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("LoadNodeID() = %q, want error", id)
				}
				msg := err.Error()
				for _, want := range []string{
					"fingerprint: node ID file " + path,
					tt.wantErr,
					"remove it to give this node a new identity, which makes the cluster see a new node",
				} {
					if !strings.Contains(msg, want) {
						t.Errorf("LoadNodeID() error = %q, want it to contain %q", msg, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadNodeID() error = %v", err)
			}
			if id != tt.want || fresh {
				t.Errorf("LoadNodeID() = %q, %v; want %q, false", id, fresh, tt.want)
			}
		})
	}
}

func TestLoadNodeIDReadError(t *testing.T) {
	dir := t.TempDir() // a directory cannot be read as a file
	_, _, err := LoadNodeID(dir)
	if err == nil || !strings.HasPrefix(err.Error(), "fingerprint: reading node ID: ") {
		t.Errorf("LoadNodeID(dir) error = %v", err)
	}
}

func TestSaveNodeID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "var", "lib", "nomad-bootstrapd", "node-id")
	if err := SaveNodeID(path, testID); err != nil {
		t.Fatalf("SaveNodeID() error = %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != testID+"\n" {
		t.Errorf("file content = %q, want %q", data, testID+"\n")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("file mode = %v, want 0644", fi.Mode().Perm())
		}
		di, err := os.Stat(filepath.Dir(path))
		if err != nil {
			t.Fatal(err)
		}
		if !di.IsDir() {
			t.Errorf("%s is not a directory", filepath.Dir(path))
		}
	}

	// Round trip, and overwrite.
	id, fresh, err := LoadNodeID(path)
	if err != nil || fresh || id != testID {
		t.Errorf("LoadNodeID() = %q, %v, %v; want %q, false, nil", id, fresh, err, testID)
	}
	other := uuid.NewString()
	if err := SaveNodeID(path, strings.ToUpper(other)); err != nil {
		t.Fatal(err)
	}
	if id, _, _ := LoadNodeID(path); id != other {
		t.Errorf("after overwrite LoadNodeID() = %q, want %q", id, other)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only node-id", len(entries))
	}
}

func TestSaveNodeIDInvalid(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "node-id")
	for _, id := range []string{"", "node-1", testID + "\n", "{" + testID + "}"} {
		err := SaveNodeID(path, id)
		if err == nil || !strings.Contains(err.Error(), "fingerprint: saving node ID: ") || !strings.Contains(err.Error(), "is not a UUID") {
			t.Errorf("SaveNodeID(%q) error = %v", id, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("SaveNodeID() with an invalid ID wrote %v", entries)
	}
}
