package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/jobs/task"
)

// Email templates billing sends (internal/email/templates/billing_*).
const (
	MailTrialEnding     = "billing_trial_ending"     // organization, plan, fallback, trial_end, days
	MailTrialEnded      = "billing_trial_ended"      // organization, plan, fallback
	MailPaymentFailed   = "billing_payment_failed"   // organization, invoice, amount, grace_until
	MailReadOnly        = "billing_read_only"        // organization, invoice, amount
	MailPaymentReceived = "billing_payment_received" // organization, invoice, amount
	MailCanceled        = "billing_subscription_canceled"
)

// Notify queues email template to each of orgID's owners, once per key:
// the key is recorded in billing_notices in tx, beside the emails' outbox
// rows, so however often an event or a job asks, one notice goes out. data
// gets the organization's name as "organization". sent is false when the
// key was recorded before.
func (s *Service) Notify(ctx context.Context, tx *sqlx.Tx, orgID uuid.UUID, key, template string, data map[string]string) (sent bool, err error) {
	first, err := s.Store.Notice(ctx, tx, orgID, key)
	if err != nil || !first {
		return false, err
	}
	owners, err := s.Store.Owners(ctx, tx, orgID)
	if err != nil {
		return false, err
	}
	var name string
	if err := tx.QueryRowxContext(ctx, `SELECT name FROM organizations WHERE id = $1`, orgID).Scan(&name); err != nil {
		return false, fmt.Errorf("organization %s: %w", orgID, err)
	}
	for _, o := range owners {
		d := map[string]string{"organization": name}
		for k, v := range data {
			d[k] = v
		}
		t, err := task.NewEmailSendTask(orgID, task.EmailPayload{To: o.Email, Template: template, Data: d})
		if err != nil {
			return false, err
		}
		if _, err := outbox.Add(ctx, tx, t); err != nil {
			return false, fmt.Errorf("notice %s: %w", key, err)
		}
	}
	return true, nil
}

// Day formats a date for an email.
func Day(t time.Time) string { return t.UTC().Format("2 January 2006") }

// Money formats an amount in a currency's smallest unit ("usd", 2900) as
// "29.00 USD". Zero-decimal currencies (JPY, KRW, ...) have no cents.
func Money(amount int64, currency string) string {
	cur := upper(currency)
	switch cur {
	case "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF":
		return fmt.Sprintf("%d %s", amount, cur)
	}
	sign := ""
	if amount < 0 {
		sign, amount = "-", -amount
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, amount/100, amount%100, cur)
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}
