package jobs

import (
	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/jobs/task"
)

// registerBillingPeriodic adds trial:expire, billing:dunning and stripe:reconcile.
func registerBillingPeriodic(handlers map[string]asynq.Handler, d Deps) {
	handlers[task.TypeTrialExpire] = notYet
	handlers[task.TypeBillingDunning] = notYet
	handlers[task.TypeStripeReconcile] = notYet
}
