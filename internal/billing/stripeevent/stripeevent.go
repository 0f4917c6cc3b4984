// Package stripeevent builds realistic Stripe webhook events (API version
// 2023-10-16, the shapes Stripe sends) for the billing types Keel handles,
// and signs them with Stripe's scheme. Tests drive billing with it, and
// keelctl stripe trigger lets a developer drive every billing state of a
// local stack without a Stripe account.
package stripeevent

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/keelhq/keel/internal/billing"
)

// Facts are what an event says. Zero fields get plausible defaults (see
// Build); IDs keep the prefixes Stripe uses.
type Facts struct {
	EventID string    // evt_...; default: derived from the type, subscription and time
	Created time.Time // the event's creation; default: now

	OrgID      string // Keel's organization: metadata org_id and client_reference_id
	CustomerID string // cus_...

	SubscriptionID      string // sub_...
	SubscriptionCreated time.Time
	// Status is the subscription's (trialing, active, past_due, canceled,
	// ...); default active, canceled for customer.subscription.deleted.
	Status   string
	PriceID  string // price_...; default price_keel_pro_monthly
	Interval string // month or year; default from the price ID
	Quantity int    // default 1
	// PercentOff or AmountOff (in Currency's smallest unit, per invoice)
	// put a coupon on the subscription (its discount); zero: none.
	PercentOff        float64
	AmountOff         int64
	TrialEnd          time.Time
	PeriodStart       time.Time
	PeriodEnd         time.Time
	CancelAtPeriodEnd bool

	InvoiceID     string // in_...
	InvoiceNumber string
	Amount        int64  // in the currency's smallest unit; default 2900
	Currency      string // default usd
	AttemptCount  int    // default 1
	// InvoiceCreated, when set, is the invoice's creation and finalization
	// (its first payment attempt); default: the event's time.
	InvoiceCreated time.Time
	// Trial makes the invoice the $0 first invoice of a trialing
	// subscription.
	Trial bool

	SessionID string // cs_test_...
}

// Types lists the event types Build makes: the ones Keel applies.
func Types() []string { return slices.Clone(billing.HandledEvents) }

// Build returns the JSON of a typ event with f's facts, as Stripe would
// deliver it.
func Build(typ string, f Facts) ([]byte, error) {
	if !slices.Contains(billing.HandledEvents, typ) {
		return nil, fmt.Errorf("stripeevent: unsupported event type %q (supported: %s)", typ, strings.Join(Types(), ", "))
	}
	f = f.defaults(typ)
	var obj map[string]any
	switch {
	case typ == billing.EventCheckoutCompleted:
		obj = checkoutSession(f)
	case strings.HasPrefix(typ, "customer.subscription."):
		obj = subscription(f)
	default:
		obj = invoice(typ, f)
	}
	ev := map[string]any{
		"id": f.EventID, "object": "event", "api_version": billing.APIVersion, "created": f.Created.Unix(),
		"livemode": false, "pending_webhooks": 1, "type": typ,
		"request": map[string]any{"id": nil, "idempotency_key": nil},
		"data":    map[string]any{"object": obj},
	}
	return json.Marshal(ev)
}

// MustBuild is Build for tests and fixed sequences; it panics on an
// unsupported type.
func MustBuild(typ string, f Facts) []byte {
	b, err := Build(typ, f)
	if err != nil {
		panic(err)
	}
	return b
}

