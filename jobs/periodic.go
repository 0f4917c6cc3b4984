package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/internal/jobrun"
)

// PeriodicPayload is what the scheduler puts in every periodic task: the
// slot it fires for.
type PeriodicPayload struct {
	Slot time.Time `json:"slot"`
}

// NewPeriodicTask builds the task typ fires for slot.
func NewPeriodicTask(typ string, slot time.Time) *asynq.Task {
	b, _ := json.Marshal(PeriodicPayload{Slot: slot.UTC()})
	return asynq.NewTask(typ, b)
}

// JobObserver is told how each periodic job run ended; the worker turns it
// into metrics.
type JobObserver func(job string, err error)

// periodic runs a periodic job's body and records it in job_runs. A job that
// failed is not retried (the next slot runs it again): its error wraps
// asynq.SkipRetry, so it becomes a dead task and one Sentry report at once.
type periodic struct {
	runs    *jobrun.Store
	observe JobObserver
	run     func(ctx context.Context) (detail any, err error)
}

// ProcessTask implements asynq.Handler.
func (p *periodic) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var pl PeriodicPayload
	if len(t.Payload()) > 0 {
		if err := decode(t, &pl); err != nil {
			return err
		}
	}
	err := p.runs.Track(ctx, t.Type(), taskID(ctx), p.run)
	if p.observe != nil {
		p.observe(t.Type(), err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w: %w", t.Type(), err, asynq.SkipRetry)
	}
	return nil
}
