package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/stripe/stripe-go/v76"

	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/platform/postgres"
)

// BackfillWindow is how far back reconciliation asks Stripe's Events API
// for events the webhook never delivered (Stripe keeps 30 days; it retries
// a failing endpoint for 3).
const BackfillWindow = 3 * 24 * time.Hour

// reconcileSkew is how much earlier than the fetch's start a fetched
// snapshot is dated. Stripe's answer holds every event created before the
// fetch, so it may win over them; an event Stripe stamps within this
// margin (its clock against ours, and created's whole seconds) wins over
// the fetch instead, which only delays a repair to the next run, while
// the opposite would let the fetch hide a newer change.
const reconcileSkew = 5 * time.Second

// ReconcileEventTypes are the event types the backfill asks Stripe for:
// the ones the applier handles.
var ReconcileEventTypes = []string{
	EventCheckoutCompleted,
	EventSubscriptionCreated, EventSubscriptionUpdated, EventSubscriptionDeleted, EventTrialWillEnd,
	EventInvoicePaid, EventInvoicePaymentSucceded, EventInvoicePaymentFailed,
}

// ReconcileResult is what one reconciliation did (stripe:reconcile's run
// detail, keelctl stripe sync's output).
type ReconcileResult struct {
	Customers  int `json:"customers"`  // linked customers checked
	Repaired   int `json:"repaired"`   // organizations whose plan, status or period changed
	Foreign    int `json:"foreign"`    // subscriptions Stripe listed for another customer, skipped
	Backfilled int `json:"backfilled"` // undelivered events stored and queued
	Failed     int `json:"failed,omitempty"`
}

// ErrStripeOff is reconciliation's error when Stripe is not configured.
var ErrStripeOff = errors.New("billing: Stripe is not configured (STRIPE_SECRET_KEY is empty)")

// Reconcile is stripe:reconcile: for every organization with a Stripe
// customer, it fetches the customer's newest subscription and folds it in
// like an event (repairing what lost or late events left wrong), then
// stores and queues the handled events of the last BackfillWindow that
// the inbox does not hold. Repairs and backfilled events are counted in
// billing_drift_repaired_total.
func (s *Service) Reconcile(ctx context.Context) (ReconcileResult, error) {
	var res ReconcileResult
	if s.Stripe == nil {
		return res, ErrStripeOff
	}
	links, err := s.Store.Customers(ctx, s.DB)
	if err != nil {
		return res, err
	}
	errs := s.reconcileCustomers(ctx, links, &res)
	n, err := s.backfillEvents(ctx)
	res.Backfilled = n
	if err != nil {
		errs = append(errs, fmt.Errorf("event backfill: %w", err))
	}
	return res, errors.Join(errs...)
}

// ReconcileOrg reconciles one organization's subscription (keelctl stripe
// sync); it does not backfill events.
func (s *Service) ReconcileOrg(ctx context.Context, orgID uuid.UUID) (ReconcileResult, error) {
	var res ReconcileResult
	if s.Stripe == nil {
		return res, ErrStripeOff
	}
	var known bool
	err := postgres.InTx(ctx, s.DB, orgID, func(tx *sqlx.Tx) error {
		return tx.GetContext(ctx, &known, `SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1)`, orgID)
	})
	if err != nil {
		return res, err
	}
	if !known {
		return res, fmt.Errorf("organization %s does not exist", orgID)
	}
	links, err := s.Store.Customers(ctx, s.DB)
	if err != nil {
		return res, err
	}
	for _, l := range links {
		if l.OrgID == orgID {
			return res, errors.Join(s.reconcileCustomers(ctx, []CustomerLink{l}, &res)...)
		}
	}
	return res, fmt.Errorf("organization %s has no Stripe customer: it never started a checkout, so there is nothing to reconcile", orgID)
}

