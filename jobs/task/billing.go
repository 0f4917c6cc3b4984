package task

import (
	"fmt"

	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/outbox"
)

// Billing task types.
const (
	// TypeStripeEvent applies one stored Stripe event (stripe_events) in a
	// transaction, once. A platform task: the event names a Stripe
	// customer, and the handler finds its organization and sets the tenant
	// itself. Relayed through the outbox by the webhook intake.
	TypeStripeEvent = "stripe:event"
	// TypeStripeReconcile compares every organization's local subscription
	// with Stripe's and repairs drift, then applies events of the last 3
	// days that never reached the webhook. Periodic (hourly), low queue.
	TypeStripeReconcile = "stripe:reconcile"
	// TypeTrialExpire mails owners 3 days before their signup trial ends and
	// at its end, and moves expired trials to the fallback plan. Periodic.
	TypeTrialExpire = "trial:expire"
	// TypeBillingDunning sends the day-3 and day-7 dunning emails of unpaid
	// invoices and makes organizations past their grace period read-only.
	// Periodic.
	TypeBillingDunning = "billing:dunning"
	// TypeBillingSyncSeats sets a per-seat subscription's quantity to the
	// organization's member count after a membership change. A tenant task;
	// its Stripe call's idempotency key is the change's.
	TypeBillingSyncSeats = "billing:sync-seats"
	// TypeBillingChangePlan moves a live subscription to another paid plan
	// or interval: an upgrade at once with proration, a downgrade at the
	// period's end. A tenant task; its Stripe calls' idempotency keys are
	// the change request's.
	TypeBillingChangePlan = "billing:change-plan"
)

// StripeEventPayload names the stored event to apply.
type StripeEventPayload struct {
	EventID string `json:"event_id"`
}

// NewStripeEventTask builds the stripe:event outbox task of a stored event.
func NewStripeEventTask(eventID string) (outbox.Task, error) {
	if eventID == "" {
		return outbox.Task{}, fmt.Errorf("%s: no event ID", TypeStripeEvent)
	}
	return build(TypeStripeEvent, uuid.Nil, StripeEventPayload{EventID: eventID})
}

// BillingSyncSeatsPayload names the membership change that asks for the
// sync; the count is read when the task runs.
type BillingSyncSeatsPayload struct {
	Change string `json:"change"`
}

// NewBillingSyncSeatsTask builds the billing:sync-seats outbox task of org.
func NewBillingSyncSeatsTask(org uuid.UUID, change string) (outbox.Task, error) {
	if change == "" {
		return outbox.Task{}, fmt.Errorf("%s: no change", TypeBillingSyncSeats)
	}
	return build(TypeBillingSyncSeats, org, BillingSyncSeatsPayload{Change: change})
}

// BillingChangePlanPayload is a plan change request: its ID keys the
// Stripe calls.
type BillingChangePlanPayload struct {
	RequestID uuid.UUID `json:"request_id"`
	Plan      string    `json:"plan"`
	Interval  string    `json:"interval"`
}

// NewBillingChangePlanTask builds the billing:change-plan outbox task of org.
func NewBillingChangePlanTask(org uuid.UUID, p BillingChangePlanPayload) (outbox.Task, error) {
	if p.RequestID == uuid.Nil || p.Plan == "" || p.Interval == "" {
		return outbox.Task{}, fmt.Errorf("%s: incomplete request %+v", TypeBillingChangePlan, p)
	}
	return build(TypeBillingChangePlan, org, p)
}
