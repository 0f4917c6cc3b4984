package jobs

import (
	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/jobs/task"
)

// registerBillingCalls adds billing:sync-seats and billing:change-plan.
func registerBillingCalls(handlers map[string]asynq.Handler, d Deps) {
	handlers[task.TypeBillingSyncSeats] = notYet
	handlers[task.TypeBillingChangePlan] = notYet
}
