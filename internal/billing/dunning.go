package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/audit"
)

// DunningDays are the days after an invoice first failed on which its
// owners are reminded. Day 0's email is sent by the invoice.payment_failed
// event itself.
var DunningDays = []int{3, 7}

// DunningResult is what one billing:dunning run did (the job run's detail).
type DunningResult struct {
	Orgs      int `json:"orgs"`      // organizations past due or read-only
	Reminders int `json:"reminders"` // day-3 and day-7 emails queued
	ReadOnly  int `json:"read_only"` // organizations that became read-only
	Failed    int `json:"failed,omitempty"`
}

type dunningOutcome struct {
	reminders int
	readOnly  bool
}

// Dunning is billing:dunning: for every organization past due (or already
// read-only), it reminds the owners of each unpaid invoice of the current
// subscription on its day 3 and day 7, and once the grace period is over
// settles the organization read-only and tells them. Every email is keyed
// by its invoice and day (Notify), so repeated or overlapping runs send it
// once; an invoice paid meanwhile is no longer open and gets nothing.
func (s *Service) Dunning(ctx context.Context) (DunningResult, error) {
	var res DunningResult
	orgs, err := s.Store.OrgsWithStatus(ctx, s.DB, PastDue, ReadOnly)
	if err != nil {
		return res, err
	}
	res.Orgs = len(orgs)
	res.Failed, err = s.eachOrg(ctx, orgs, "dunning", func(tx *sqlx.Tx, org uuid.UUID) (func(), error) {
		out, err := s.dun(ctx, tx, org)
		return func() {
			res.Reminders += out.reminders
			res.ReadOnly += count(out.readOnly)
		}, err
	})
	return res, err
}

func (s *Service) dun(ctx context.Context, tx *sqlx.Tx, org uuid.UUID) (dunningOutcome, error) {
	var out dunningOutcome
	a, err := s.LockAccount(ctx, tx, org)
	if err != nil || a.SubscriptionID == nil {
		return out, err
	}
	invs, err := s.Store.UnpaidInvoices(ctx, tx, org, *a.SubscriptionID)
	if err != nil {
		return out, err
	}
	// Settle first: the reminders name the grace period's end, and an
	// organization past it turns read-only now, not at the next event. The
	// row is written only when that changes it, not every hour.
	now, before := s.now(), a.Status
	since, paid, err := s.Store.InvoiceFacts(ctx, tx, org, *a.SubscriptionID)
	if err != nil {
		return out, err
	}
	probe := *a
	probe.Settle(now, since, paid, s.Grace())
	if js(probe) != js(*a) {
		if err := s.Resettle(ctx, tx, a); err != nil {
			return out, err
		}
	}
	for _, inv := range invs {
		sent, err := s.remind(ctx, tx, a, inv, now)
		if err != nil {
			return out, err
		}
		out.reminders += count(sent)
	}
	if a.Status != ReadOnly {
		return out, nil
	}
	if before != ReadOnly {
		out.readOnly = true
		err := audit.Record(ctx, tx, audit.Entry{OrgID: org, Action: "billing.read_only", TargetType: "organization",
			TargetID: org.String()}.WithDetails(map[string]any{"past_due_since": a.PastDueSince, "grace_until": a.GraceUntil,
			"stripe_status": a.StripeStatus}))
		if err != nil {
			return out, err
		}
	}
	if len(invs) == 0 {
		// Read-only from Stripe's own status (unpaid, paused) with no
		// failed invoice here: there is no invoice to name.
		return out, nil
	}
	// The oldest failure is the one whose grace ran out.
	inv := invs[0]
	_, err = s.Notify(ctx, tx, org, "read-only:"+inv.ID, MailReadOnly,
		map[string]string{"invoice": invoiceName(inv), "amount": Money(inv.AmountDue, inv.Currency)})
	return out, err
}

// remind queues the latest reminder due for inv (day 3 or day 7) unless it
// was sent. Only the latest: a run that first sees an invoice on day 8
// sends the day-7 email, not the day-3 one with it.
func (s *Service) remind(ctx context.Context, tx *sqlx.Tx, a *Account, inv Invoice, now time.Time) (bool, error) {
	if inv.FirstFailedAt == nil {
		return false, nil
	}
	day := int(now.Sub(*inv.FirstFailedAt) / (24 * time.Hour))
	for i := len(DunningDays) - 1; i >= 0; i-- {
		if day < DunningDays[i] {
			continue
		}
		return s.Notify(ctx, tx, a.OrgID, fmt.Sprintf("dunning:%s:%d", inv.ID, DunningDays[i]), MailPaymentFailed,
			dunningData(inv, a))
	}
	return false, nil
}

// dunningData is the payment-failed email's data for inv of a: the
// same on day 0, 3 and 7.
func dunningData(inv Invoice, a *Account) map[string]string {
	d := map[string]string{"invoice": invoiceName(inv), "amount": Money(inv.AmountDue, inv.Currency)}
	if a.GraceUntil != nil {
		d["grace_until"] = Day(*a.GraceUntil)
	}
	return d
}

// invoiceName is how an email names an invoice: its number, which the
// customer sees on it, else its ID.
func invoiceName(inv Invoice) string {
	if inv.Number != "" {
		return inv.Number
	}
	return inv.ID
}
