// Package queue adapts Asynq: the server's task middleware (context from
// headers, logs, metrics), per-organization fairness, the retry policy, the
// handler of final failures (dead tasks, Sentry) and queue metrics.
package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/logging"
	"github.com/keelhq/keel/internal/platform/metrics"
)

type orgKey struct{}

// OrgID returns the organization the running task acts for (from its
// org_id header), or uuid.Nil for platform tasks. Handlers pass it to
// postgres.InTx so Row Level Security scopes their transactions; the jobs
// package guarantees it is set for every tenant task before its handler
// runs.
func OrgID(ctx context.Context) uuid.UUID {
	id, _ := ctx.Value(orgKey{}).(uuid.UUID)
	return id
}

// WithOrgID returns ctx carrying org; for handlers' tests.
func WithOrgID(ctx context.Context, org uuid.UUID) context.Context {
	return context.WithValue(ctx, orgKey{}, org)
}

// Middleware restores what the task's writer knew (request ID, org, actor)
// onto the context and its logger, logs the outcome with the duration and
// counts it. Final failures are reported by FailureHandler, not here, so a
// task is reported once however its last attempt ended.
func Middleware(log zerolog.Logger, m *metrics.Tasks) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			id, _ := asynq.GetTaskID(ctx)
			queueName, _ := asynq.GetQueueName(ctx)
			retried, _ := asynq.GetRetryCount(ctx)
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
			if v := h[outbox.HeaderOrgID]; v != "" {
				// A malformed org_id leaves the task without a tenant; the
				// registered handler's tenancy check (package jobs) refuses
				// a tenant task without one, and a platform task with one.
				if org, err := uuid.Parse(v); err == nil {
					ctx = WithOrgID(ctx, org)
				}
			}
			start := time.Now()
			err := next.ProcessTask(ctx, t)
			d := time.Since(start)
			if m != nil {
				m.Observe(t.Type(), queueName, err, d)
			}
			ev := zerolog.Ctx(ctx).Info()
			if err != nil {
				final := IsFinal(ctx, err)
				ev = zerolog.Ctx(ctx).Warn()
				if final {
					ev = zerolog.Ctx(ctx).Error()
				}
				ev = ev.Err(err).Bool("final", final)
			}
			ev.Dur("duration", d).Msg("task")
			return err
		})
	}
}

// IsFinal reports whether err ends the task for good: its retries are spent
// or it asked to skip them. ctx is the task's context.
func IsFinal(ctx context.Context, err error) bool {
	if err == nil || errors.Is(err, asynq.RevokeTask) || errors.Is(err, ErrOrgBusy) {
		return false
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	return retried >= maxRetry || errors.Is(err, asynq.SkipRetry)
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
