package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/deadtask"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/queue"
	"github.com/keelhq/keel/internal/platform/redistest"
	"github.com/keelhq/keel/internal/platform/s3test"
	"github.com/keelhq/keel/internal/platform/workertest"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

// The operator's fleet commands against a real database: list a dead task,
// replay it into the outbox, verify a backup, and list the recorded run.
func TestTasksJobsBackupCommands(t *testing.T) {
	db := postgrestest.New(t)
	t.Setenv("DATABASE_URL", db.AppURL)
	t.Setenv("BACKUP_DATABASE_URL", db.OwnerURL)
	ctx := context.Background()
	err := deadtask.Store{}.Record(ctx, db.App, queue.DeadTask{TaskID: "t-1", Type: "email:send", Queue: "critical",
		Payload: []byte(`{}`), Headers: map[string]string{"org_id": "00000000-0000-0000-0000-0000000000aa"}, Error: "smtp: 550 no such user", Retried: 10, MaxRetry: 10})
	if err != nil {
		t.Fatal(err)
	}
	var id string
	if err := db.Owner.Get(&id, `SELECT id::text FROM dead_tasks WHERE task_id = 't-1'`); err != nil {
		t.Fatal(err)
	}
	cmd := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(ctx, args, &out); err != nil {
			t.Fatalf("keelctl %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}
	if out := cmd("tasks", "dead"); !strings.Contains(out, id) || !strings.Contains(out, "550 no such user") || !strings.Contains(out, "0000000000aa") {
		t.Fatalf("tasks dead:\n%s", out)
	}
	if out := cmd("tasks", "replay", id); !strings.Contains(out, "replayed "+id) {
		t.Fatalf("tasks replay:\n%s", out)
	}
	var queued struct {
		Queue    string `db:"queue"`
		MaxRetry int    `db:"max_retry"`
		Org      string `db:"org"`
	}
	if err := db.Owner.Get(&queued, `SELECT queue, max_retry, headers->>'org_id' AS org FROM outbox WHERE task_type = 'email:send'`); err != nil {
		t.Fatal(err)
	}
	if queued.Queue != "critical" || queued.MaxRetry != 10 || queued.Org != "00000000-0000-0000-0000-0000000000aa" {
		t.Fatalf("replayed outbox row: %+v", queued)
	}
	if out := cmd("tasks", "dead"); strings.Contains(out, id) {
		t.Fatalf("replayed task still listed:\n%s", out)
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"tasks", "replay", id}, &out); err == nil {
		t.Fatal("second replay succeeded")
	}
	if out := cmd("backup", "verify"); !strings.Contains(out, "backup verified") {
		t.Fatalf("backup verify:\n%s", out)
	}
	if out := cmd("jobs", "runs"); !strings.Contains(out, "backup:verify") || !strings.Contains(out, " ok ") {
		t.Fatalf("jobs runs:\n%s", out)
	}
}

func TestTasksCanaryWithWorker(t *testing.T) {
	db := postgrestest.New(t)
	r := redistest.Start(t)
	workertest.Start(t, workertest.Binary(t, "worker"), "DATABASE_URL="+db.AppURL, "REDIS_URL="+r.URL)
	t.Setenv("DATABASE_URL", db.AppURL)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"tasks", "canary", "-n", "5", "-wait", "30s"}, &out); err != nil {
		t.Fatalf("tasks canary: %v", err)
	}
	if !strings.Contains(out.String(), "5 canary task(s) ran in") {
		t.Fatalf("output: %s", out.String())
	}
}

