package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/jobs/task"
)

// CanaryHandler records each run; a second run of the same task counts up.
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
	_, err := h.DB.ExecContext(ctx, `INSERT INTO canary_runs (task_id) VALUES ($1)
		ON CONFLICT (task_id) DO UPDATE SET runs = canary_runs.runs + 1, last_run_at = now()`, taskID(ctx))
	if err != nil {
		return fmt.Errorf("record canary: %w", err)
	}
	return nil
}
