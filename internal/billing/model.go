// Package billing is Keel's Stripe billing: each organization's plan and
// billing status, the Stripe webhook inbox and the worker that applies its
// events, Checkout and the Billing Portal, trials, dunning and
// reconciliation.
//
// Stripe sends events late, twice and out of order, so the state here is a
// merge, not a sequence of transitions: an organization's subscription row
// holds the newest subscription snapshot seen (see Newer), invoices only
// move forward (see mergeInvoice), and the status Keel enforces is derived
// from those facts (see Settle). Applying the same events in any order, any
// number of times, ends in the same state; each email is keyed by the fact
// it reports (billing_notices), so it is queued once.
package billing

import (
	"time"

	"github.com/google/uuid"
)

// Status is an organization's billing status as Keel enforces it.
type Status string

// The statuses.
const (
	// Trialing: on a trial of a paid plan (Keel's own signup trial, or a
	// Stripe subscription's trial); the plan's limits apply.
	Trialing Status = "trialing"
	// Active: paying; the plan's limits apply.
	Active Status = "active"
	// PastDue: an invoice failed; full access continues until GraceUntil.
	PastDue Status = "past_due"
	// ReadOnly: the grace period passed unpaid (or Stripe marked the
	// subscription unpaid or paused); reads work, writes answer 402
	// payment_required until the invoice is paid.
	ReadOnly Status = "read_only"
	// Canceled: the subscription ended; the fallback plan applies.
	Canceled Status = "canceled"
	// Free: never subscribed, or the signup trial ended; the fallback plan
	// applies.
	Free Status = "free"
)

// OnPlan reports whether the organization is on its subscribed (or
// trialed) plan rather than the fallback.
func (s Status) OnPlan() bool {
	return s == Trialing || s == Active || s == PastDue || s == ReadOnly
}

// Account is an organization's subscriptions row.
type Account struct {
	OrgID uuid.UUID `db:"org_id"`
	// PlanID is the plan subscribed to or trialed; nil means the fallback.
	PlanID   *string `db:"plan_id"`
	Status   Status  `db:"status"`
	Interval *string `db:"billing_interval"`

	TrialEnd          *time.Time `db:"trial_end"`
	CurrentPeriodEnd  *time.Time `db:"current_period_end"`
	CancelAtPeriodEnd bool       `db:"cancel_at_period_end"`

	CustomerID          *string    `db:"stripe_customer_id"`
	SubscriptionID      *string    `db:"stripe_subscription_id"`
	StripeStatus        *string    `db:"stripe_status"`
	SubscriptionCreated *time.Time `db:"stripe_subscription_created"`
	EventAt             *time.Time `db:"stripe_event_at"`
	EventID             *string    `db:"stripe_event_id"`
	Quantity            *int       `db:"quantity"`

	PastDueSince *time.Time `db:"past_due_since"`
	GraceUntil   *time.Time `db:"grace_until"`

	// Price is the subscription's price and discount, EndedAt when a final
	// subscription ended (Take copies them; the admin stats read them).
	Price
	EndedAt *time.Time `db:"ended_at"`

	Version   int64     `db:"version"`
	CreatedAt time.Time `db:"created_at"`
	UpdatedAt time.Time `db:"updated_at"`
}

// Invoice is one of the organization's Stripe invoices.
type Invoice struct {
	OrgID            uuid.UUID  `db:"org_id" json:"-"`
	ID               string     `db:"stripe_invoice_id" json:"id"`
	SubscriptionID   *string    `db:"stripe_subscription_id" json:"-"`
	Number           string     `db:"number" json:"number"`
	Status           string     `db:"status" json:"status"`
	Currency         string     `db:"currency" json:"currency"`
	AmountDue        int64      `db:"amount_due" json:"amount_due"`
	AmountPaid       int64      `db:"amount_paid" json:"amount_paid"`
	HostedInvoiceURL string     `db:"hosted_invoice_url" json:"hosted_invoice_url,omitempty"`
	InvoicePDF       string     `db:"invoice_pdf" json:"invoice_pdf,omitempty"`
	PeriodStart      *time.Time `db:"period_start" json:"period_start,omitempty"`
	PeriodEnd        *time.Time `db:"period_end" json:"period_end,omitempty"`
	Created          time.Time  `db:"stripe_created" json:"created_at"`
	AttemptCount     int        `db:"attempt_count" json:"attempt_count"`
	FirstFailedAt    *time.Time `db:"first_failed_at" json:"first_failed_at,omitempty"`
	PaidAt           *time.Time `db:"paid_at" json:"paid_at,omitempty"`
	UpdatedAt        time.Time  `db:"updated_at" json:"-"`
}

// Event is a stored Stripe event (stripe_events).
type Event struct {
	ID         string     `db:"id"`
	Type       string     `db:"type"`
	APIVersion string     `db:"api_version"`
	Livemode   bool       `db:"livemode"`
	Created    time.Time  `db:"created"`
	Payload    []byte     `db:"payload"`
	Status     string     `db:"status"`
	Note       string     `db:"note"`
	Attempts   int        `db:"attempts"`
	LastError  string     `db:"last_error"`
	ReceivedAt time.Time  `db:"received_at"`
	AppliedAt  *time.Time `db:"applied_at"`
}

// Event statuses.
const (
	EventPending = "pending"
	EventApplied = "applied"
	EventIgnored = "ignored"
)

// APIVersion is the Stripe API version Keel reads events in: stripe-go
// v76's. The webhook endpoint must be created with it; events of another
// version are stored and ignored (and counted), never half-read.
const APIVersion = "2023-10-16"
