package backup_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/keelhq/keel/internal/backup"
	"github.com/keelhq/keel/internal/platform/postgrestest"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

// MustPopulate fills a few tables, including one under Row Level Security
// when the schema has one, so counts are not trivially zero.
func MustPopulate(t *testing.T, db *postgrestest.DB, n int) {
	t.Helper()
	if _, err := db.Owner.Exec(`INSERT INTO outbox (id, task_type, payload)
		SELECT gen_random_uuid(), 'test:x', '\x7b7d'::bytea FROM generate_series(1, $1)`, n); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Owner.Exec(`INSERT INTO sent_emails (task_id, recipient, template)
		SELECT 'task-' || g, 'u' || g || '@example.com', 'welcome' FROM generate_series(1, $1) g`, n/2); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyPassesOnPopulatedDatabase(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	MustPopulate(t, db, 500)
	v := &backup.Verifier{SourceURL: db.OwnerURL, WorkDir: t.TempDir()}
	rep, err := v.Verify(context.Background())
	if err != nil {
		t.Fatalf("verify: %v (report %+v)", err, rep)
	}
	if rep.Rows < 750 || rep.Tables < 3 || rep.Version == 0 || rep.Version != rep.RestoredVersion || rep.DumpBytes == 0 {
		t.Fatalf("report: %+v", rep)
	}
	var left int
	if err := db.Owner.Get(&left, `SELECT count(*) FROM pg_database WHERE datname = $1`, rep.Scratch); err != nil || left != 0 {
		t.Fatalf("scratch database %s left behind (%d, %v)", rep.Scratch, left, err)
	}
}

// A restore that silently loses the data (schema only) must fail the check.
func TestVerifyFailsWhenRestoreLosesRows(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	MustPopulate(t, db, 50)
	v := &backup.Verifier{SourceURL: db.OwnerURL, WorkDir: t.TempDir(), PgRestore: BrokenRestore(t, "--schema-only")}
	rep, err := v.Verify(context.Background())
	if !errors.Is(err, backup.ErrMismatch) {
		t.Fatalf("want ErrMismatch, got %v", err)
	}
	found := false
	for _, m := range rep.Mismatches {
		if m.Table == "public.outbox" && m.Source == 50 && m.Restored == 0 {
			found = true
		}
	}
	if !found {
		t.Fatalf("outbox mismatch not reported: %+v", rep.Mismatches)
	}
}

func TestVerifyFailsWithoutSource(t *testing.T) {
	t.Parallel()
	_, err := (&backup.Verifier{}).Verify(context.Background())
	if err == nil {
		t.Fatal("want an error without a source URL")
	}
}

// BrokenRestore returns a pg_restore wrapper that adds args, to break the
// restore in a controlled way.
func BrokenRestore(t *testing.T, args ...string) string {
	t.Helper()
	real, err := exec.LookPath("pg_restore")
	if err != nil {
		t.Fatalf("pg_restore not installed (package postgresql-client): %v", err)
	}
	p := filepath.Join(t.TempDir(), "pg_restore")
	script := "#!/bin/sh\nexec " + real
	for _, a := range args {
		script += " " + a
	}
	script += ` "$@"` + "\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
