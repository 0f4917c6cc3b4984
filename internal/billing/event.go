package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/platform/postgres"
)

// The event types ApplyEvent handles; every other type is stored and
// marked ignored.
const (
	EventCheckoutCompleted      = "checkout.session.completed"
	EventSubscriptionCreated    = "customer.subscription.created"
	EventSubscriptionUpdated    = "customer.subscription.updated"
	EventSubscriptionDeleted    = "customer.subscription.deleted"
	EventTrialWillEnd           = "customer.subscription.trial_will_end"
	EventInvoicePaid            = "invoice.paid"
	EventInvoicePaymentSucceded = "invoice.payment_succeeded"
	EventInvoicePaymentFailed   = "invoice.payment_failed"
)

// HandledEvents lists the event types ApplyEvent applies.
var HandledEvents = []string{
	EventCheckoutCompleted, EventSubscriptionCreated, EventSubscriptionUpdated, EventSubscriptionDeleted,
	EventTrialWillEnd, EventInvoicePaid, EventInvoicePaymentSucceded, EventInvoicePaymentFailed,
}

// outcome is how an event ended: applied for an organization, or ignored
// and why.
type outcome struct {
	status, note string
}

// ApplyEvent applies stored event eventID in one transaction, once: its
// row is locked, and an event no longer pending (applied, ignored, or done
// by a concurrent run) changes nothing. The event's organization is found
// from its Stripe customer (or Keel's metadata), then the event is folded
// into that organization's billing state in the same transaction, under
// its tenant: a subscription snapshot replaces the row's only when newer
// (Account.Newer), an invoice merges forward (MergeInvoice), emails are
// queued once per fact (Notify). So any order and any number of
// deliveries end in the same state. Each applied event writes one audit
// row of the payload's facts.
//
// An error leaves the event pending (the worker retries it); a missing
// event is ErrNotFound.
func (s *Service) ApplyEvent(ctx context.Context, eventID string) error {
	var (
		typ string
		out outcome
	)
	err := postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		e, err := s.Store.Event(ctx, tx, eventID, true)
		if err != nil {
			return err
		}
		if e.Status != EventPending {
			return nil
		}
		typ = e.Type
		if out, err = s.applyEvent(ctx, tx, e); err != nil {
			return err
		}
		return s.Store.FinishEvent(ctx, tx, e.ID, out.status, out.note, s.now())
	})
	if err != nil {
		return fmt.Errorf("apply stripe event %s: %w", eventID, err)
	}
	if out.status != "" {
		s.Metrics.Finished(typ, out.status)
	}
	return nil
}

func ignored(note string) outcome { return outcome{status: EventIgnored, note: note} }

// applyEvent decides what e does, in tx (platform until the organization
// is known).
func (s *Service) applyEvent(ctx context.Context, tx *sqlx.Tx, e *Event) (outcome, error) {
	if e.APIVersion != APIVersion {
		s.Metrics.VersionMismatch()
		s.Log.Error().Str("event", e.ID).Str("type", e.Type).Str("api_version", e.APIVersion).
			Msg("billing: Stripe event of another API version ignored; create the webhook endpoint with API version " + APIVersion + " and replay it (keelctl stripe replay)")
		return ignored(fmt.Sprintf("api version %q is not %s: the webhook endpoint must use %s; replay after fixing it", e.APIVersion, APIVersion, APIVersion)), nil
	}
	var in eventIn
	if err := json.Unmarshal(e.Payload, &in); err != nil {
		return ignored("unreadable payload: " + err.Error()), nil
	}
	in.ID, in.Type = e.ID, e.Type
	if in.Created == 0 {
		in.Created = e.Created.Unix()
	}
	switch e.Type {
	case EventCheckoutCompleted:
		var o checkoutIn
		if err := json.Unmarshal(in.Data.Object, &o); err != nil {
			return ignored("unreadable checkout session: " + err.Error()), nil
		}
		return s.applyCheckout(ctx, tx, in, o)
	case EventSubscriptionCreated, EventSubscriptionUpdated, EventSubscriptionDeleted, EventTrialWillEnd:
		var o subscriptionIn
		if err := json.Unmarshal(in.Data.Object, &o); err != nil || o.ID == "" {
			return ignored(fmt.Sprintf("unreadable subscription (%v)", err)), nil
		}
		return s.applySubscription(ctx, tx, in, o)
	case EventInvoicePaid, EventInvoicePaymentSucceded, EventInvoicePaymentFailed:
		var o invoiceIn
		if err := json.Unmarshal(in.Data.Object, &o); err != nil || o.ID == "" {
			return ignored(fmt.Sprintf("unreadable invoice (%v)", err)), nil
		}
		return s.applyInvoice(ctx, tx, in, o)
	}
	return ignored("unhandled type"), nil
}