func (f Facts) defaults(typ string) Facts {
	if f.Created.IsZero() {
		f.Created = time.Now()
	}
	f.Created = f.Created.UTC().Truncate(time.Second)
	if f.CustomerID == "" {
		f.CustomerID = "cus_" + short(f.OrgID)
	}
	if f.SubscriptionID == "" {
		f.SubscriptionID = "sub_" + short(f.OrgID)
	}
	if f.SubscriptionCreated.IsZero() {
		f.SubscriptionCreated = f.Created
	}
	if f.PriceID == "" {
		f.PriceID = "price_keel_pro_monthly"
	}
	if f.Interval == "" {
		f.Interval = "month"
		if strings.HasSuffix(f.PriceID, "yearly") {
			f.Interval = "year"
		}
	}
	if f.Quantity == 0 {
		f.Quantity = 1
	}
	if f.Status == "" {
		f.Status = "active"
		if typ == billing.EventSubscriptionDeleted {
			f.Status = "canceled"
		}
	}
	if f.PeriodStart.IsZero() {
		f.PeriodStart = f.Created
	}
	if f.PeriodEnd.IsZero() {
		f.PeriodEnd = f.PeriodStart.AddDate(0, 1, 0)
		if f.Interval == "year" {
			f.PeriodEnd = f.PeriodStart.AddDate(1, 0, 0)
		}
	}
	if f.InvoiceID == "" {
		f.InvoiceID = "in_" + short(f.OrgID) + fmt.Sprint(f.Created.Unix())
	}
	if f.InvoiceNumber == "" {
		f.InvoiceNumber = strings.ToUpper(short(f.OrgID)[:min(8, len(short(f.OrgID)))]) + "-0001"
	}
	if f.Amount == 0 && !f.Trial {
		f.Amount = 2900
	}
	if f.Currency == "" {
		f.Currency = "usd"
	}
	if f.AttemptCount == 0 {
		f.AttemptCount = 1
	}
	if f.InvoiceCreated.IsZero() {
		f.InvoiceCreated = f.Created
	}
	if f.SessionID == "" {
		f.SessionID = "cs_test_" + short(f.OrgID)
	}
	if f.EventID == "" {
		f.EventID = fmt.Sprintf("evt_%s_%s_%d", strings.ReplaceAll(typ, ".", "_"), short(f.SubscriptionID), f.Created.UnixNano())
	}
	return f
}

// short is s without dashes, for IDs derived from an organization's UUID.
func short(s string) string {
	s = strings.ReplaceAll(s, "-", "")
	if s == "" {
		return "keel"
	}
	return s
}

func metadata(f Facts) map[string]any {
	if f.OrgID == "" {
		return map[string]any{}
	}
	return map[string]any{"org_id": f.OrgID}
}

func unixOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Unix()
}

func price(f Facts) map[string]any {
	return map[string]any{
		"id": f.PriceID, "object": "price", "active": true, "currency": f.Currency, "product": "prod_keel",
		"recurring": map[string]any{"interval": f.Interval, "interval_count": 1, "usage_type": "licensed"},
		"type":      "recurring", "unit_amount": f.Amount, "livemode": false,
	}
}

func subscription(f Facts) map[string]any {
	var canceledAt, endedAt, trialStart, cancelAt any
	if f.Status == "canceled" {
		canceledAt, endedAt = f.Created.Unix(), f.Created.Unix()
	}
	if !f.TrialEnd.IsZero() {
		trialStart = f.SubscriptionCreated.Unix()
	}
	if f.CancelAtPeriodEnd {
		cancelAt = f.PeriodEnd.Unix()
	}
	return map[string]any{
		"id": f.SubscriptionID, "object": "subscription", "customer": f.CustomerID, "status": f.Status,
		"created": f.SubscriptionCreated.Unix(), "start_date": f.SubscriptionCreated.Unix(),
		"current_period_start": f.PeriodStart.Unix(), "current_period_end": f.PeriodEnd.Unix(),
		"trial_start":          trialStart,
		"trial_end":            unixOrNil(f.TrialEnd),
		"cancel_at_period_end": f.CancelAtPeriodEnd, "canceled_at": canceledAt, "ended_at": endedAt,
		"cancel_at":         cancelAt,
		"collection_method": "charge_automatically", "currency": f.Currency, "livemode": false,
		"metadata": metadata(f), "quantity": f.Quantity, "discount": discount(f),
		"items": map[string]any{
			"object": "list", "has_more": false, "url": "/v1/subscription_items?subscription=" + f.SubscriptionID,
			"data": []any{map[string]any{
				"id": "si_" + strings.TrimPrefix(f.SubscriptionID, "sub_"), "object": "subscription_item",
				"price": price(f), "quantity": f.Quantity, "subscription": f.SubscriptionID,
				"created": f.SubscriptionCreated.Unix(),
			}},
		},
	}
}

