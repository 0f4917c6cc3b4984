package jobs

import (
	"github.com/hibiken/asynq"

	"github.com/keelhq/keel/jobs/task"
)

// registerStripeEvents adds stripe:event.
func registerStripeEvents(handlers map[string]asynq.Handler, d Deps) {
	handlers[task.TypeStripeEvent] = notYet
}
