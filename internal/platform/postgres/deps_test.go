package postgres_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/keelhq/keel/internal/platform/tooltest"
)

// TestOnlyThisPackageImportsTheDriver keeps the package's promise: no other
// package of the module, tests included, imports lib/pq, so swapping the
// driver touches this package only. Others use DriverName, QuoteIdentifier,
// QuoteLiteral, Array and Listener.
func TestOnlyThisPackageImportsTheDriver(t *testing.T) {
	t.Parallel()
	const (
		driver = "github.com/lib/pq"
		self   = "github.com/keelhq/keel/internal/platform/postgres"
	)
	root, err := tooltest.RepoRoot()
	if err != nil {
		t.Fatalf("module root: %v", err)
	}
	// Imports, TestImports and XTestImports come from the files' import
	// blocks alone, so listing every package this way takes well under a
	// second and compiles nothing.
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,TestImports,XTestImports,Error", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	type pkg struct {
		ImportPath                         string
		Imports, TestImports, XTestImports []string
		Error                              *struct{ Err string }
	}
	var offenders []string
	n := 0
	for dec := json.NewDecoder(bytes.NewReader(out)); ; n++ {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Error != nil {
			t.Errorf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		if p.ImportPath == self {
			continue
		}
		for kind, imports := range map[string][]string{"": p.Imports, " (tests)": p.TestImports, " (external tests)": p.XTestImports} {
			if slices.Contains(imports, driver) {
				offenders = append(offenders, p.ImportPath+kind)
			}
		}
	}
	if n < 10 {
		t.Fatalf("go list found only %d packages under %s; the check would prove nothing", n, root)
	}
	if len(offenders) > 0 {
		slices.Sort(offenders)
		t.Errorf("%s is imported outside %s by:\n\t%s\nuse the postgres package's DriverName, QuoteIdentifier, QuoteLiteral, Array or Listener instead, or add what is missing there",
			driver, self, strings.Join(offenders, "\n\t"))
	}
}
