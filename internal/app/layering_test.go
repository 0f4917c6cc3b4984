package app_test

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/keelhq/keel/internal/platform/tooltest"
)

const module = "github.com/keelhq/keel/"

type goPackage struct {
	ImportPath   string
	Dir          string
	GoFiles      []string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Deps         []string
}

// listPackages is `go list -json ./...` from the module root.
func listPackages(t *testing.T) []goPackage {
	t.Helper()
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
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
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
	return pkgs
}

func rel(path string) string { return strings.TrimPrefix(path, module) }

func isStore(path string) bool {
	return strings.HasPrefix(path, module+"internal/") && strings.HasSuffix(path, "db")
}

// The dependency rules of docs/adding-a-capability.md. A capability is
// copied from the previous one, so a shortcut here becomes the pattern of
// all; this test names the package that breaks a rule.
func TestLayering(t *testing.T) {
	pkgs := listPackages(t)
	byPath := map[string]goPackage{}
	for _, p := range pkgs {
		byPath[p.ImportPath] = p
	}
	for _, want := range []string{"internal/tenant", "internal/audit", "internal/auth", "internal/org", "internal/httpapi", "jobs"} {
		if _, ok := byPath[module+want]; !ok {
			t.Fatalf("package %s is missing; update the rules", want)
		}
	}
	for _, p := range pkgs {
		path := rel(p.ImportPath)
		allImports := slices.Concat(p.Imports, p.TestImports, p.XTestImports)

		// Only platform/postgres names the driver, tests included.
		if path != "internal/platform/postgres" && slices.Contains(allImports, "github.com/lib/pq") {
			t.Errorf("%s imports github.com/lib/pq; use internal/platform/postgres", path)
		}

		// Domain and kernel code never reaches up to the transport or the
		// task handlers: everything under internal/ but the wiring
		// (internal/app) and the HTTP layer itself.
		if strings.HasPrefix(path, "internal/") && path != "internal/app" && !strings.HasPrefix(path, "internal/httpapi") {
			for _, imp := range p.Imports {
				switch {
				case imp == module+"jobs":
					t.Errorf("%s imports the jobs handlers; enqueue through jobs/task", path)
				case strings.HasPrefix(imp, module+"internal/httpapi"):
					t.Errorf("%s imports %s", path, rel(imp))
				case imp == "github.com/gin-gonic/gin":
					t.Errorf("%s imports gin; only internal/httpapi speaks HTTP", path)
				}
			}
		}

		// The HTTP layer sees domain types only, never a store or its rows.
		if strings.HasPrefix(path, "internal/httpapi") {
			for _, imp := range p.Imports {
				if isStore(imp) {
					t.Errorf("%s imports the store %s; use the capability's service and types", path, rel(imp))
				}
			}
		}

		// Task definitions are a leaf: every binary and service imports
		// them, so they import no domain package (or a handler could not
		// call a service that enqueues). apperr is allowed: it is the error
		// vocabulary, a leaf importing nothing of Keel's, and
		// platform/postgres maps the read-only trigger's error to it.
		if path == "jobs/task" {
			for _, dep := range p.Deps {
				d := rel(dep)
				if dep == d {
					continue // not ours
				}
				if d != "internal/outbox" && d != "internal/apperr" && !strings.HasPrefix(d, "internal/platform/") {
					t.Errorf("jobs/task depends on %s; task definitions may use only outbox and platform packages", d)
				}
			}
		}

		// Organizations depend on accounts, never the reverse.
		if path == "internal/auth" || path == "internal/auth/authdb" {
			for _, imp := range p.Deps {
				if strings.HasPrefix(imp, module+"internal/org") {
					t.Errorf("%s depends on %s; auth reaches organizations through auth.Orgs", path, rel(imp))
				}
			}
		}

		// The kernel knows no capability.
		if path == "internal/tenant" || path == "internal/audit" {
			for _, imp := range p.Deps {
				if strings.HasPrefix(imp, module+"internal/auth") || strings.HasPrefix(imp, module+"internal/org") {
					t.Errorf("%s depends on %s; the kernel knows no capability", path, rel(imp))
				}
			}
		}
	}
}

