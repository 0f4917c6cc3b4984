package jobs

import (
	"context"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/canary"
	"github.com/keelhq/keel/jobs/task"
)

// CanaryHandler records each run in canary_runs (a platform table, written
// on the pool); a second run of the same task counts up.
type CanaryHandler struct {
	DB *sqlx.DB
}

// ProcessTask implements asynq.Handler.
func (h *CanaryHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p task.CanaryPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	if p.SleepMS > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(p.SleepMS) * time.Millisecond):
		}
	}
	return canary.Store{}.Record(ctx, h.DB, taskID(ctx))
}
