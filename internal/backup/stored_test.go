package backup_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/backup"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/s3test"
)

// MustStored returns a verifier of the dumps under prefix "db/" in a fresh
// bucket, against db as the live database.
func MustStored(t *testing.T, db *postgrestest.DB) (*backup.Verifier, *s3test.Server) {
	t.Helper()
	srv := s3test.Start(t, "keel-backups")
	return &backup.Verifier{SourceURL: db.OwnerURL, WorkDir: t.TempDir(), Store: srv.Client, Bucket: srv.Bucket, Prefix: "db/"}, srv
}

func TestStoredPassesAndRecordsRowCounts(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	MustPopulate(t, db, 200)
	v, srv := MustStored(t, db)
	srv.MustUpload(t, "db/today.dump", postgrestest.MustDump(t, db.OwnerURL, "--format=custom"))
	// Rows written after the dump do not make it fail: it is a point in time.
	if _, err := db.Owner.Exec(`INSERT INTO outbox (id, task_type, payload) SELECT gen_random_uuid(), 'test:y', '' FROM generate_series(1, 10)`); err != nil {
		t.Fatal(err)
	}
	rep, err := v.Verify(context.Background())
	if err != nil {
		t.Fatalf("verify: %v (%+v)", err, rep)
	}
	if rep.Source != backup.SourceS3 || rep.ObjectKey != "db/today.dump" || rep.TableRows["public.outbox"] != 200 ||
		rep.TableRows["public.sent_emails"] != 100 || rep.Version == 0 || rep.RestoredVersion != rep.Version || rep.DumpBytes == 0 {
		t.Fatalf("report: %+v", rep)
	}
}

func TestStoredFailsWithoutObjects(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	v, srv := MustStored(t, db)
	// Beside the prefix, not under it.
	srv.MustUpload(t, "dbx/today.dump", postgrestest.MustDump(t, db.OwnerURL, "--format=custom"))
	_, err := v.Verify(context.Background())
	if !errors.Is(err, backup.ErrNoBackup) || !strings.Contains(err.Error(), "no objects under s3://keel-backups/db/") {
		t.Fatalf("want ErrNoBackup naming the prefix, got %v", err)
	}
}

func TestStoredFailsWhenTooOld(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	v, srv := MustStored(t, db)
	srv.MustUpload(t, "db/old.dump", postgrestest.MustDump(t, db.OwnerURL, "--format=custom"))
	srv.MustSetModTime(t, "db/old.dump", time.Now().Add(-30*time.Hour-time.Minute))
	rep, err := v.Verify(context.Background())
	if !errors.Is(err, backup.ErrStale) || !strings.Contains(err.Error(), "latest backup is 30 hours old") {
		t.Fatalf("want ErrStale, got %v", err)
	}
	if rep.ObjectKey != "db/old.dump" || rep.ObjectAgeHours < 30 {
		t.Fatalf("report: %+v", rep)
	}
	v.MaxAge = 31 * time.Hour
	if _, err := v.Verify(context.Background()); err != nil {
		t.Fatalf("within BACKUP_MAX_AGE: %v", err)
	}
}

func TestStoredRejectsOtherFormats(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	v, srv := MustStored(t, db)
	srv.MustUpload(t, "db/plain.sql", postgrestest.MustDump(t, db.OwnerURL, "--format=plain"))
	_, err := v.Verify(context.Background())
	if !errors.Is(err, backup.ErrFormat) || !strings.Contains(err.Error(), "db/plain.sql is a plain SQL dump") {
		t.Fatalf("want ErrFormat for a plain dump, got %v", err)
	}
	srv.MustUpload(t, "db/tar.dump", postgrestest.MustDump(t, db.OwnerURL, "--format=tar"))
	srv.MustSetModTime(t, "db/plain.sql", time.Now().Add(-time.Hour))
	_, err = v.Verify(context.Background())
	if !errors.Is(err, backup.ErrFormat) || !strings.Contains(err.Error(), "tar-format") {
		t.Fatalf("want ErrFormat for a tar dump, got %v", err)
	}
}

// A dump from a newer schema than the live database's cannot be what this
// deployment restores from.
func TestStoredFailsWhenDumpIsAheadOfLive(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	v, srv := MustStored(t, db)
	srv.MustUpload(t, "db/ahead.dump", postgrestest.MustDump(t, db.OwnerURL, "--format=custom"))
	if _, err := db.Owner.Exec(`DELETE FROM goose_db_version WHERE version_id = (SELECT max(version_id) FROM goose_db_version)`); err != nil {
		t.Fatal(err)
	}
	rep, err := v.Verify(context.Background())
	if !errors.Is(err, backup.ErrMismatch) || !strings.Contains(err.Error(), "newer than the live database's") ||
		rep.RestoredVersion <= rep.Version {
		t.Fatalf("want ErrMismatch on versions, got %v (%+v)", err, rep)
	}
	var left int
	if err := db.Owner.Get(&left, `SELECT count(*) FROM pg_database WHERE datname = $1`, rep.Scratch); err != nil || left != 0 {
		t.Fatalf("scratch database %s left behind (%d, %v)", rep.Scratch, left, err)
	}
}