// With a bucket configured, `backup verify` restores the newest stored dump
// and says which; an empty prefix fails naming it.
func TestBackupVerifyFromS3Command(t *testing.T) {
	db := postgrestest.New(t)
	srv := s3test.Start(t, "keel-backups")
	srv.MustUpload(t, "keel/daily/latest.dump", postgrestest.MustDump(t, db.OwnerURL, "--format=custom"))
	t.Setenv("DATABASE_URL", db.AppURL)
	t.Setenv("BACKUP_DATABASE_URL", db.OwnerURL)
	c := srv.Config()
	t.Setenv("S3_ENDPOINT", c.Endpoint)
	t.Setenv("S3_ACCESS_KEY_ID", c.AccessKeyID)
	t.Setenv("S3_SECRET_ACCESS_KEY", c.SecretAccessKey)
	t.Setenv("BACKUP_S3_BUCKET", srv.Bucket)
	t.Setenv("BACKUP_S3_PREFIX", "keel/daily/")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"backup", "verify"}, &out); err != nil ||
		!strings.Contains(out.String(), `"object_key": "keel/daily/latest.dump"`) || !strings.Contains(out.String(), "backup verified") {
		t.Fatalf("backup verify: %v\n%s", err, out.String())
	}
	t.Setenv("BACKUP_S3_PREFIX", "keel/weekly/")
	out.Reset()
	if err := run(context.Background(), []string{"backup", "verify"}, &out); err == nil || !strings.Contains(err.Error(), "no objects under s3://keel-backups/keel/weekly/") {
		t.Fatalf("empty prefix: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"jobs", "runs", "-job", "backup:verify"}, &out); err != nil ||
		!strings.Contains(out.String(), " ok ") || !strings.Contains(out.String(), " failed ") {
		t.Fatalf("jobs runs: %v\n%s", err, out.String())
	}
}

// `backup take` stores a dump that `backup verify` then restores; with
// -if-older-than and a fresh dump it takes none; a failing pg_dump exits
// non-zero with its message, and both runs are in job_runs.
func TestBackupTakeCommand(t *testing.T) {
	db := postgrestest.New(t)
	srv := s3test.Start(t, "keel-backups")
	t.Setenv("DATABASE_URL", db.AppURL)
	t.Setenv("BACKUP_DATABASE_URL", db.OwnerURL)
	ctx := context.Background()
	err := deadtask.Store{}.Record(ctx, db.App, queue.DeadTask{TaskID: "t-1", Type: "email:send", Queue: "critical",
		Payload: []byte(`{}`), Error: "smtp: 550", Retried: 10, MaxRetry: 10})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"backup", "take"}, &out); err == nil || !strings.Contains(err.Error(), "BACKUP_S3_BUCKET") {
		t.Fatalf("without a bucket: %v", err)
	}
	c := srv.Config()
	t.Setenv("S3_ENDPOINT", c.Endpoint)
	t.Setenv("S3_ACCESS_KEY_ID", c.AccessKeyID)
	t.Setenv("S3_SECRET_ACCESS_KEY", c.SecretAccessKey)
	t.Setenv("BACKUP_S3_BUCKET", srv.Bucket)
	t.Setenv("BACKUP_S3_PREFIX", "keel/")
	out.Reset()
	if err := run(ctx, []string{"backup", "take"}, &out); err != nil || !strings.Contains(out.String(), "backup stored: s3://keel-backups/keel/") ||
		!strings.Contains(out.String(), "1 dump(s) kept") {
		t.Fatalf("backup take: %v\n%s", err, out.String())
	}
	objs, err := srv.Client.List(ctx, srv.Bucket, "keel/")
	if err != nil || len(objs) != 1 || !strings.Contains(out.String(), objs[0].Key) {
		t.Fatalf("stored %+v (%v), output:\n%s", objs, err, out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"backup", "verify"}, &out); err != nil || !strings.Contains(out.String(), `"object_key": "`+objs[0].Key+`"`) {
		t.Fatalf("backup verify after take: %v\n%s", err, out.String())
	}
	// The runbook's restore: list, download, pg_restore into a new database.
	out.Reset()
	if err := run(ctx, []string{"backup", "list"}, &out); err != nil || !strings.Contains(out.String(), objs[0].Key) {
		t.Fatalf("backup list: %v\n%s", err, out.String())
	}
	file := filepath.Join(t.TempDir(), "keel.dump")
	out.Reset()
	if err := run(ctx, []string{"backup", "download", objs[0].Key, file}, &out); err != nil || !strings.Contains(out.String(), "downloaded") {
		t.Fatalf("backup download: %v\n%s", err, out.String())
	}
	if err := run(ctx, []string{"backup", "download", objs[0].Key, file}, &out); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("download over an existing file: %v", err)
	}
	restored := db.Name + "_restored"
	if _, err := db.Owner.Exec(`CREATE DATABASE ` + restored + ` TEMPLATE template0`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = db.Owner.Exec(`DROP DATABASE IF EXISTS ` + restored + ` WITH (FORCE)`) })
	restoredURL := strings.Replace(db.OwnerURL, "/"+db.Name+"?", "/"+restored+"?", 1)
	if b, err := exec.Command("pg_restore", "--dbname="+restoredURL, "--exit-on-error", "--jobs=2", file).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, b)
	}
	rdb, err := sqlx.Open("postgres", restoredURL)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	var live, back int
	if err := db.Owner.Get(&live, `SELECT count(*) FROM dead_tasks`); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Get(&back, `SELECT count(*) FROM dead_tasks`); err != nil || back != live || live == 0 {
		t.Fatalf("restored dead_tasks: %d (%v), live %d", back, err, live)
	}
	// Steps 4 and 5: the dump holds the source's schema version; migrate
	// up on the restored database applies nothing and grants the
	// application role, which then reads the rows as the binaries would
	// after the switch (step 6).
	const version = `SELECT max(version_id) FROM goose_db_version WHERE is_applied`
	var liveVersion, backVersion int64
	if err := db.Owner.Get(&liveVersion, version); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Get(&backVersion, version); err != nil || backVersion != liveVersion {
		t.Fatalf("restored schema version %d (%v), live %d", backVersion, err, liveVersion)
	}
	restoredApp := strings.Replace(db.AppURL, "/"+db.Name+"?", "/"+restored+"?", 1)
	t.Setenv("DATABASE_OWNER_URL", restoredURL)
	t.Setenv("DATABASE_URL", restoredApp)
	out.Reset()
	if err := run(ctx, []string{"migrate", "up"}, &out); err != nil || !strings.Contains(out.String(), "application role ready") {
		t.Fatalf("migrate up on the restored database: %v\n%s", err, out.String())
	}
	adb, err := sqlx.Open("postgres", restoredApp)
	if err != nil {
		t.Fatal(err)
	}
	defer adb.Close()
	if err := adb.Get(&back, `SELECT count(*) FROM dead_tasks`); err != nil || back != live {
		t.Fatalf("the application role on the restored database: %d dead tasks (%v), live %d", back, err, live)
	}
	adb.Close()
	t.Setenv("DATABASE_OWNER_URL", db.OwnerURL)
	t.Setenv("DATABASE_URL", db.AppURL)
	out.Reset()
	if err := run(ctx, []string{"backup", "take", "-if-older-than", "1h"}, &out); err != nil || !strings.Contains(out.String(), "backup not taken") {
		t.Fatalf("-if-older-than with a fresh dump: %v\n%s", err, out.String())
	}
	if err := run(ctx, []string{"backup", "take", "-if-older-than", "soon"}, &out); !errors.Is(err, errUsage) {
		t.Fatalf("bad flag: %v", err)
	}
	t.Setenv("BACKUP_DATABASE_URL", strings.Replace(db.OwnerURL, "/"+db.Name+"?", "/keel_no_such_db?", 1))
	out.Reset()
	err = run(ctx, []string{"backup", "take"}, &out)
	if err == nil || !strings.Contains(err.Error(), "pg_dump") || !strings.Contains(err.Error(), "keel_no_such_db") || !strings.Contains(err.Error(), "nothing stored") {
		t.Fatalf("failing pg_dump: %v", err)
	}
	out.Reset()
	if err := run(ctx, []string{"jobs", "runs", "-job", "backup:take"}, &out); err != nil ||
		strings.Count(out.String(), "backup:take") != 2 || !strings.Contains(out.String(), " ok ") || !strings.Contains(out.String(), " failed ") {
		t.Fatalf("jobs runs: %v\n%s", err, out.String())
	}
}
