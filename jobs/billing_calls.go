package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/platform/queue"
	"github.com/keelhq/keel/jobs/task"
)

// registerBillingCalls adds billing:sync-seats and billing:change-plan:
// the Stripe calls a membership change or a plan change asks for. Each
// call carries an idempotency key derived from the change, so an Asynq
// retry repeats no charge-affecting call.
func registerBillingCalls(handlers map[string]asynq.Handler, d Deps) {
	b := d.Billing
	handlers[task.TypeBillingSyncSeats] = asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		var p task.BillingSyncSeatsPayload
		if err := decode(t, &p); err != nil {
			return err
		}
		if b == nil {
			return errBillingOff
		}
		return giveUpIfRefused(b.SyncSeats(ctx, queue.OrgID(ctx), p.Change))
	})
	handlers[task.TypeBillingChangePlan] = asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		var p task.BillingChangePlanPayload
		if err := decode(t, &p); err != nil {
			return err
		}
		if b == nil {
			return errBillingOff
		}
		return giveUpIfRefused(b.ChangePlan(ctx, queue.OrgID(ctx), p))
	})
}

// giveUpIfRefused turns a call Stripe refused for good (a 4xx that a retry
// cannot change) into a dead task at once; other failures (Stripe down,
// 409, 429, the database) retry with backoff.
func giveUpIfRefused(err error) error {
	if errors.Is(err, billing.ErrStripeRefused) {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	return err
}