// Statements, as string literals: SELECT, INSERT, UPDATE or DELETE followed
// by a blank, or a WITH query. A raw (backquoted) string matches in any
// case; a quoted one only in upper case, so that an error text such as
// "update %s: %w" is not taken for SQL.
var (
	sqlRaw    = regexp.MustCompile(`(?i)^(select|insert|update|delete)\s|^with\s+(recursive\s+)?\w+\s+as\s*\(`)
	sqlQuoted = regexp.MustCompile(`^(SELECT|INSERT|UPDATE|DELETE)\s|^WITH\s+(RECURSIVE\s+)?\w+\s+AS\s*\(`)
)

// isSQLStatement reports whether the Go string literal lit (as written in
// the source, quotes included) holds an SQL statement.
func isSQLStatement(lit string) bool {
	s, err := strconv.Unquote(lit)
	if err != nil {
		return false
	}
	s = strings.TrimSpace(s)
	if strings.HasPrefix(lit, "`") {
		return sqlRaw.MatchString(s)
	}
	return sqlQuoted.MatchString(s)
}

func TestIsSQLStatement(t *testing.T) {
	for lit, want := range map[string]bool{
		"`SELECT count(*) FROM outbox`":                   true,
		"`\n\t\tselect id\n FROM organizations`":          true,
		"`INSERT INTO canary_runs (task_id) VALUES ($1)`": true,
		"`update outbox SET attempts = 0`":                true,
		"`DELETE FROM `":                                  true,
		"`WITH t AS (SELECT 1) SELECT * FROM t`":          true,
		`"SELECT 1"`:                                      true,
		`"DELETE FROM x WHERE id = $1"`:                   true,
		`"update %s: %w"`:                                 false,
		`"delete dead task"`:                              false,
		"`usage: keelctl COMMAND`":                        false,
		"`Selected nothing`":                              false,
		"`with a bucket configured`":                      false,
		`"ops:canary"`:                                    false,
	} {
		if got := isSQLStatement(lit); got != want {
			t.Errorf("isSQLStatement(%s) = %v, want %v", lit, got, want)
		}
	}
}

// Handlers and commands run no SQL of their own: a statement lives in the
// store of the package that owns its table (a zero-size Store whose methods
// take the handle they run on, see docs/adding-a-capability.md), and the
// task handler or command calls that package. This test names each file
// and line under jobs/ or cmd/ (tests aside) whose string literal is an
// SQL statement.
func TestNoSQLInJobsOrCommands(t *testing.T) {
	root, err := tooltest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	for _, dir := range []string{"jobs", "cmd"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			files++
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING && isSQLStatement(lit.Value) {
					pos := fset.Position(lit.Pos())
					name, _ := filepath.Rel(root, pos.Filename)
					t.Errorf("%s:%d: an SQL statement; move it to the store of the package that owns the table and call that",
						filepath.ToSlash(name), pos.Line)
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files < 10 {
		t.Fatalf("found only %d Go files under jobs/ and cmd/", files)
	}
}

// TestAdminPoolStaysInAdmin: the admin role's pool, which bypasses Row
// Level Security, is reachable only on the path cmd/api → internal/app →
// internal/admin (+ admindb). No other package's code imports admindb, and
// none but that wiring names the pool (app.APIDeps.AdminDB), its URL
// (config's AdminDatabaseURL) or the admin service's DB field, so an
// ordinary handler cannot be handed it.
func TestAdminPoolStaysInAdmin(t *testing.T) {
	t.Parallel()
	pkgs := listPackages(t)
	importers := []string{"internal/admin", "internal/admin/admindb", "internal/app", "cmd/api"}
	// Who may name the pool, by the names it goes by.
	namers := map[string][]string{
		"AdminDB":          {"internal/app", "cmd/api"},
		"AdminDatabaseURL": {"internal/config", "cmd/api"},
	}
	checked := 0
	for _, p := range pkgs {
		path := rel(p.ImportPath)
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
