// Package golden compares what a test produced with a file under the test's
// testdata directory, and rewrites the file instead when the test runs with
// -update (go test ./internal/PKG -update). It is for tests only.
package golden

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files instead of comparing with them")

// Update reports whether the test runs with -update, for tests that write
// golden files of their own shape (a directory of them, say).
func Update() bool { return *update }

// Check compares got with the file at path (relative to the package, so
// usually testdata/NAME), or with -update writes got there first, creating
// its directory. A difference fails the test with a diff.
func Check(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", path, diff)
	}
}