// orgFrom resolves an event's organization: the customer's link first,
// then Keel's own org_id in the metadata given (an organization that
// exists). found is false when neither names one.
func (s *Service) orgFrom(ctx context.Context, tx *sqlx.Tx, customer string, metadata ...map[string]string) (uuid.UUID, bool, error) {
	if customer != "" {
		org, ok, err := s.Store.OrgOfCustomer(ctx, tx, customer)
		if err != nil || ok {
			return org, ok, err
		}
	}
	for _, md := range metadata {
		if org, ok, err := s.existingOrg(ctx, tx, md["org_id"]); err != nil || ok {
			return org, ok, err
		}
	}
	return uuid.Nil, false, nil
}

// existingOrg parses id and reports whether that organization exists.
func (s *Service) existingOrg(ctx context.Context, tx *sqlx.Tx, id string) (uuid.UUID, bool, error) {
	org, err := uuid.Parse(id)
	if err != nil || org == uuid.Nil {
		return uuid.Nil, false, nil
	}
	var exists bool
	if err := tx.QueryRowxContext(ctx, `SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1)`, org).Scan(&exists); err != nil {
		return uuid.Nil, false, fmt.Errorf("organization %s: %w", org, err)
	}
	return org, exists, nil
}

func unknownCustomer(customer string) outcome {
	if customer == "" {
		return ignored("no customer and no org_id metadata")
	}
	return ignored("unknown customer " + customer)
}

// enter sets tx's tenant to org and locks its billing row: every change
// of an organization's billing state runs one at a time.
func (s *Service) enter(ctx context.Context, tx *sqlx.Tx, org uuid.UUID) (*Account, error) {
	if err := postgres.SetTenant(ctx, tx, org); err != nil {
		return nil, err
	}
	return s.lockAccount(ctx, tx, org)
}

// link records customer as org's (billing_customers and the row's
// customer ID) unless it is linked already. a is org's locked row.
func (s *Service) link(ctx context.Context, tx *sqlx.Tx, a *Account, customer string) error {
	if customer == "" {
		return nil
	}
	if err := s.Store.LinkCustomer(ctx, tx, customer, a.OrgID); err != nil {
		return err
	}
	if a.CustomerID != nil && *a.CustomerID == customer {
		return nil
	}
	a.CustomerID = ptr(customer)
	return s.Store.SaveAccount(ctx, tx, a, s.now())
}

// applyCheckout links the session's customer to the organization Keel's
// Checkout named (metadata org_id, or client_reference_id). The
// subscription's state comes from its own events (and reconciliation).
func (s *Service) applyCheckout(ctx context.Context, tx *sqlx.Tx, e eventIn, o checkoutIn) (outcome, error) {
	org, ok, err := s.existingOrg(ctx, tx, o.Metadata["org_id"])
	if err == nil && !ok {
		org, ok, err = s.existingOrg(ctx, tx, o.ClientReferenceID)
	}
	if err != nil {
		return outcome{}, err
	}
	if !ok {
		return ignored(fmt.Sprintf("unknown organization (metadata org_id %q, client_reference_id %q)", o.Metadata["org_id"], o.ClientReferenceID)), nil
	}
	a, err := s.enter(ctx, tx, org)
	if err != nil {
		return outcome{}, err
	}
	if err := s.link(ctx, tx, a, string(o.Customer)); err != nil {
		return outcome{}, err
	}
	return s.applied(ctx, tx, org, e, map[string]any{"session": o.ID, "mode": o.Mode,
		"customer": string(o.Customer), "subscription": string(o.Subscription)})
}

// accountOf finds the organization of an event's customer (orgFrom),
// enters its tenant with its subscriptions row locked, and links the
// customer when the organization was found through Keel's metadata (later
// events may name only the customer). The account is nil when no
// organization was found.
func (s *Service) accountOf(ctx context.Context, tx *sqlx.Tx, customer string, metadata ...map[string]string) (uuid.UUID, *Account, error) {
	org, ok, err := s.orgFrom(ctx, tx, customer, metadata...)
	if err != nil || !ok {
		return uuid.Nil, nil, err
	}
	a, err := s.enter(ctx, tx, org)
	if err != nil {
		return uuid.Nil, nil, err
	}
	if a.CustomerID == nil {
		if err := s.link(ctx, tx, a, customer); err != nil {
			return uuid.Nil, nil, err
		}
	}
	return org, a, nil
}

