package cli

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/golden"
)

// TestHelpGolden keeps every command's -help output as its golden file.
func TestHelpGolden(t *testing.T) {
	// demo's -nomad defaults to the Nomad that make builds under $HOME,
	// when there is one: the golden files show none.
	t.Setenv("HOME", t.TempDir())
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			if code := Run([]string{c.name, "-help"}, &out, &out); code != exitOK {
				t.Fatalf("%s -help exited %d:\n%s", c.name, code, out.String())
			}
			golden.Check(t, filepath.Join("testdata", "help-"+c.name+".txt"), out.Bytes())
		})
	}
}
