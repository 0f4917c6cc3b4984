package billing

import (
	"bytes"
	"encoding/json"
	"time"
)

// The shapes below are the few fields Keel reads of Stripe's objects (API
// version 2023-10-16). Missing fields decode to their zero values, and an
// expandable reference (customer, subscription) may be an ID or an object.

type eventIn struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Created int64  `json:"created"`
	Data    struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

// ref is an expandable Stripe reference: "cus_123" or {"id": "cus_123", ...}.
type ref string

func (r *ref) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		var o struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		*r = ref(o.ID)
		return nil
	}
	var s *string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s != nil {
		*r = ref(*s)
	}
	return nil
}

type subscriptionIn struct {
	ID                string            `json:"id"`
	Customer          ref               `json:"customer"`
	Status            string            `json:"status"`
	Created           int64             `json:"created"`
	TrialEnd          *int64            `json:"trial_end"`
	CurrentPeriodEnd  *int64            `json:"current_period_end"`
	CancelAtPeriodEnd bool              `json:"cancel_at_period_end"`
	EndedAt           *int64            `json:"ended_at"`
	Metadata          map[string]string `json:"metadata"`
	Items             struct {
		Data []struct {
			Price struct {
				ID         string `json:"id"`
				Currency   string `json:"currency"`
				UnitAmount *int64 `json:"unit_amount"`
				Recurring  *struct {
					Interval      string `json:"interval"`
					IntervalCount int    `json:"interval_count"`
				} `json:"recurring"`
			} `json:"price"`
			Quantity int `json:"quantity"`
		} `json:"data"`
	} `json:"items"`
	Discount *struct {
		Coupon struct {
			PercentOff *float64 `json:"percent_off"`
			AmountOff  *int64   `json:"amount_off"`
		} `json:"coupon"`
	} `json:"discount"`
}

// snapshot is s as of event e.
func (s subscriptionIn) snapshot(e eventIn) Snapshot {
	snap := Snapshot{ID: s.ID, CustomerID: string(s.Customer), Status: s.Status, Created: unix(s.Created),
		TrialEnd: unixPtr(s.TrialEnd), CurrentPeriodEnd: unixPtr(s.CurrentPeriodEnd),
		CancelAtPeriodEnd: s.CancelAtPeriodEnd, EventAt: unix(e.Created), EventID: e.ID, EndedAt: unixPtr(s.EndedAt)}
	if len(s.Items.Data) > 0 {
		it := s.Items.Data[0]
		snap.PriceID, snap.Quantity = it.Price.ID, it.Quantity
		snap.Price.UnitAmount = it.Price.UnitAmount
		if it.Price.Currency != "" {
			snap.Price.Currency = ptr(it.Price.Currency)
		}
		if r := it.Price.Recurring; r != nil && r.Interval != "" {
			snap.Price.PriceInterval, snap.Price.IntervalCount = ptr(r.Interval), ptr(max(r.IntervalCount, 1))
		}
	}
	if d := s.Discount; d != nil {
		snap.Price.PercentOff, snap.Price.AmountOff = d.Coupon.PercentOff, d.Coupon.AmountOff
	}
	return snap
}

type invoiceIn struct {
	ID                string `json:"id"`
	Customer          ref    `json:"customer"`
	Subscription      ref    `json:"subscription"`
	Number            string `json:"number"`
	Status            string `json:"status"`
	Currency          string `json:"currency"`
	AmountDue         int64  `json:"amount_due"`
	AmountPaid        int64  `json:"amount_paid"`
	AttemptCount      int    `json:"attempt_count"`
	Created           int64  `json:"created"`
	PeriodStart       *int64 `json:"period_start"`
	PeriodEnd         *int64 `json:"period_end"`
	HostedInvoiceURL  string `json:"hosted_invoice_url"`
	InvoicePDF        string `json:"invoice_pdf"`
	StatusTransitions struct {
		FinalizedAt *int64 `json:"finalized_at"`
		PaidAt      *int64 `json:"paid_at"`
	} `json:"status_transitions"`
	Metadata            map[string]string `json:"metadata"`
	SubscriptionDetails struct {
		Metadata map[string]string `json:"metadata"`
	} `json:"subscription_details"`
}

// invoice is what in says of the invoice, for orgID.
func (in invoiceIn) invoice(e eventIn) Invoice {
	inv := Invoice{ID: in.ID, Number: in.Number, Status: in.Status, Currency: in.Currency,
		AmountDue: in.AmountDue, AmountPaid: in.AmountPaid, HostedInvoiceURL: in.HostedInvoiceURL,
		InvoicePDF: in.InvoicePDF, PeriodStart: unixPtr(in.PeriodStart), PeriodEnd: unixPtr(in.PeriodEnd),
		Created: unix(in.Created), AttemptCount: in.AttemptCount, PaidAt: unixPtr(in.StatusTransitions.PaidAt)}
	if in.Created == 0 {
		inv.Created = unix(e.Created)
	}
	if in.Subscription != "" {
		inv.SubscriptionID = ptr(string(in.Subscription))
	}
	if inv.Status == "" {
		inv.Status = "open"
	}
	if inv.Status == "paid" && inv.PaidAt == nil {
		inv.PaidAt = ptr(unix(e.Created))
	}
	return inv
}

// failedAt is when the invoice's payment first failed: its finalization
// (Stripe attempts a subscription invoice's payment when it finalizes it),
// a fact every payment_failed event of the invoice repeats, so the grace
// period and the day-0 email's date do not depend on which of them arrives
// first; the event's time when the invoice does not say.
func (in invoiceIn) failedAt(e eventIn) time.Time {
	if f := in.StatusTransitions.FinalizedAt; f != nil && *f > 0 && *f <= e.Created {
		return unix(*f)
	}
	return unix(e.Created)
}

type checkoutIn struct {
	ID                string            `json:"id"`
	Mode              string            `json:"mode"`
	Customer          ref               `json:"customer"`
	Subscription      ref               `json:"subscription"`
	ClientReferenceID string            `json:"client_reference_id"`
	Metadata          map[string]string `json:"metadata"`
}

func unix(s int64) time.Time { return time.Unix(s, 0).UTC() }

func unixPtr(s *int64) *time.Time {
	if s == nil || *s == 0 {
		return nil
	}
	t := unix(*s)
	return &t
}