func (s *Service) reconcileCustomers(ctx context.Context, links []CustomerLink, res *ReconcileResult) []error {
	var errs []error
	repaired := 0
	for _, l := range links {
		res.Customers++
		changed, foreign, err := s.reconcileCustomer(ctx, l)
		if err != nil {
			res.Failed++
			errs = append(errs, fmt.Errorf("customer %s of %s: %w", l.CustomerID, l.OrgID, err))
			continue
		}
		repaired += count(changed)
		res.Foreign += foreign
	}
	res.Repaired += repaired
	s.Metrics.DriftRepaired("subscription", repaired)
	return errs
}

// reconcileCustomer folds the customer's newest subscription into its
// organization's state. foreign counts subscriptions Stripe returned for
// another customer (stripe-mock's canned ones; never Stripe itself), which
// are skipped rather than let near an organization.
func (s *Service) reconcileCustomer(ctx context.Context, l CustomerLink) (changed bool, foreign int, err error) {
	fetched := s.now().Add(-reconcileSkew).Truncate(time.Second)
	p := &stripe.SubscriptionListParams{Customer: stripe.String(l.CustomerID), Status: stripe.String("all")}
	p.Context = ctx
	var newest *stripe.Subscription
	it := s.Stripe.Subscriptions.List(p)
	for it.Next() {
		sub := it.Subscription()
		if sub.Customer == nil || sub.Customer.ID != l.CustomerID {
			foreign++
			continue
		}
		if newest == nil || sub.Created > newest.Created || (sub.Created == newest.Created && sub.ID > newest.ID) {
			newest = sub
		}
	}
	if err := it.Err(); err != nil {
		return false, foreign, fmt.Errorf("list subscriptions: %w", err)
	}
	if newest == nil {
		return false, foreign, nil
	}
	snap := FetchedSnapshot(newest, fetched)
	err = postgres.InTx(ctx, s.DB, l.OrgID, func(tx *sqlx.Tx) (err error) {
		changed, err = s.ReconcileSnapshot(ctx, tx, l.OrgID, snap)
		return err
	})
	return changed, foreign, err
}

// FetchedSnapshot is the Snapshot of a subscription fetched from Stripe at
// at: dated at, with a synthetic event ID.
func FetchedSnapshot(sub *stripe.Subscription, at time.Time) Snapshot {
	snap := Snapshot{ID: sub.ID, Status: string(sub.Status), Created: time.Unix(sub.Created, 0).UTC(),
		CancelAtPeriodEnd: sub.CancelAtPeriodEnd, EventAt: at.UTC(), EventID: fmt.Sprintf("reconcile:%d", at.UnixNano())}
	if sub.Customer != nil {
		snap.CustomerID = sub.Customer.ID
	}
	if sub.Items != nil && len(sub.Items.Data) > 0 && sub.Items.Data[0] != nil {
		it := sub.Items.Data[0]
		if it.Price != nil {
			snap.PriceID = it.Price.ID
			snap.Price = fetchedPrice(it.Price)
		}
		snap.Quantity = int(it.Quantity)
	}
	if sub.Discount != nil && sub.Discount.Coupon != nil {
		c := sub.Discount.Coupon
		if c.PercentOff > 0 {
			snap.Price.PercentOff = ptr(c.PercentOff)
		}
		if c.AmountOff > 0 {
			snap.Price.AmountOff = ptr(c.AmountOff)
		}
	}
	if sub.TrialEnd > 0 {
		t := time.Unix(sub.TrialEnd, 0).UTC()
		snap.TrialEnd = &t
	}
	if sub.CurrentPeriodEnd > 0 {
		t := time.Unix(sub.CurrentPeriodEnd, 0).UTC()
		snap.CurrentPeriodEnd = &t
	}
	if sub.EndedAt > 0 {
		t := time.Unix(sub.EndedAt, 0).UTC()
		snap.EndedAt = &t
	}
	return snap
}

