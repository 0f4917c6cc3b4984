// Package tooltest finds the dev servers that scripts/tools.sh installs into
// .tools/bin, for tests that start them.
package tooltest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Bin returns the path of tool, failing t when it is not installed: a missing
// server is a broken setup, never a reason to skip.
func Bin(t testing.TB, tool string) string {
	t.Helper()
	if dir := os.Getenv("KEEL_TOOLS_BIN"); dir != "" {
		p := filepath.Join(dir, tool)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if root, err := RepoRoot(); err == nil {
		p := filepath.Join(root, ".tools", "bin", tool)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(tool); err == nil {
		return p
	}
	t.Fatalf("%s is not installed: run scripts/tools.sh (make test does)", tool)
	return ""
}

// RepoRoot walks up from the working directory to the folder holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}
