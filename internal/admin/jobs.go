package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/deadtask"
	"github.com/keelhq/keel/internal/jobrun"
	"github.com/keelhq/keel/jobs/task"
)

// JobStore lists periodic job runs and dead tasks (platform tables).
type JobStore interface {
	// LatestRuns returns the newest run of every job that ever ran, by job
	// name.
	LatestRuns(ctx context.Context, tx sqlx.QueryerContext) ([]jobrun.Run, error)
	// RecentRuns returns the newest limit runs of every job, newest first.
	RecentRuns(ctx context.Context, tx sqlx.QueryerContext, limit int) ([]jobrun.Run, error)
	// DeadTasks returns the newest limit dead tasks not replayed yet,
	// newest first, payloads as stored (the caller redacts them).
	DeadTasks(ctx context.Context, tx sqlx.QueryerContext, limit int) ([]deadtask.Task, error)
}

// Sizes of the jobs view.
const (
	RecentRunsSize = 50
	DeadTasksSize  = 100
)

// Jobs is the jobs view: each periodic job's latest run, the newest runs
// and the dead tasks waiting for an operator.
type Jobs struct {
	Latest []jobrun.Run
	Recent []jobrun.Run
	// Dead payloads are raw: whoever shows them redacts their secrets
	// (the HTTP layer uses the queue UI's redaction).
	Dead []deadtask.Task
}

// Errors of a replay.
var (
	errDeadTaskNotFound = apperr.New(apperr.NotFound, "not_found", "No such dead task.")
	errAlreadyReplayed  = apperr.New(apperr.Conflict, "already_replayed", "This dead task was already replayed; its replay is a task of its own.")
)

// Jobs reads the jobs view and audits the read as a platform row
// (admin.jobs_viewed).
func (s *Service) Jobs(ctx context.Context, a *Admin, meta audit.Meta) (*Jobs, error) {
	var j Jobs
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		if j.Latest, err = s.Store.LatestRuns(ctx, tx); err != nil {
			return fmt.Errorf("latest job runs: %w", err)
		}
		if j.Recent, err = s.Store.RecentRuns(ctx, tx, RecentRunsSize); err != nil {
			return fmt.Errorf("recent job runs: %w", err)
		}
		if j.Dead, err = s.Store.DeadTasks(ctx, tx, DeadTasksSize); err != nil {
			return fmt.Errorf("dead tasks: %w", err)
		}
		return record(ctx, tx, a, meta, uuid.Nil, "admin.jobs_viewed", "", "",
			map[string]int{"latest": len(j.Latest), "recent": len(j.Recent), "dead": len(j.Dead)})
	})
	if err != nil {
		return nil, err
	}
	return &j, nil
}

// ReplayDeadTask enqueues dead task id again through the outbox, as keelctl
// tasks replay does: a new task with the type's current retries and
// timeout, the original headers (same organization and request). The
// replay runs on the application pool (dead_tasks and outbox are platform
// tables the admin role may not write) inside the admin transaction that
// audits it (admin.task_replayed, a platform row naming the new task): a
// replay that fails writes no row. The two pools cannot share a
// transaction, so a failure between the replay's commit and the audit's
// (the database lost in between) leaves a replay without its row; the
// call then answers an error, and dead_tasks still records the replay. It
// returns the new task's ID.
func (s *Service) ReplayDeadTask(ctx context.Context, a *Admin, id uuid.UUID, meta audit.Meta) (uuid.UUID, error) {
	if s.App == nil {
		return uuid.Nil, ErrUnavailable
	}
	var newID uuid.UUID
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		newID, err = (&deadtask.Service{DB: s.App}).Replay(ctx, id, taskSpec)
		switch {
		case errors.Is(err, deadtask.ErrNotFound):
			return errDeadTaskNotFound
		case errors.Is(err, deadtask.ErrAlreadyReplayed):
			return errAlreadyReplayed
		case err != nil:
			return fmt.Errorf("replay dead task: %w", err)
		}
		return record(ctx, tx, a, meta, uuid.Nil, "admin.task_replayed", "dead_task", id.String(),
			map[string]string{"task_id": newID.String()})
	})
	return newID, err
}

// taskSpec gives a task type's current retries and timeout from its Spec.
func taskSpec(typ string) (int, time.Duration, bool) {
	sp, ok := task.Lookup(typ)
	return sp.MaxRetry, sp.Timeout, ok
}
