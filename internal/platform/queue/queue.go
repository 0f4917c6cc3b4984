// Package queue adapts Asynq: the server's task middleware (context from
// headers, logs, metrics, Sentry) and readiness probes.
package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/logging"
	"github.com/keelhq/keel/internal/platform/metrics"
	"github.com/keelhq/keel/internal/platform/sentry"
)

// Middleware restores what the task's writer knew (request ID, org, actor)
// onto the context and its logger, logs the outcome with the duration, counts
// it, and reports a task's last failed attempt to Sentry.
func Middleware(log zerolog.Logger, m *metrics.Tasks) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			id, _ := asynq.GetTaskID(ctx)
			queueName, _ := asynq.GetQueueName(ctx)
			retried, _ := asynq.GetRetryCount(ctx)
			maxRetry, _ := asynq.GetMaxRetry(ctx)
			lc := log.With().Str("task_id", id).Str("task_type", t.Type()).Str("queue", queueName).Int("retry", retried)
			h := t.Headers()
			for _, k := range []string{outbox.HeaderOrgID, outbox.HeaderActorID} {
				if v := h[k]; v != "" {
					lc = lc.Str(k, v)
				}
			}
			l := lc.Logger()
			ctx = l.WithContext(ctx)
			if rid := h[outbox.HeaderRequestID]; rid != "" {
				ctx = logging.WithRequestID(ctx, rid)
			}
			start := time.Now()
			err := next.ProcessTask(ctx, t)
			d := time.Since(start)
			if m != nil {
				m.Observe(t.Type(), queueName, err, d)
			}
			ev := zerolog.Ctx(ctx).Info()
			if err != nil {
				final := retried >= maxRetry || errors.Is(err, asynq.SkipRetry)
				ev = zerolog.Ctx(ctx).Warn().Err(err).Bool("final", final)
				if final {
					ev = zerolog.Ctx(ctx).Error().Err(err).Bool("final", true)
					sentry.Capture(ctx, fmt.Errorf("task %s %s: %w", t.Type(), id, err),
						map[string]string{"task_type": t.Type(), "queue": queueName})
				}
			}
			ev.Dur("duration", d).Msg("task")
			return err
		})
	}
}

// Logger adapts zerolog to Asynq's logger interface.
func Logger(l zerolog.Logger) asynq.Logger {
	return asynqLogger{l.With().Str("component", "asynq").Logger()}
}

type asynqLogger struct{ l zerolog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error().Msg(fmt.Sprint(args...)) }