// discount is the subscription's discount: its coupon, or null.
func discount(f Facts) any {
	if f.PercentOff == 0 && f.AmountOff == 0 {
		return nil
	}
	coupon := map[string]any{"id": "coupon_keel", "object": "coupon", "duration": "forever", "valid": true,
		"percent_off": nil, "amount_off": nil, "currency": nil, "livemode": false}
	if f.PercentOff != 0 {
		coupon["percent_off"] = f.PercentOff
	} else {
		coupon["amount_off"], coupon["currency"] = f.AmountOff, f.Currency
	}
	return map[string]any{"id": "di_" + strings.TrimPrefix(f.SubscriptionID, "sub_"), "object": "discount",
		"coupon": coupon, "customer": f.CustomerID, "subscription": f.SubscriptionID, "start": f.Created.Unix(), "end": nil}
}

func invoice(typ string, f Facts) map[string]any {
	status, paid, amountPaid := "open", false, int64(0)
	var paidAt any
	nextAttempt := any(f.Created.Add(3 * 24 * time.Hour).Unix())
	if typ != billing.EventInvoicePaymentFailed {
		status, paid, amountPaid, paidAt, nextAttempt = "paid", true, f.Amount, f.Created.Unix(), nil
	}
	reason := "subscription_cycle"
	if f.Trial {
		reason = "subscription_create"
	}
	return map[string]any{
		"id": f.InvoiceID, "object": "invoice", "customer": f.CustomerID, "subscription": f.SubscriptionID,
		"number": f.InvoiceNumber, "status": status, "paid": paid, "currency": f.Currency,
		"amount_due": f.Amount, "amount_paid": amountPaid, "amount_remaining": f.Amount - amountPaid,
		"total": f.Amount, "subtotal": f.Amount, "attempt_count": f.AttemptCount, "attempted": true,
		"billing_reason": reason, "collection_method": "charge_automatically",
		"created": f.InvoiceCreated.Unix(), "period_start": f.PeriodStart.Unix(), "period_end": f.PeriodEnd.Unix(),
		"hosted_invoice_url": "https://invoice.stripe.com/i/acct_keel/test_" + f.InvoiceID,
		"invoice_pdf":        "https://pay.stripe.com/invoice/acct_keel/test_" + f.InvoiceID + "/pdf",
		"livemode":           false, "metadata": map[string]any{},
		"status_transitions": map[string]any{"finalized_at": f.InvoiceCreated.Unix(), "paid_at": paidAt,
			"marked_uncollectible_at": nil, "voided_at": nil},
		"subscription_details": map[string]any{"metadata": metadata(f)},
		"next_payment_attempt": nextAttempt,
		"lines": map[string]any{"object": "list", "has_more": false, "data": []any{map[string]any{
			"id": "il_" + strings.TrimPrefix(f.InvoiceID, "in_"), "object": "line_item", "amount": f.Amount,
			"currency": f.Currency, "price": price(f), "quantity": f.Quantity, "type": "subscription",
			"period": map[string]any{"start": f.PeriodStart.Unix(), "end": f.PeriodEnd.Unix()},
		}}},
	}
}

func checkoutSession(f Facts) map[string]any {
	return map[string]any{
		"id": f.SessionID, "object": "checkout.session", "mode": "subscription", "status": "complete",
		"payment_status": "paid", "customer": f.CustomerID, "subscription": f.SubscriptionID,
		"client_reference_id": f.OrgID, "metadata": metadata(f), "livemode": false,
		"created": f.Created.Add(-time.Minute).Unix(), "currency": f.Currency, "amount_total": f.Amount,
		"allow_promotion_codes": true, "url": nil,
	}
}

// Sign returns the Stripe-Signature header of payload signed with secret
// at t, exactly as Stripe signs a delivery.
func Sign(payload []byte, secret string, t time.Time) string {
	return fmt.Sprintf("t=%d,v1=%x", t.Unix(), webhook.ComputeSignature(t, payload, secret))
}
