package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/backup"
	"github.com/keelhq/keel/internal/email"
	"github.com/keelhq/keel/internal/platform/mail"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/redistest"
	"github.com/keelhq/keel/internal/platform/s3test"
	"github.com/keelhq/keel/internal/schedule"
	"github.com/keelhq/keel/jobs"
	"github.com/keelhq/keel/jobs/task"
)

type fleet struct {
	db    *postgrestest.DB
	mux   *asynq.ServeMux
	opt   asynq.RedisConnOpt
	insp  *asynq.Inspector
	queue *asynq.Client
}

// MustFleet registers every handler against a fresh database and a private
// Redis, with the given backup verifier.
func MustFleet(t *testing.T, v *backup.Verifier) *fleet {
	t.Helper()
	db := postgrestest.New(t)
	r := redistest.Start(t)
	opt, err := asynq.ParseRedisURI(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{db: db, mux: asynq.NewServeMux(), opt: opt, insp: asynq.NewInspector(opt), queue: asynq.NewClient(opt)}
	t.Cleanup(func() { f.insp.Close(); f.queue.Close() })
	smtp, err := mail.NewSMTP("smtp://127.0.0.1:1", "x@example.com")
	if err != nil {
		t.Fatal(err)
	}
	render, err := email.NewRenderer("http://localhost", "Keel")
	if err != nil {
		t.Fatal(err)
	}
	err = jobs.Register(f.mux, jobs.Deps{DB: db.App, Mail: smtp, Render: render, Queue: f.queue, Archive: f.insp,
		Backup: v, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fleet) run(t *testing.T, typ string) error {
	t.Helper()
	return f.mux.ProcessTask(context.Background(), task.NewPeriodicTask(typ, time.Now().Truncate(time.Minute)))
}

type run struct {
	Status string  `db:"status"`
	Detail string  `db:"detail"`
	Error  *string `db:"error"`
}

func (f *fleet) lastRun(t *testing.T, job string) run {
	t.Helper()
	var r run
	if err := f.db.Owner.Get(&r, `SELECT status, detail::text AS detail, error FROM job_runs WHERE job = $1 ORDER BY started_at DESC LIMIT 1`, job); err != nil {
		t.Fatalf("job_runs for %s: %v", job, err)
	}
	return r
}

func TestEverySpecIsRegisteredAndScheduledTypesHaveSpecs(t *testing.T) {
	t.Parallel()
	f := MustFleet(t, nil)
	for _, s := range task.Specs() {
		if s.MaxRetry <= 0 || s.Timeout <= 0 || s.Queue == "" {
			t.Errorf("%s: incomplete spec %+v", s.Type, s)
		}
		if h, pattern := f.mux.Handler(asynq.NewTask(s.Type, nil)); pattern != s.Type || h == nil {
			t.Errorf("%s has no handler", s.Type)
		}
	}
	entries, err := jobs.Schedule(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if s := task.SpecOf(e.Name); s.Tenancy != task.Platform {
			t.Errorf("scheduled %s is a %s task; the scheduler enqueues no organization", e.Name, s.Tenancy)
		}
	}
}

func TestBackupVerifyRecordsSuccessAndBrokenRestore(t *testing.T) {
	t.Parallel()
	// The verifier dumps as the owner of this test's database.
	f := MustFleet(t, nil)
	smtp, _ := mail.NewSMTP("smtp://127.0.0.1:1", "x@example.com")
	render, _ := email.NewRenderer("http://localhost", "Keel")
	if _, err := f.db.Owner.Exec(`INSERT INTO sent_emails (task_id, recipient, template)
		SELECT 't' || g, 'a@example.com', 'welcome' FROM generate_series(1, 300) g`); err != nil {
		t.Fatal(err)
	}
	register := func(v *backup.Verifier) {
		f.mux = asynq.NewServeMux()
		if err := jobs.Register(f.mux, jobs.Deps{DB: f.db.App, Mail: smtp, Render: render, Queue: f.queue, Archive: f.insp, Backup: v}); err != nil {
			t.Fatal(err)
		}
	}

	register(&backup.Verifier{SourceURL: f.db.OwnerURL, WorkDir: t.TempDir()})
	if err := f.run(t, task.TypeBackupVerify); err != nil {
		t.Fatalf("backup:verify on a healthy database: %v", err)
	}
	if r := f.lastRun(t, task.TypeBackupVerify); r.Status != "ok" || !strings.Contains(r.Detail, `"rows"`) || strings.Contains(r.Detail, `"mismatches"`) {
		t.Fatalf("ok run recorded as %+v", r)
	}

	register(&backup.Verifier{SourceURL: f.db.OwnerURL, WorkDir: t.TempDir(), PgRestore: brokenRestore(t)})
	err := f.run(t, task.TypeBackupVerify)
	if !errors.Is(err, backup.ErrMismatch) || !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("broken restore: want ErrMismatch wrapping SkipRetry, got %v", err)
	}
	r := f.lastRun(t, task.TypeBackupVerify)
	if r.Status != "failed" || r.Error == nil || !strings.Contains(*r.Error, "differs") ||
		!strings.Contains(r.Detail, `{"table": "public.sent_emails", "source": 300, "restored": 0}`) {
		t.Fatalf("failed run recorded as %+v", r)
	}

	register(nil)
	err = f.run(t, task.TypeBackupVerify)
	if err == nil || !strings.Contains(err.Error(), "BACKUP_DATABASE_URL") {
		t.Fatalf("without a backup URL: %v", err)
	}
}

// backup:take as the worker runs it: the dump lands under the prefix and
// its key, size and parts are the run's detail; the verify that follows
// restores it. Without a bucket the run fails naming the variables.
func TestBackupTakeThenVerifyAsJobs(t *testing.T) {
	t.Parallel()
	f := MustFleet(t, nil)
	srv := s3test.Start(t, "keel-backups")
	smtp, _ := mail.NewSMTP("smtp://127.0.0.1:1", "x@example.com")
	render, _ := email.NewRenderer("http://localhost", "Keel")
	register := func(tk *backup.Taker) {
		f.mux = asynq.NewServeMux()
		v := &backup.Verifier{SourceURL: f.db.OwnerURL, WorkDir: t.TempDir(), Store: srv.Client, Bucket: srv.Bucket, Prefix: "keel/"}
		if err := jobs.Register(f.mux, jobs.Deps{DB: f.db.App, Mail: smtp, Render: render, Queue: f.queue, Archive: f.insp,
			Backup: v, BackupTake: tk}); err != nil {
			t.Fatal(err)
		}
	}
	register(nil)
	err := f.run(t, task.TypeBackupTake)
	if err == nil || !strings.Contains(err.Error(), "BACKUP_DATABASE_URL") || !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("without a source: %v", err)
	}
	register(&backup.Taker{SourceURL: f.db.OwnerURL, Store: srv.Client, Bucket: srv.Bucket, Prefix: "keel/", Retention: backup.Retention{Days: 30, Keep: 7}})
	if err := f.run(t, task.TypeBackupTake); err != nil {
		t.Fatalf("backup:take: %v", err)
	}
	r := f.lastRun(t, task.TypeBackupTake)
	objs, err := srv.Client.List(context.Background(), srv.Bucket, "keel/")
	if err != nil || len(objs) != 1 || r.Status != "ok" || !strings.Contains(r.Detail, `"key": "`+objs[0].Key+`"`) ||
		!strings.Contains(r.Detail, fmt.Sprintf(`"bytes": %d`, objs[0].Size)) || !strings.Contains(r.Detail, `"parts": 1`) {
		t.Fatalf("run %+v, objects %+v (%v)", r, objs, err)
	}
	if err := f.run(t, task.TypeBackupVerify); err != nil {
		t.Fatalf("backup:verify after backup:take: %v", err)
	}
	if r := f.lastRun(t, task.TypeBackupVerify); !strings.Contains(r.Detail, `"object_key": "`+objs[0].Key+`"`) {
		t.Fatalf("verify run %+v, want it to restore %s", r, objs[0].Key)
	}
}

func TestScheduleOverrides(t *testing.T) {
	t.Parallel()
	find := func(entries []schedule.Entry, name string) (schedule.Entry, bool) {
		for _, e := range entries {
			if e.Name == name {
				return e, true
			}
		}
		return schedule.Entry{}, false
	}
	def, err := jobs.Schedule(nil)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := find(def, task.TypeBackupTake); !ok || e.Spec != "0 3 * * *" || e.Missed != schedule.MissedFireOnce {
		t.Fatalf("backup:take by default: %+v, %t", e, ok)
	}
	got, err := jobs.Schedule(map[string]string{task.TypeBackupTake: "30 1 * * *", task.TypeBackupVerify: jobs.ScheduleOff})
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := find(got, task.TypeBackupTake); !ok || e.Spec != "30 1 * * *" {
		t.Fatalf("overridden: %+v", e)
	}
	if _, ok := find(got, task.TypeBackupVerify); ok || len(got) != len(def)-1 {
		t.Fatalf("off: backup:verify still scheduled (%d of %d entries)", len(got), len(def))
	}
	if _, err := jobs.Schedule(map[string]string{"email:send": "* * * * *"}); err == nil {
		t.Fatal("an override of a task that is not periodic was accepted")
	}
}

// brokenRestore restores the schema but no data, as a truncated dump would.
func brokenRestore(t *testing.T) string {
	t.Helper()
	real, err := exec.LookPath("pg_restore")
	if err != nil {
		t.Fatalf("pg_restore (package postgresql-client): %v", err)
	}
	p := filepath.Join(t.TempDir(), "pg_restore")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexec "+real+" --schema-only \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// tokens:purge deletes expired rows from the identity tables that exist,
// one organization at a time for a table under Row Level Security, and
// reports the tables that do not exist as skipped.
func TestTokensPurgeToleratesMissingTablesAndRLS(t *testing.T) {
	t.Parallel()
	f := MustFleet(t, nil)
	// The identity migration made the tables; invitations is under RLS.
	// email_tokens is dropped to show a missing table is skipped.
	ddl := `
		DROP TABLE email_tokens;
		INSERT INTO organizations (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'a'), ('00000000-0000-0000-0000-00000000000b', 'b');
		INSERT INTO users (id, email, name, password_hash) VALUES ('00000000-0000-0000-0000-0000000000c1', 'u@example.com', 'u', 'x');
		INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, expires_at) VALUES
			(gen_random_uuid(), gen_random_uuid(), '00000000-0000-0000-0000-0000000000c1', '\x01', now() - interval '3 days'),
			(gen_random_uuid(), gen_random_uuid(), '00000000-0000-0000-0000-0000000000c1', '\x02', now() - interval '3 days'),
			(gen_random_uuid(), gen_random_uuid(), '00000000-0000-0000-0000-0000000000c1', '\x03', now() + interval '1 day');
		INSERT INTO invitations (id, org_id, email, role, token_hash, expires_at) VALUES
			(gen_random_uuid(), '00000000-0000-0000-0000-00000000000a', 'i1@example.com', 'member', '\x01', now() - interval '3 days'),
			(gen_random_uuid(), '00000000-0000-0000-0000-00000000000b', 'i2@example.com', 'member', '\x02', now() - interval '3 days'),
			(gen_random_uuid(), '00000000-0000-0000-0000-00000000000b', 'i3@example.com', 'member', '\x03', now() + interval '3 days');
		INSERT INTO idempotency_keys (org_id, credential, key, fingerprint, lock_id, locked_until, created_at, expires_at) VALUES
			('00000000-0000-0000-0000-00000000000a', gen_random_uuid(), 'k1', '\x01', gen_random_uuid(), now(), now() - interval '25 hours', now() - interval '1 hour'),
			('00000000-0000-0000-0000-00000000000b', gen_random_uuid(), 'k2', '\x01', gen_random_uuid(), now(), now() - interval '1 hour', now() + interval '23 hours');`
	if _, err := f.db.Owner.Exec(ddl); err != nil {
		t.Fatal(err)
	}
	if err := f.run(t, task.TypeTokensPurge); err != nil {
		t.Fatal(err)
	}
	for table, want := range map[string]int{"refresh_tokens": 1, "invitations": 1, "idempotency_keys": 1} {
		var n int
		if err := f.db.Owner.Get(&n, `SELECT count(*) FROM `+table); err != nil || n != want {
			t.Errorf("%s: %d rows left (%v), want %d", table, n, err, want)
		}
	}
	r := f.lastRun(t, task.TypeTokensPurge)
	if r.Status != "ok" || !strings.Contains(r.Detail, `"skipped": "table does not exist"`) {
		t.Fatalf("run: %+v", r)
	}
}

func TestRetentionPurge(t *testing.T) {
	t.Parallel()
	f := MustFleet(t, nil)
	role := postgrestest.AppRole()
	if _, err := f.db.Owner.Exec(fmt.Sprintf(`
		INSERT INTO outbox (id, task_type, payload, dispatched_at) VALUES
			(gen_random_uuid(), 'x', '', now() - interval '2 days'),
			(gen_random_uuid(), 'x', '', now() - interval '1 hour'),
			(gen_random_uuid(), 'x', '', NULL);
		INSERT INTO job_runs (id, job, task_id, status, started_at) VALUES (gen_random_uuid(), 'old', 't', 'ok', now() - interval '100 days');
		INSERT INTO organizations (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'a');
		INSERT INTO audit_log (id, org_id, action, created_at) VALUES
			(gen_random_uuid(), '00000000-0000-0000-0000-00000000000a', 'old', now() - interval '400 days'),
			(gen_random_uuid(), '00000000-0000-0000-0000-00000000000a', 'new', now());
		CREATE TABLE notes (id serial PRIMARY KEY, deleted_at timestamptz);
		GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO %q;
		INSERT INTO notes (deleted_at) VALUES (now() - interval '40 days'), (now() - interval '1 day'), (NULL);`, role)); err != nil {
		t.Fatal(err)
	}
	if err := f.run(t, task.TypeRetentionPurge); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]int{
		`SELECT count(*) FROM outbox`:                     2,
		`SELECT count(*) FROM notes`:                      2,
		`SELECT count(*) FROM job_runs WHERE job = 'old'`: 0,
		`SELECT count(*) FROM audit_log`:                  1,
	} {
		var n int
		if err := f.db.Owner.Get(&n, q); err != nil || n != want {
			t.Errorf("%s = %d (%v), want %d", q, n, err, want)
		}
	}
	if r := f.lastRun(t, task.TypeRetentionPurge); r.Status != "ok" || !strings.Contains(r.Detail, `"audit_log": {"deleted": 1}`) {
		t.Fatalf("run: %+v", r)
	}
}

// dead:sync copies archived tasks that no worker recorded (a lost lease on
// the last attempt) into dead_tasks, once.
func TestDeadSyncMirrorsArchive(t *testing.T) {
	t.Parallel()
	f := MustFleet(t, nil)
	info, err := f.queue.Enqueue(asynq.NewTaskWithHeaders("ops:canary", []byte(`{}`), map[string]string{"org_id": "00000000-0000-0000-0000-00000000000c"}),
		asynq.Queue(task.QueueLow), asynq.TaskID("lost-1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.insp.ArchiveTask(info.Queue, info.ID); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := f.run(t, task.TypeDeadSync); err != nil {
			t.Fatal(err)
		}
	}
	var org string
	if err := f.db.Owner.Get(&org, `SELECT tenant_org_id::text FROM dead_tasks WHERE task_id = 'lost-1'`); err != nil || org != "00000000-0000-0000-0000-00000000000c" {
		t.Fatalf("dead task: %q %v", org, err)
	}
}

// outbox:sweep relays rows that waited more than a minute.
func TestOutboxSweep(t *testing.T) {
	t.Parallel()
	f := MustFleet(t, nil)
	if _, err := f.db.Owner.Exec(`INSERT INTO outbox (id, task_type, payload, queue, created_at) VALUES
		('018f0000-0000-7000-8000-000000000001', 'ops:canary', '{}', 'default', now() - interval '5 minutes')`); err != nil {
		t.Fatal(err)
	}
	if err := f.run(t, task.TypeOutboxSweep); err != nil {
		t.Fatal(err)
	}
	if _, err := f.insp.GetTaskInfo(task.QueueDefault, "018f0000-0000-7000-8000-000000000001"); err != nil {
		t.Fatalf("swept row not enqueued: %v", err)
	}
	if r := f.lastRun(t, task.TypeOutboxSweep); !strings.Contains(r.Detail, `"dispatched": 1`) {
		t.Fatalf("run: %+v", r)
	}
}
