package jobs_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/internal/backup"
	"github.com/keelhq/keel/internal/email"
	"github.com/keelhq/keel/internal/platform/mail"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/s3test"
	"github.com/keelhq/keel/jobs"
	"github.com/keelhq/keel/jobs/task"
)

// backup:verify with a bucket restores the newest stored dump, records which
// one and what it held, and records a corrupt newest dump as a failure.
func TestBackupVerifyFromS3(t *testing.T) {
	t.Parallel()
	f := MustFleet(t, nil)
	srv := s3test.Start(t, "keel-backups")
	smtp, _ := mail.NewSMTP("smtp://127.0.0.1:1", "x@example.com")
	render, _ := email.NewRenderer("http://localhost", "Keel")
	register := func() {
		f.mux = asynq.NewServeMux()
		v := &backup.Verifier{SourceURL: f.db.OwnerURL, WorkDir: t.TempDir(),
			Store: srv.Client, Bucket: srv.Bucket, Prefix: "keel/daily/"}
		if err := jobs.Register(f.mux, jobs.Deps{DB: f.db.App, Mail: smtp, Render: render, Queue: f.queue, Archive: f.insp, Backup: v}); err != nil {
			t.Fatal(err)
		}
	}
	register()

	// Yesterday's dump predates the rows; today's holds them. A key outside
	// the prefix is newer still and must be ignored.
	srv.MustUpload(t, "keel/daily/2026-01-01.dump", postgrestest.MustDump(t, f.db.OwnerURL, "--format=custom"))
	if _, err := f.db.Owner.Exec(`INSERT INTO sent_emails (task_id, recipient, template)
		SELECT 't' || g, md5(random()::text) || '@example.com', 'welcome' FROM generate_series(1, 3000) g`); err != nil {
		t.Fatal(err)
	}
	today := postgrestest.MustDump(t, f.db.OwnerURL, "--format=custom")
	srv.MustUpload(t, "keel/daily/2026-01-02.dump", today)
	srv.MustUpload(t, "keel/weekly/2026-01-02.dump", today)
	now := time.Now()
	srv.MustSetModTime(t, "keel/daily/2026-01-01.dump", now.Add(-25*time.Hour))
	srv.MustSetModTime(t, "keel/daily/2026-01-02.dump", now.Add(-90*time.Minute))

	if err := f.run(t, task.TypeBackupVerify); err != nil {
		t.Fatalf("backup:verify of the newest stored dump: %v", err)
	}
	r := f.lastRun(t, task.TypeBackupVerify)
	for _, want := range []string{`"source": "s3"`, `"object_key": "keel/daily/2026-01-02.dump"`, `"public.sent_emails": 3000`, `"bucket": "keel-backups"`} {
		if r.Status != "ok" || !strings.Contains(r.Detail, want) {
			t.Fatalf("ok run recorded as %+v; want %s in the detail", r, want)
		}
	}

	var age float64
	if err := f.db.Owner.Get(&age, `SELECT (detail->>'object_age_hours')::float8 FROM job_runs WHERE job = $1 AND status = 'ok'`,
		task.TypeBackupVerify); err != nil || age < 1.45 || age > 1.6 {
		t.Fatalf("object_age_hours %v (%v), want about 1.5", age, err)
	}

	// A newest dump cut short, as an interrupted upload leaves it.
	b, err := os.ReadFile(today)
	if err != nil {
		t.Fatal(err)
	}
	cut := t.TempDir() + "/cut.dump"
	if err := os.WriteFile(cut, b[:len(b)*6/10], 0o600); err != nil {
		t.Fatal(err)
	}
	srv.MustUpload(t, "keel/daily/2026-01-03.dump", cut)
	err = f.run(t, task.TypeBackupVerify)
	if err == nil || !strings.Contains(err.Error(), "restore failed") {
		t.Fatalf("corrupt newest dump: want a restore failure, got %v", err)
	}
	r = f.lastRun(t, task.TypeBackupVerify)
	if r.Status != "failed" || r.Error == nil || !strings.Contains(*r.Error, "keel/daily/2026-01-03.dump") ||
		!strings.Contains(r.Detail, `"object_key": "keel/daily/2026-01-03.dump"`) {
		t.Fatalf("failed run recorded as %+v", r)
	}
	var left int
	if err := f.db.Owner.Get(&left, `SELECT count(*) FROM pg_database WHERE datname LIKE 'keel_verify_%' AND datname = ANY(
		SELECT detail->>'scratch' FROM job_runs WHERE job = $1)`, task.TypeBackupVerify); err != nil || left != 0 {
		t.Fatalf("scratch databases left behind: %d, %v", left, err)
	}
}
