package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/metrics"
	"github.com/keelhq/keel/internal/platform/sentry"
)

// DeadTask is a task that will not run again by itself: its last attempt
// failed, or it skipped retries.
type DeadTask struct {
	TaskID   string
	Type     string
	Queue    string
	Payload  []byte
	Headers  map[string]string
	Error    string
	Retried  int
	MaxRetry int
}

// DeadLetter keeps dead tasks beyond Asynq's archive. Record must be
// idempotent per TaskID.
type DeadLetter interface {
	Record(ctx context.Context, d DeadTask) error
}

// FailureHandler is Asynq's Config.ErrorHandler. It sees every failed
// attempt, whatever ended it (handler error, timeout, lost lease): it counts
// retries, and for a final failure counts the archive, records the task in
// Dead, and reports it to Sentry, once.
type FailureHandler struct {
	Dead    DeadLetter
	Metrics *metrics.Tasks
	Log     zerolog.Logger
}

// HandleError implements asynq.ErrorHandler.
func (f *FailureHandler) HandleError(ctx context.Context, t *asynq.Task, err error) {
	if errors.Is(err, ErrOrgBusy) || errors.Is(err, asynq.RevokeTask) {
		return
	}
	id, _ := asynq.GetTaskID(ctx)
	q, _ := asynq.GetQueueName(ctx)
	if !IsFinal(ctx, err) {
		if f.Metrics != nil {
			f.Metrics.Retried(t.Type(), q)
		}
		return
	}
	if f.Metrics != nil {
		f.Metrics.Archived(t.Type(), q)
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	d := DeadTask{TaskID: id, Type: t.Type(), Queue: q, Payload: t.Payload(), Headers: t.Headers(),
		Error: err.Error(), Retried: retried, MaxRetry: maxRetry}
	log := f.Log.With().Str("task_id", id).Str("task_type", t.Type()).Str("queue", q).Logger()
	if f.Dead != nil {
		// The task's own context may be past its deadline; the record must
		// still be written.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if rerr := f.Dead.Record(rctx, d); rerr != nil {
			log.Error().Err(rerr).Msg("could not record dead task")
		}
		cancel()
	}
	log.Error().Err(err).Int("retried", retried).Msg("task is dead")
	// Tags name the task and whom it ran for, never its payload: a payload
	// carries IDs and addresses, and Sentry is outside the trust boundary.
	tags := map[string]string{"task_type": t.Type(), "queue": q, "task_id": id}
	if h := t.Headers(); h != nil {
		if v := h[outbox.HeaderOrgID]; v != "" {
			tags["org_id"] = v
		}
		if v := h[outbox.HeaderRequestID]; v != "" {
			tags["request_id"] = v
		}
	}
	sentry.Capture(ctx, fmt.Errorf("task %s %s dead: %w", t.Type(), id, err), tags)
}
