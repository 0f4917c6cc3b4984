package billing

import (
	"time"

	"github.com/keelhq/keel/internal/plan"
)

// Snapshot is a Stripe subscription as one event (or one fetch) showed it.
type Snapshot struct {
	ID         string
	CustomerID string
	// Status is Stripe's: trialing, active, past_due, unpaid, canceled,
	// incomplete, incomplete_expired, paused.
	Status            string
	PriceID           string
	Quantity          int
	Created           time.Time // the subscription's creation
	TrialEnd          *time.Time
	CurrentPeriodEnd  *time.Time
	CancelAtPeriodEnd bool
	// EventAt and EventID are the event's (a fetch uses its own time and a
	// synthetic ID): the order snapshots are compared in.
	EventAt time.Time
	EventID string
	// Price is what the subscription charges (its first item's price and
	// its discount); nil fields when the snapshot does not say.
	Price Price
	// EndedAt is Stripe's ended_at (nil while the subscription runs); Take
	// falls back to EventAt for a final snapshot that does not say.
	EndedAt *time.Time
}

// Price is what a subscription charges as its latest snapshot showed it:
// the first item's price (in the currency's smallest unit, per interval)
// and the subscription's coupon. Keel enforces nothing from it; the
// subscriptions row keeps it so the admin stats can derive each
// organization's MRR from local data (migration 00710: billing_mrr, kept by
// a trigger with its history).
type Price struct {
	UnitAmount    *int64   `db:"price_unit_amount"`
	Currency      *string  `db:"price_currency"`
	PriceInterval *string  `db:"price_interval"` // day, week, month or year
	IntervalCount *int     `db:"price_interval_count"`
	PercentOff    *float64 `db:"discount_percent_off"`
	AmountOff     *int64   `db:"discount_amount_off"` // per invoice, in Currency
}

// pending reports whether Stripe's status is that of a subscription that
// never started: Checkout's first payment is pending or failed.
func pending(stripeStatus string) bool {
	return stripeStatus == "incomplete" || stripeStatus == "incomplete_expired"
}

// terminal reports whether Stripe's status is final for a subscription.
func terminal(stripeStatus string) bool {
	return stripeStatus == "canceled" || stripeStatus == "incomplete_expired"
}

// Newer reports whether snapshot s should replace what a holds. The order
// is total, so the newest of any set of snapshots wins whatever order they
// arrive in:
//
//  1. a later-created subscription replaces an earlier one (the org
//     resubscribed); an earlier one never comes back;
//  2. for one subscription, a terminal status (canceled) is final;
//  3. then the event's creation time, then its ID, decide.
func (a *Account) Newer(s Snapshot) bool {
	if pending(s.Status) && (a.SubscriptionID == nil || *a.SubscriptionID != s.ID) {
		// A subscription whose first payment has not gone through (or never
		// did) is not adopted: the organization keeps its trial or plan
		// until Stripe reports it trialing or active.
		return false
	}
	if a.SubscriptionID == nil || a.SubscriptionCreated == nil {
		return true
	}
	if *a.SubscriptionID != s.ID {
		if !s.Created.Equal(*a.SubscriptionCreated) {
			return s.Created.After(*a.SubscriptionCreated)
		}
		return s.ID > *a.SubscriptionID
	}
	held := a.StripeStatus != nil && terminal(*a.StripeStatus)
	if held != terminal(s.Status) {
		return terminal(s.Status)
	}
	if a.EventAt == nil || a.EventID == nil {
		return true
	}
	if !s.EventAt.Equal(*a.EventAt) {
		return s.EventAt.After(*a.EventAt)
	}
	return s.EventID > *a.EventID
}

// Take copies snapshot s into a (the caller checked Newer). Plan and
// interval come from the snapshot's price; a price the catalog does not
// know keeps the plan a had (and the caller logs it).
func (a *Account) Take(s Snapshot, c *plan.Catalog) (knownPrice bool) {
	if a.SubscriptionID == nil || *a.SubscriptionID != s.ID {
		// Another subscription: nothing of the old one's dunning carries over.
		a.PastDueSince, a.GraceUntil = nil, nil
	}
	a.SubscriptionID = ptr(s.ID)
	if s.CustomerID != "" {
		a.CustomerID = ptr(s.CustomerID)
	}
	a.StripeStatus = ptr(s.Status)
	created := s.Created.UTC()
	a.SubscriptionCreated = &created
	at := s.EventAt.UTC()
	a.EventAt, a.EventID = &at, ptr(s.EventID)
	a.Quantity = ptr(s.Quantity)
	a.TrialEnd = utc(s.TrialEnd)
	a.CurrentPeriodEnd = utc(s.CurrentPeriodEnd)
	a.CancelAtPeriodEnd = s.CancelAtPeriodEnd
	a.Price = s.Price
	a.EndedAt = nil
	if terminal(s.Status) {
		ended := at
		if s.EndedAt != nil {
			ended = s.EndedAt.UTC()
		}
		a.EndedAt = &ended
	}
	p, interval, ok := c.ByPrice(s.PriceID)
	if ok {
		a.PlanID, a.Interval = ptr(p.ID), ptr(interval)
	}
	return ok
}