// applySubscription folds the subscription's snapshot into its
// organization's state, and queues the emails the event reports.
func (s *Service) applySubscription(ctx context.Context, tx *sqlx.Tx, e eventIn, o subscriptionIn) (outcome, error) {
	org, a, err := s.accountOf(ctx, tx, string(o.Customer), o.Metadata)
	if err != nil || a == nil {
		return unknownCustomer(string(o.Customer)), err
	}
	snap := o.snapshot(e)
	if _, _, err := s.ApplySnapshot(ctx, tx, org, snap); err != nil {
		return outcome{}, err
	}
	planName := s.planName(snap.PriceID)
	fallback := s.Plans.FallbackPlan().Name
	switch e.Type {
	case EventSubscriptionDeleted:
		_, err = s.Notify(ctx, tx, org, "canceled:"+o.ID, MailCanceled, map[string]string{"plan": planName, "fallback": fallback})
	case EventTrialWillEnd:
		if snap.TrialEnd != nil {
			days := int(snap.TrialEnd.Sub(unix(e.Created)).Round(24*time.Hour) / (24 * time.Hour))
			_, err = s.Notify(ctx, tx, org, "trial-ending:"+o.ID+":"+strconv.FormatInt(snap.TrialEnd.Unix(), 10), MailTrialEnding,
				map[string]string{"plan": planName, "fallback": fallback, "trial_end": Day(*snap.TrialEnd), "days": strconv.Itoa(max(days, 0))})
		}
	}
	if err != nil {
		return outcome{}, err
	}
	details := map[string]any{"subscription": o.ID, "customer": string(o.Customer), "status": o.Status,
		"price": snap.PriceID, "quantity": snap.Quantity, "cancel_at_period_end": o.CancelAtPeriodEnd,
		"current_period_end": snap.CurrentPeriodEnd, "trial_end": snap.TrialEnd}
	if p, _, ok := s.Plans.ByPrice(snap.PriceID); ok {
		details["plan"] = p.ID
	}
	return s.applied(ctx, tx, org, e, details)
}

// planName is the name of the plan of a price; the price itself when the
// catalog does not know it.
func (s *Service) planName(price string) string {
	if p, _, ok := s.Plans.ByPrice(price); ok {
		return p.Name
	}
	return price
}

// applyInvoice merges what the event says of an invoice into the stored
// one, settles the organization's status again (a failure starts the
// grace period, a payment ends it), and queues the day-0 dunning email or
// the receipt.
func (s *Service) applyInvoice(ctx context.Context, tx *sqlx.Tx, e eventIn, o invoiceIn) (outcome, error) {
	// The row lock first: two events of one new invoice must not both
	// see it missing and overwrite each other's merge.
	org, a, err := s.accountOf(ctx, tx, string(o.Customer), o.SubscriptionDetails.Metadata, o.Metadata)
	if err != nil || a == nil {
		return unknownCustomer(string(o.Customer)), err
	}
	have, err := s.Store.Invoice(ctx, tx, org, o.ID)
	if errors.Is(err, ErrNotFound) {
		have, err = nil, nil
	}
	if err != nil {
		return outcome{}, err
	}
	in := o.invoice(e)
	in.OrgID = org
	var failedAt *time.Time
	if e.Type == EventInvoicePaymentFailed {
		failedAt = ptr(o.failedAt(e))
	}
	merged := MergeInvoice(have, in, failedAt)
	merged.OrgID = org
	if err := s.Store.SaveInvoice(ctx, tx, &merged, s.now()); err != nil {
		return outcome{}, err
	}
	if err := s.Resettle(ctx, tx, a); err != nil {
		return outcome{}, err
	}
	data := map[string]string{"invoice": invoiceName(merged), "amount": Money(o.AmountDue, o.Currency)}
	switch {
	case e.Type == EventInvoicePaymentFailed:
		data["grace_until"] = Day(merged.FirstFailedAt.Add(s.Grace()))
		_, err = s.Notify(ctx, tx, org, "dunning:"+o.ID+":0", MailPaymentFailed, data)
	case o.AmountPaid > 0:
		data["amount"] = Money(o.AmountPaid, o.Currency)
		_, err = s.Notify(ctx, tx, org, "paid:"+o.ID, MailPaymentReceived, data)
	}
	if err != nil {
		return outcome{}, err
	}
	return s.applied(ctx, tx, org, e, map[string]any{"invoice": o.ID, "number": o.Number, "status": o.Status,
		"subscription": string(o.Subscription), "currency": o.Currency, "amount_due": o.AmountDue,
		"amount_paid": o.AmountPaid, "attempt_count": o.AttemptCount})
}

// applied writes the event's audit row (facts of its payload only, never
// whether it changed anything, which depends on arrival order) and its
// outcome.
func (s *Service) applied(ctx context.Context, tx *sqlx.Tx, org uuid.UUID, e eventIn, details map[string]any) (outcome, error) {
	details["event_created"] = unix(e.Created)
	err := audit.Record(ctx, tx, audit.Entry{OrgID: org, Action: "billing." + e.Type, TargetType: "stripe_event",
		TargetID: e.ID}.WithDetails(details))
	if err != nil {
		return outcome{}, err
	}
	return outcome{status: EventApplied, note: "organization " + org.String()}, nil
}
