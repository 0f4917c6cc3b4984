package jobs

import (
	"context"

	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/jobs/task"
)

// registerBillingPeriodic adds trial:expire, billing:dunning and
// stripe:reconcile: each a periodic job recorded in job_runs with its
// service's result as the detail. Without Deps.Billing they fail saying so.
func registerBillingPeriodic(handlers map[string]asynq.Handler, d Deps) {
	b := d.Billing
	job := func(run func(context.Context) (any, error)) asynq.Handler {
		return &periodic{db: d.DB, observe: d.JobObserved, run: func(ctx context.Context) (any, error) {
			if b == nil {
				return nil, errBillingOff
			}
			return run(ctx)
		}}
	}
	handlers[task.TypeTrialExpire] = job(func(ctx context.Context) (any, error) { return b.ExpireTrials(ctx) })
	handlers[task.TypeBillingDunning] = job(func(ctx context.Context) (any, error) { return b.Dunning(ctx) })
	handlers[task.TypeStripeReconcile] = job(func(ctx context.Context) (any, error) { return b.Reconcile(ctx) })
}
