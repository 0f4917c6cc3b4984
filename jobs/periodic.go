package jobs

import (
	"context"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/jobrun"
	"github.com/keelhq/keel/jobs/task"
)

// JobObserver is told how each periodic job run ended; the worker turns it
// into metrics.
type JobObserver func(job string, err error)

// periodic runs a periodic job's body and records it in job_runs. A job that
// failed is not retried (the next slot runs it again): its error wraps
// asynq.SkipRetry, so it becomes a dead task and one Sentry report at once.
type periodic struct {
	db      *sqlx.DB // job_runs is written on the pool, outside any tenant
	observe JobObserver
	run     func(ctx context.Context) (detail any, err error)
}

// ProcessTask implements asynq.Handler.
func (p *periodic) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var pl task.PeriodicPayload
	if len(t.Payload()) > 0 {
		if err := decode(t, &pl); err != nil {
			return err
		}
	}
	err := jobrun.Track(ctx, p.db, t.Type(), taskID(ctx), p.run)
	if p.observe != nil {
		p.observe(t.Type(), err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w: %w", t.Type(), err, asynq.SkipRetry)
	}
	return nil
}