// fetchedPrice is what a fetched subscription item's price charges.
func fetchedPrice(p *stripe.Price) Price {
	out := Price{UnitAmount: ptr(p.UnitAmount)}
	if p.Currency != "" {
		out.Currency = ptr(string(p.Currency))
	}
	if p.Recurring != nil && p.Recurring.Interval != "" {
		out.PriceInterval = ptr(string(p.Recurring.Interval))
		out.IntervalCount = ptr(max(int(p.Recurring.IntervalCount), 1))
	}
	return out
}

// ReconcileSnapshot applies a fetched snapshot to orgID in tx (tenant set)
// and reports whether it repaired anything: plan, status or period. A
// repair writes a billing.reconciled audit row naming what changed, from
// what to what.
func (s *Service) ReconcileSnapshot(ctx context.Context, tx *sqlx.Tx, orgID uuid.UUID, snap Snapshot) (bool, error) {
	held, err := s.LockAccount(ctx, tx, orgID)
	if err != nil {
		return false, err
	}
	before := *held
	after, applied, err := s.ApplySnapshot(ctx, tx, orgID, snap)
	if err != nil || !applied {
		return false, err
	}
	diff := drift(&before, after)
	if len(diff) == 0 {
		return false, nil
	}
	err = audit.Record(ctx, tx, audit.Entry{OrgID: orgID, Action: "billing.reconciled", TargetType: "subscription",
		TargetID: snap.ID}.WithDetails(map[string]any{"changed": diff, "stripe_status": snap.Status}))
	return err == nil, err
}

// change is one field a reconciliation repaired.
type change struct {
	From any `json:"from"`
	To   any `json:"to"`
}

// drift lists what differs between a and b among the facts a repair is
// about (not the snapshot's own date and ID, which every fetch moves).
func drift(a, b *Account) map[string]change {
	out := map[string]change{}
	add := func(name string, from, to any) {
		if js(from) != js(to) {
			out[name] = change{from, to}
		}
	}
	add("plan", a.PlanID, b.PlanID)
	add("interval", a.Interval, b.Interval)
	add("status", a.Status, b.Status)
	add("stripe_status", a.StripeStatus, b.StripeStatus)
	add("subscription", a.SubscriptionID, b.SubscriptionID)
	add("trial_end", a.TrialEnd, b.TrialEnd)
	add("current_period_end", a.CurrentPeriodEnd, b.CurrentPeriodEnd)
	add("cancel_at_period_end", a.CancelAtPeriodEnd, b.CancelAtPeriodEnd)
	add("quantity", a.Quantity, b.Quantity)
	return out
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// backfillEvents stores and queues (Accept) the handled events Stripe
// created in the last BackfillWindow that the inbox does not hold.
func (s *Service) backfillEvents(ctx context.Context) (int, error) {
	p := &stripe.EventListParams{
		CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: s.now().Add(-BackfillWindow).Unix()},
		Types:        stripe.StringSlice(ReconcileEventTypes),
	}
	p.Context = ctx
	var events []*stripe.Event
	it := s.Stripe.Events.List(p)
	for it.Next() {
		events = append(events, it.Event())
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("list events: %w", err)
	}
	n := 0
	for start := 0; start < len(events); start += 500 {
		batch := events[start:min(start+500, len(events))]
		ids := make([]string, len(batch))
		for i, e := range batch {
			ids[i] = e.ID
		}
		stored, err := s.Store.StoredEventIDs(ctx, s.DB, ids)
		if err != nil {
			return n, err
		}
		for _, e := range batch {
			if stored[e.ID] {
				continue
			}
			// Marshaled again, the event is the JSON Stripe sent: data.object
			// is kept raw (EventData.Raw), the rest are plain fields.
			raw, err := json.Marshal(e)
			if err != nil {
				return n, fmt.Errorf("event %s: %w", e.ID, err)
			}
			inserted, err := s.Accept(ctx, raw)
			if err != nil {
				return n, fmt.Errorf("event %s: %w", e.ID, err)
			}
			n += count(inserted)
		}
	}
	s.Metrics.DriftRepaired("event", n)
	return n, nil
}