// Settle derives a's Status from its facts at now: the subscription
// snapshot; unpaidSince, when the oldest still-open failed invoice of the
// current subscription first failed (nil when none); and lastPaid, when
// its latest invoice was paid (nil when none). grace is how long past_due
// lasts. An organization without a Stripe subscription keeps its
// own trial: trialing until TrialEnd (trial:expire moves it to free and
// mails the owner), free after.
func (a *Account) Settle(now time.Time, unpaidSince, lastPaid *time.Time, grace time.Duration) {
	if a.SubscriptionID == nil || a.StripeStatus == nil {
		a.PastDueSince, a.GraceUntil = nil, nil
		if a.Status != Trialing && a.Status != Free {
			a.Status = Free
		}
		return
	}
	switch st := *a.StripeStatus; {
	case terminal(st):
		a.Status = Canceled
		a.PastDueSince, a.GraceUntil = nil, nil
		return
	case st == "incomplete":
		// Checkout's first payment has not gone through: nothing is
		// granted yet.
		a.PastDueSince, a.GraceUntil = nil, nil
		if a.Status != Trialing {
			a.Status = Free
		}
		return
	case st == "unpaid" || st == "paused":
		a.Status = ReadOnly
		if a.PastDueSince == nil {
			a.PastDueSince = unpaidSince
		}
		return
	}
	since := unpaidSince
	if since == nil && *a.StripeStatus == "past_due" && (lastPaid == nil || lastPaid.Before(*a.EventAt)) {
		// Stripe says past_due, no failed invoice reached us (yet) and no
		// payment came after that snapshot: the grace period runs from it.
		// A payment after it wins: invoice.paid restores access at once,
		// before the subscription's own update arrives.
		since = a.EventAt
	}
	if since == nil {
		a.PastDueSince, a.GraceUntil = nil, nil
		a.Status = Active
		if *a.StripeStatus == "trialing" {
			a.Status = Trialing
		}
		return
	}
	s := since.UTC()
	until := s.Add(grace)
	a.PastDueSince, a.GraceUntil = &s, &until
	a.Status = PastDue
	if !now.Before(until) {
		a.Status = ReadOnly
	}
}

// Plan returns the plan a's organization is on: its plan while OnPlan,
// the catalog's fallback otherwise (or when its plan left the catalog).
func (a *Account) Plan(c *plan.Catalog) plan.Plan {
	if a == nil || !a.Status.OnPlan() || a.PlanID == nil {
		return c.FallbackPlan()
	}
	if p, ok := c.Get(*a.PlanID); ok {
		return p
	}
	return c.FallbackPlan()
}

// invoiceRank orders invoice statuses: an invoice only moves forward.
func invoiceRank(status string) int {
	switch status {
	case "draft":
		return 0
	case "open":
		return 1
	}
	return 2 // paid, void, uncollectible: final
}

// MergeInvoice folds what one event said of an invoice (in) into what was
// known (have, nil when new) and returns the result. failedAt is the
// failure an invoice.payment_failed reports (nil for other events). The
// merge is commutative: the final status is the furthest seen (paid beats
// open whatever order they came in), the first failure the earliest, the
// amounts and attempt count the largest.
func MergeInvoice(have *Invoice, in Invoice, failedAt *time.Time) Invoice {
	out := in
	if have != nil {
		out = *have
		if invoiceRank(in.Status) > invoiceRank(have.Status) {
			out.Status = in.Status
		}
		out.AmountDue = max(have.AmountDue, in.AmountDue)
		out.AmountPaid = max(have.AmountPaid, in.AmountPaid)
		out.AttemptCount = max(have.AttemptCount, in.AttemptCount)
		out.PaidAt = earliest(have.PaidAt, in.PaidAt)
		out.FirstFailedAt = have.FirstFailedAt
		// Text fields do not change at Stripe once set; the first seen
		// stays, so the order of arrival cannot matter.
		for _, f := range []struct {
			to   *string
			from string
		}{
			{&out.Number, in.Number}, {&out.Currency, in.Currency},
			{&out.HostedInvoiceURL, in.HostedInvoiceURL}, {&out.InvoicePDF, in.InvoicePDF},
		} {
			if *f.to == "" {
				*f.to = f.from
			}
		}
		if out.SubscriptionID == nil {
			out.SubscriptionID = in.SubscriptionID
		}
		if out.PeriodStart == nil {
			out.PeriodStart, out.PeriodEnd = in.PeriodStart, in.PeriodEnd
		}
	}
	out.FirstFailedAt = earliest(out.FirstFailedAt, failedAt)
	return out
}

func earliest(a, b *time.Time) *time.Time {
	switch {
	case a == nil:
		return utc(b)
	case b == nil:
		return a
	case b.Before(*a):
		return utc(b)
	}
	return a
}

func ptr[T any](v T) *T { return &v }

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
