package jobs

import (
	"errors"

	"github.com/hibiken/asynq"
)

// registerBilling adds billing's handlers: applying Stripe events
// (stripe_event.go), the calls to Stripe a change asks for
// (billing_calls.go) and the periodic jobs (billing_periodic.go). Without
// Deps.Billing they fail saying so.
func registerBilling(handlers map[string]asynq.Handler, d Deps) {
	registerStripeEvents(handlers, d)
	registerBillingCalls(handlers, d)
	registerBillingPeriodic(handlers, d)
}

var errBillingOff = errors.New("not configured: jobs.Deps.Billing is nil")
