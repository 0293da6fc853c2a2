package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackageDocs checks that every package of the module has a doc comment.
func TestPackageDocs(t *testing.T) {
	files := map[string][]string{} // directory -> its non-test Go files
	filepath.WalkDir("../..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && p != "../.." || d.Name() == "testdata" || p == "../../tools") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			files[filepath.Dir(p)] = append(files[filepath.Dir(p)], p)
		}
		return nil
	})
	if len(files) < 10 {
		t.Fatalf("found only %d packages; is the walk rooted right?", len(files))
	}
	for dir, paths := range files {
		documented := false
		for _, p := range paths {
			f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ParseComments|parser.PackageClauseOnly)
			if err != nil {
				t.Fatal(err)
			}
			if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
				documented = true
			}
		}
		if !documented {
			t.Errorf("the package in %s has no doc comment", dir)
		}
	}
}
