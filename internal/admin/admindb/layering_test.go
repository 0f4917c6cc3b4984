package admindb_test

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keelhq/keel/internal/platform/tooltest"
)

const module = "github.com/keelhq/keel/"

type goPackage struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Imports    []string
}

// TestAdminPoolStaysInAdmin: the admin role's pool, which bypasses Row
// Level Security, is reachable only on the path cmd/api → internal/app →
// internal/admin (+ admindb). No other package's code imports admindb, and
// none but that wiring names the pool (app.APIDeps.AdminDB), its URL
// (config's AdminDatabaseURL) or the admin service's DB field, so an
// ordinary handler cannot be handed it.
func TestAdminPoolStaysInAdmin(t *testing.T) {
	t.Parallel()
	root, err := tooltest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []goPackage
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p goPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	importers := []string{"internal/admin", "internal/admin/admindb", "internal/app", "cmd/api"}
	// Who may name the pool, by the names it goes by.
	namers := map[string][]string{
		"AdminDB":          {"internal/app", "cmd/api"},
		"AdminDatabaseURL": {"internal/config", "cmd/api"},
	}
	checked := 0
	for _, p := range pkgs {
		path := strings.TrimPrefix(p.ImportPath, module)
		if slices.Contains(p.Imports, module+"internal/admin/admindb") && !slices.Contains(importers, path) {
			t.Errorf("%s imports internal/admin/admindb; only %v may", path, importers)
		}
		if slices.Contains(p.Imports, module+"internal/app") && path != "cmd/api" {
			t.Errorf("%s imports internal/app (the wiring that holds the admin pool); only cmd/api may", path)
		}
		for _, f := range p.GoFiles {
			checked++
			for _, sel := range selectors(t, filepath.Join(p.Dir, f)) {
				if allowed, ok := namers[sel.name]; ok && !slices.Contains(allowed, path) {
					t.Errorf("%s:%d names %s; only %v may", filepath.Join(path, f), sel.line, sel.name, allowed)
				}
				// h.admin.DB, s.Admin.DB: the admin service's pool.
				if sel.name == "DB" && sel.onAdmin && path != "internal/admin" && path != "internal/app" {
					t.Errorf("%s:%d reads the admin service's DB field", filepath.Join(path, f), sel.line)
				}
			}
		}
	}
	if checked < 100 {
		t.Fatalf("only %d files checked", checked)
	}
}

type selector struct {
	name    string
	line    int
	onAdmin bool // the selected value's own name is admin (x.admin.DB)
}

// selectors lists the field and method names a file selects (x.Name).
func selectors(t *testing.T, file string) []selector {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var out []selector
	ast.Inspect(f, func(n ast.Node) bool {
		if s, ok := n.(*ast.SelectorExpr); ok {
			sel := selector{name: s.Sel.Name, line: fset.Position(s.Pos()).Line}
			switch x := s.X.(type) {
			case *ast.SelectorExpr:
				sel.onAdmin = strings.EqualFold(x.Sel.Name, "admin")
			case *ast.Ident:
				sel.onAdmin = strings.EqualFold(x.Name, "admin")
			}
			out = append(out, sel)
		}
		return true
	})
	return out
}
