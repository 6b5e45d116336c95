package testenv_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestPackageComments: every package of the module has a package comment
// ("Package x ..." or, for a command, "Command x ..."), in one file only,
// and that file is doc.go.
func TestPackageComments(t *testing.T) {
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
			return filepath.SkipDir
		}
		pkgs, err := parser.ParseDir(token.NewFileSet(), path, func(fi fs.FileInfo) bool {
			return !strings.HasSuffix(fi.Name(), "_test.go")
		}, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			return err
		}
		for pkgName, pkg := range pkgs {
			want := "Package " + pkgName + " "
			if pkgName == "main" {
				want = "Command " + filepath.Base(path) + " "
			}
			var docs []string // the files with a package comment
			found := false
			for name, f := range pkg.Files {
				if f.Doc == nil {
					continue
				}
				docs = append(docs, filepath.Base(name))
				if strings.HasPrefix(f.Doc.Text(), want) {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: no package comment starting %q", path, want)
			}
			if len(docs) == 1 && docs[0] != "doc.go" {
				t.Errorf("%s: the package comment is in %s: move it to doc.go", path, docs[0])
			}
			if len(docs) > 1 {
				sort.Strings(docs)
				t.Errorf("%s: package comments in %d files (%s): keep one, in doc.go", path, len(docs), strings.Join(docs, ", "))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
