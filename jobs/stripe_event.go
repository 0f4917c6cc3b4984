package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/jobs/task"
)

// registerStripeEvents adds stripe:event: apply one stored Stripe event.
// A failed application is counted on the event (attempts, last_error) and
// retried with Asynq's backoff (the Spec's 12 retries); an exhausted one
// becomes a dead task, and keelctl stripe replay applies it again.
func registerStripeEvents(handlers map[string]asynq.Handler, d Deps) {
	handlers[task.TypeStripeEvent] = asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		var p task.StripeEventPayload
		if err := decode(t, &p); err != nil {
			return err
		}
		b := d.Billing
		if b == nil {
			return errBillingOff
		}
		err := b.ApplyEvent(ctx, p.EventID)
		if errors.Is(err, billing.ErrNotFound) {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		if err != nil {
			// The application rolled back; its failure is recorded outside
			// that transaction, so an operator sees it on the event.
			if ferr := b.Store.FailEvent(context.WithoutCancel(ctx), b.DB, p.EventID, err.Error()); ferr != nil {
				return errors.Join(err, ferr)
			}
		}
		return err
	})
}
