package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/outbox"
)

// TypeCanary is the fleet's end-to-end probe: it travels outbox → relay →
// Redis → worker and records its run in canary_runs, keyed by task ID, so an
// operator (or the chaos tests) can prove that every task ran.
const TypeCanary = "ops:canary"

// CanaryPayload may ask the handler to take some time, to simulate work.
type CanaryPayload struct {
	SleepMS int `json:"sleep_ms,omitempty"`
}

// NewCanaryTask builds an ops:canary outbox task.
func NewCanaryTask(p CanaryPayload) (outbox.Task, error) {
	if p.SleepMS < 0 || p.SleepMS > 60_000 {
		return outbox.Task{}, fmt.Errorf("ops:canary: sleep_ms %d out of 0..60000", p.SleepMS)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return outbox.Task{}, err
	}
	return SpecOf(TypeCanary).Outbox(b), nil
}

// CanaryHandler records each run; a second run of the same task counts up.
type CanaryHandler struct {
	DB *sqlx.DB
}

// ProcessTask implements asynq.Handler.
func (h *CanaryHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p CanaryPayload
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
