package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/internal/file"
	"github.com/keelhq/keel/internal/file/filedb"
	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/plan/plandb"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/s3"
	"github.com/keelhq/keel/internal/platform/s3test"
	"github.com/keelhq/keel/jobs"
	"github.com/keelhq/keel/jobs/task"
)

// A file:process task runs under the organization of its org_id header:
// with org A it does not find org B's file (B's Row Level Security hides
// it) and changes nothing; with B it processes it. A file:delete-objects
// whose payload names another organization than its header is refused for
// good.
func TestFileTasksRunUnderTheirOrganization(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := s3test.Start(t, "files")
	bucket := s3.Bucket{Client: srv.Client, Name: srv.Bucket}
	cat, err := plan.Load("")
	if err != nil {
		t.Fatal(err)
	}
	e.deps.Files = &file.Service{DB: e.db.App, Store: filedb.Store{}, Objects: bucket,
		Limiter: &plan.Limiter{Plans: plan.Fixed{Plan: cat.DefaultPlan()}, Store: plandb.Store{}}}
	mux := asynq.NewServeMux()
	if err := jobs.Register(mux, e.deps); err != nil {
		t.Fatal(err)
	}
	orgA, orgB, res, fileB := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	e.db.Owner.MustExec(`INSERT INTO organizations (id, name) VALUES ($1, 'A'), ($2, 'B')`, orgA, orgB)
	e.db.Owner.MustExec(`INSERT INTO resources (org_id, id, name) VALUES ($1, $2, 'r')`, orgB, res)
	e.db.Owner.MustExec(`INSERT INTO files (org_id, id, resource_id, filename, content_type, size, completed_at)
		VALUES ($1, $2, $3, 'b.txt', 'text/plain', 5, now())`, orgB, fileB, res)
	if err := bucket.Put(context.Background(), file.Key(orgB, fileB), "text/plain", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	run := func(build func(org uuid.UUID) (outbox.Task, error), org uuid.UUID) error {
		ot, err := build(org)
		if err != nil {
			t.Fatal(err)
		}
		return mux.ProcessTask(context.Background(), asynq.NewTaskWithHeaders(ot.Type, ot.Payload, ot.Headers))
	}
	status := func() string {
		var s string
		e.db.Owner.Get(&s, `SELECT status FROM files WHERE id = $1`, fileB)
		return s
	}
	process := func(org uuid.UUID) (outbox.Task, error) { return task.NewFileProcessTask(org, fileB) }
	if err := run(process, orgA); err != nil || status() != "pending" {
		t.Fatalf("as A: %v, status %s", err, status())
	}
	if err := run(process, orgB); err != nil || status() != "ready" {
		t.Fatalf("as B: %v, status %s", err, status())
	}
	forged, _ := json.Marshal(task.FileDeleteObjectsPayload{OrgID: orgB, FileIDs: []uuid.UUID{fileB}})
	err = mux.ProcessTask(context.Background(), asynq.NewTaskWithHeaders(task.TypeFileDeleteObjects, forged,
		map[string]string{outbox.HeaderOrgID: orgA.String()}))
	if !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("delete-objects naming another org: %v", err)
	}
	if _, err := bucket.Head(context.Background(), file.Key(orgB, fileB)); err != nil {
		t.Fatalf("object gone: %v", err)
	}
	// The periodic cleanup runs and records its run.
	p, _ := json.Marshal(task.PeriodicPayload{Slot: time.Now()})
	if err := mux.ProcessTask(context.Background(), asynq.NewTask(task.TypeFilesCleanupPending, p)); err != nil {
		t.Fatal(err)
	}
	var runs int
	e.db.Owner.Get(&runs, `SELECT count(*) FROM job_runs WHERE job = $1`, task.TypeFilesCleanupPending)
	if runs != 1 {
		t.Fatalf("%d job runs", runs)
	}

	// resources:purge, registered with the files service, takes a purged
	// resource's ready file along: its row and counted storage go in the
	// purge's transaction, and file:delete-objects deletes the object.
	var stored int64
	e.db.Owner.Get(&stored, postgrestest.UsageSQL, orgB, "storage_bytes")
	if stored != 5 {
		t.Fatalf("storage counted %d, want the 5 bytes of the ready file", stored)
	}
	e.db.Owner.MustExec(`UPDATE resources SET deleted_at = now() - interval '31 days' WHERE id = $1`, res)
	if err := mux.ProcessTask(context.Background(), task.NewPeriodicTask(task.TypeResourcesPurge, time.Now().Truncate(time.Minute))); err != nil {
		t.Fatal(err)
	}
	var files, resources int
	e.db.Owner.Get(&files, `SELECT count(*) FROM files WHERE id = $1`, fileB)
	e.db.Owner.Get(&resources, `SELECT count(*) FROM resources WHERE id = $1`, res)
	e.db.Owner.Get(&stored, postgrestest.UsageSQL, orgB, "storage_bytes")
	if files != 0 || resources != 0 || stored != 0 {
		t.Fatalf("after the purge: %d files, %d resources, %d bytes counted", files, resources, stored)
	}
	var payload []byte
	if err := e.db.Owner.Get(&payload, `SELECT payload FROM outbox WHERE task_type = $1 AND headers->>'org_id' = $2`, task.TypeFileDeleteObjects, orgB.String()); err != nil {
		t.Fatalf("no file:delete-objects in the outbox: %v", err)
	}
	if err := mux.ProcessTask(context.Background(), asynq.NewTaskWithHeaders(task.TypeFileDeleteObjects, payload,
		map[string]string{outbox.HeaderOrgID: orgB.String()})); err != nil {
		t.Fatal(err)
	}
	if _, err := bucket.Head(context.Background(), file.Key(orgB, fileB)); err == nil {
		t.Fatal("the purged file's object is still there")
	}
}
