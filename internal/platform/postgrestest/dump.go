package postgrestest

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// MustDump runs pg_dump on the database at url with args (such as
// "--format=custom") and returns the dump file's path, removed when t ends.
func MustDump(t testing.TB, url string, args ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "db.dump")
	out, err := exec.Command("pg_dump", append([]string{"--dbname=" + url, "--file=" + p}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_dump (package postgresql-client): %v: %s", err, out)
	}
	return p
}
