// Package billingdb is billing's store: subscriptions, invoices and
// billing_notices under the tenant's Row Level Security, the webhook inbox
// (stripe_events) and the customer map (billing_customers) as platform
// rows.
package billingdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/postgres"
)

// Store implements billing.Store; its methods run on the handle given.
type Store struct{}

var _ billing.Store = Store{}

const accountCols = `org_id, plan_id, status, billing_interval, trial_end, current_period_end, cancel_at_period_end,
	stripe_customer_id, stripe_subscription_id, stripe_status, stripe_subscription_created, stripe_event_at,
	stripe_event_id, quantity, past_due_since, grace_until, version, created_at, updated_at,
	price_unit_amount, price_currency, price_interval, price_interval_count, discount_percent_off, discount_amount_off,
	ended_at`

func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return billing.ErrNotFound
	}
	return err
}

// Account implements billing.Store. Locking, it first queues on the
// organization's billing lock (billing_lock, migration 00750), which every
// write checked by billing_assert_writable takes shared: writes arriving
// after it wait for it instead of keeping the row's share lock taken.
func (Store) Account(ctx context.Context, q sqlx.QueryerContext, orgID uuid.UUID, lock bool) (*billing.Account, error) {
	query := `SELECT ` + accountCols + ` FROM subscriptions WHERE org_id = $1`
	if lock {
		var one int
		if err := q.QueryRowxContext(ctx, `SELECT 1 FROM billing_lock($1, true)`, orgID).Scan(&one); err != nil {
			return nil, fmt.Errorf("lock billing of %s: %w", orgID, err)
		}
		query += ` FOR UPDATE`
	}
	var a billing.Account
	if err := sqlx.GetContext(ctx, q, &a, query, orgID); err != nil {
		return nil, fmt.Errorf("subscription of %s: %w", orgID, notFound(err))
	}
	return &a, nil
}

// CreateAccount implements billing.Store.
func (Store) CreateAccount(ctx context.Context, tx sqlx.ExtContext, a *billing.Account) (bool, error) {
	const q = `INSERT INTO subscriptions (org_id, plan_id, status, trial_end) VALUES ($1, $2, $3, $4)
		ON CONFLICT (org_id) DO NOTHING`
	res, err := tx.ExecContext(ctx, q, a.OrgID, a.PlanID, string(a.Status), a.TrialEnd)
	if err != nil {
		return false, fmt.Errorf("create subscription of %s: %w", a.OrgID, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// SaveAccount implements billing.Store.
func (Store) SaveAccount(ctx context.Context, tx sqlx.ExtContext, a *billing.Account, now time.Time) error {
	const q = `UPDATE subscriptions SET plan_id = $2, status = $3, billing_interval = $4, trial_end = $5,
		current_period_end = $6, cancel_at_period_end = $7, stripe_customer_id = $8, stripe_subscription_id = $9,
		stripe_status = $10, stripe_subscription_created = $11, stripe_event_at = $12, stripe_event_id = $13,
		quantity = $14, past_due_since = $15, grace_until = $16, version = version + 1, updated_at = $17,
		price_unit_amount = $18, price_currency = $19, price_interval = $20, price_interval_count = $21,
		discount_percent_off = $22, discount_amount_off = $23, ended_at = $24
		WHERE org_id = $1 RETURNING version, updated_at`
	p := a.Price
	row := tx.QueryRowxContext(ctx, q, a.OrgID, a.PlanID, string(a.Status), a.Interval, a.TrialEnd,
		a.CurrentPeriodEnd, a.CancelAtPeriodEnd, a.CustomerID, a.SubscriptionID, a.StripeStatus,
		a.SubscriptionCreated, a.EventAt, a.EventID, a.Quantity, a.PastDueSince, a.GraceUntil, now,
		p.UnitAmount, p.Currency, p.PriceInterval, p.IntervalCount, p.PercentOff, p.AmountOff, a.EndedAt)
	if err := row.Scan(&a.Version, &a.UpdatedAt); err != nil {
		return fmt.Errorf("save subscription of %s: %w", a.OrgID, notFound(err))
	}
	return nil
}

// PlanOf implements billing.Store through billing_plan_of, which answers
// inside or outside a tenant transaction.
func (Store) PlanOf(ctx context.Context, q sqlx.QueryerContext, orgID uuid.UUID) (*string, billing.Status, bool, error) {
	var (
		planID *string
		status string
	)
	err := q.QueryRowxContext(ctx, `SELECT plan_id, status FROM billing_plan_of($1)`, orgID).Scan(&planID, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", false, nil
	}
	if err != nil {
		return nil, "", false, fmt.Errorf("plan of %s: %w", orgID, err)
	}
	return planID, billing.Status(status), true, nil
}

// PlanGuard implements billing.Store. It compares billing_plan_of's
// answer as one text, plan ID and status (which has no slash) joined by a
// slash, and empty for no row.
func (Store) PlanGuard(orgID uuid.UUID, planID *string, status billing.Status, found bool) postgres.Stmt {
	const q = `SELECT keel_assume(COALESCE((SELECT COALESCE(plan_id, '') || '/' || status FROM billing_plan_of($1)), '') = $2, 'plan')`
	key := ""
	if found {
		if planID != nil {
			key = *planID
		}
		key += "/" + string(status)
	}
	return postgres.Stmt{Query: q, Args: []any{orgID, key}}
}

// OrgsWithStatus implements billing.Store.
func (Store) OrgsWithStatus(ctx context.Context, q sqlx.QueryerContext, statuses ...billing.Status) ([]uuid.UUID, error) {
	ss := make([]string, len(statuses))
	for i, s := range statuses {
		ss[i] = string(s)
	}
	var ids []uuid.UUID
	if err := sqlx.SelectContext(ctx, q, &ids, `SELECT org_id FROM billing_orgs_with_status($1)`, postgres.Array(ss)); err != nil {
		return nil, fmt.Errorf("organizations by billing status: %w", err)
	}
	return ids, nil
}

const invoiceCols = `org_id, stripe_invoice_id, stripe_subscription_id, number, status, currency, amount_due,
	amount_paid, hosted_invoice_url, invoice_pdf, period_start, period_end, stripe_created, attempt_count,
	first_failed_at, paid_at, updated_at`

// Invoice implements billing.Store.
func (Store) Invoice(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, id string) (*billing.Invoice, error) {
	var inv billing.Invoice
	err := sqlx.GetContext(ctx, tx, &inv, `SELECT `+invoiceCols+` FROM invoices WHERE org_id = $1 AND stripe_invoice_id = $2 FOR UPDATE`, orgID, id)
	if err != nil {
		return nil, fmt.Errorf("invoice %s: %w", id, notFound(err))
	}
	return &inv, nil
}

// SaveInvoice implements billing.Store.
func (Store) SaveInvoice(ctx context.Context, tx sqlx.ExtContext, inv *billing.Invoice, now time.Time) error {
	const q = `INSERT INTO invoices (org_id, stripe_invoice_id, stripe_subscription_id, number, status, currency,
		amount_due, amount_paid, hosted_invoice_url, invoice_pdf, period_start, period_end, stripe_created,
		attempt_count, first_failed_at, paid_at, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17)
		ON CONFLICT (org_id, stripe_invoice_id) DO UPDATE SET stripe_subscription_id = EXCLUDED.stripe_subscription_id,
		number = EXCLUDED.number, status = EXCLUDED.status, currency = EXCLUDED.currency,
		amount_due = EXCLUDED.amount_due, amount_paid = EXCLUDED.amount_paid,
		hosted_invoice_url = EXCLUDED.hosted_invoice_url, invoice_pdf = EXCLUDED.invoice_pdf,
		period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end,
		stripe_created = EXCLUDED.stripe_created, attempt_count = EXCLUDED.attempt_count,
		first_failed_at = EXCLUDED.first_failed_at, paid_at = EXCLUDED.paid_at, updated_at = EXCLUDED.updated_at`
	_, err := tx.ExecContext(ctx, q, inv.OrgID, inv.ID, inv.SubscriptionID, inv.Number, inv.Status, inv.Currency,
		inv.AmountDue, inv.AmountPaid, inv.HostedInvoiceURL, inv.InvoicePDF, inv.PeriodStart, inv.PeriodEnd,
		inv.Created, inv.AttemptCount, inv.FirstFailedAt, inv.PaidAt, now)
	if err != nil {
		return fmt.Errorf("save invoice %s: %w", inv.ID, err)
	}
	return nil
}

// Invoices implements billing.Store.
func (Store) Invoices(ctx context.Context, q sqlx.QueryerContext, orgID uuid.UUID, before *billing.InvoiceCursor, limit int) ([]billing.Invoice, error) {
	query := `SELECT ` + invoiceCols + ` FROM invoices WHERE org_id = $1`
	args := []any{orgID}
	if before != nil {
		query += ` AND (stripe_created, stripe_invoice_id) < ($2, $3)`
		args = append(args, before.Created, before.ID)
	}
	query += fmt.Sprintf(` ORDER BY stripe_created DESC, stripe_invoice_id DESC LIMIT %d`, limit)
	var out []billing.Invoice
	if err := sqlx.SelectContext(ctx, q, &out, query, args...); err != nil {
		return nil, fmt.Errorf("invoices: %w", err)
	}
	return out, nil
}

// InvoiceFacts implements billing.Store.
func (Store) InvoiceFacts(ctx context.Context, q sqlx.QueryerContext, orgID uuid.UUID, subID string) (*time.Time, *time.Time, error) {
	var unpaid, paid *time.Time
	err := q.QueryRowxContext(ctx, `SELECT
		min(first_failed_at) FILTER (WHERE status = 'open' AND first_failed_at IS NOT NULL),
		max(paid_at) FILTER (WHERE status = 'paid')
		FROM invoices WHERE org_id = $1 AND stripe_subscription_id = $2`, orgID, subID).Scan(&unpaid, &paid)
	if err != nil {
		return nil, nil, fmt.Errorf("invoice facts: %w", err)
	}
	return unpaid, paid, nil
}

// UnpaidInvoices implements billing.Store.
func (Store) UnpaidInvoices(ctx context.Context, q sqlx.QueryerContext, orgID uuid.UUID, subID string) ([]billing.Invoice, error) {
	var out []billing.Invoice
	err := sqlx.SelectContext(ctx, q, &out, `SELECT `+invoiceCols+` FROM invoices
		WHERE org_id = $1 AND stripe_subscription_id = $2 AND status = 'open' AND first_failed_at IS NOT NULL
		ORDER BY first_failed_at, stripe_invoice_id`, orgID, subID)
	if err != nil {
		return nil, fmt.Errorf("unpaid invoices: %w", err)
	}
	return out, nil
}

// Notice implements billing.Store.
func (Store) Notice(ctx context.Context, tx sqlx.ExtContext, orgID uuid.UUID, key string) (bool, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO billing_notices (org_id, key) VALUES ($1, $2) ON CONFLICT DO NOTHING`, orgID, key)
	if err != nil {
		return false, fmt.Errorf("notice %s: %w", key, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// Owners implements billing.Store.
func (Store) Owners(ctx context.Context, q sqlx.QueryerContext, orgID uuid.UUID) ([]billing.Recipient, error) {
	var out []billing.Recipient
	err := sqlx.SelectContext(ctx, q, &out, `SELECT u.email, u.name FROM memberships m JOIN users u ON u.id = m.user_id
		WHERE m.org_id = $1 AND m.role = 'owner' ORDER BY m.created_at, u.id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("owners of %s: %w", orgID, err)
	}
	return out, nil
}

// Members implements billing.Store.
func (Store) Members(ctx context.Context, q sqlx.QueryerContext, orgID uuid.UUID) (int, error) {
	var n int
	if err := q.QueryRowxContext(ctx, `SELECT count(*) FROM memberships WHERE org_id = $1`, orgID).Scan(&n); err != nil {
		return 0, fmt.Errorf("members of %s: %w", orgID, err)
	}
	return n, nil
}

// OrgOfCustomer implements billing.Store.
func (Store) OrgOfCustomer(ctx context.Context, q sqlx.QueryerContext, customerID string) (uuid.UUID, bool, error) {
	var id uuid.UUID
	err := q.QueryRowxContext(ctx, `SELECT org_id FROM billing_org_of_customer($1)`, customerID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return uuid.Nil, false, nil
	}
	if err != nil {
		return uuid.Nil, false, fmt.Errorf("customer %s: %w", customerID, err)
	}
	return id, true, nil
}

// LinkCustomer implements billing.Store.
func (Store) LinkCustomer(ctx context.Context, tx sqlx.ExtContext, customerID string, orgID uuid.UUID) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO billing_customers (stripe_customer_id, org_id) VALUES ($1, $2)
		ON CONFLICT (stripe_customer_id) DO NOTHING`, customerID, orgID)
	if err != nil {
		return fmt.Errorf("link customer %s: %w", customerID, err)
	}
	got, ok, err := Store{}.OrgOfCustomer(ctx, tx, customerID)
	if err != nil {
		return err
	}
	if !ok || got != orgID {
		return fmt.Errorf("link customer %s: it belongs to organization %s, not %s", customerID, got, orgID)
	}
	return nil
}

// Customers implements billing.Store.
func (Store) Customers(ctx context.Context, q sqlx.QueryerContext) ([]billing.CustomerLink, error) {
	var out []billing.CustomerLink
	if err := sqlx.SelectContext(ctx, q, &out, `SELECT stripe_customer_id, org_id FROM billing_customers_all()`); err != nil {
		return nil, fmt.Errorf("customers: %w", err)
	}
	return out, nil
}

const eventCols = `id, type, api_version, livemode, created, payload, status, note, attempts, last_error, received_at, applied_at`

// AcceptEvent implements billing.Store: one statement, sent with its
// values inlined as one simple-protocol message and committed on its own
// (a statement is atomic), so the intake costs one round trip instead of
// a transaction's seven. The outbox row is inserted only with the event,
// and NOTIFY runs only when it was.
func (Store) AcceptEvent(ctx context.Context, db sqlx.QueryerContext, e *billing.Event, row outbox.Row) (bool, error) {
	const q = `WITH e AS (
		INSERT INTO stripe_events (id, type, api_version, livemode, created, payload)
		VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT (id) DO NOTHING RETURNING id),
	o AS (INSERT INTO outbox (` + outbox.Columns + `)
		SELECT $7::uuid, $8, $9::bytea, $10::jsonb, $11, $12::int, $13::bigint, $14::timestamptz, $15::bigint FROM e RETURNING id)
	SELECT (SELECT count(*) FROM o), (SELECT count(*) FROM (SELECT pg_notify('keel_outbox', '') FROM o) AS n)`
	args := append([]any{e.ID, e.Type, e.APIVersion, e.Livemode, e.Created, string(e.Payload)}, row.Values...)
	query, err := postgres.Inline(q, args)
	if err != nil {
		return false, fmt.Errorf("accept event %s: %w", e.ID, err)
	}
	var inserted, notified int
	if err := db.QueryRowxContext(ctx, query).Scan(&inserted, &notified); err != nil {
		return false, fmt.Errorf("accept event %s: %w", e.ID, err)
	}
	return inserted == 1, nil
}

// Event implements billing.Store.
func (Store) Event(ctx context.Context, q sqlx.QueryerContext, id string, lock bool) (*billing.Event, error) {
	query := `SELECT ` + eventCols + ` FROM stripe_events WHERE id = $1`
	if lock {
		query += ` FOR UPDATE`
	}
	var e billing.Event
	if err := sqlx.GetContext(ctx, q, &e, query, id); err != nil {
		return nil, fmt.Errorf("event %s: %w", id, notFound(err))
	}
	return &e, nil
}

// FinishEvent implements billing.Store.
func (Store) FinishEvent(ctx context.Context, tx sqlx.ExtContext, id, status, note string, now time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE stripe_events SET status = $2, note = $3, applied_at = $4,
		attempts = attempts + 1, last_error = '' WHERE id = $1`, id, status, note, now)
	if err != nil {
		return fmt.Errorf("finish event %s: %w", id, err)
	}
	return nil
}

// FailEvent implements billing.Store.
func (Store) FailEvent(ctx context.Context, q sqlx.ExecerContext, id, msg string) error {
	if len(msg) > 2000 {
		msg = msg[:2000]
	}
	_, err := q.ExecContext(ctx, `UPDATE stripe_events SET attempts = attempts + 1, last_error = $2 WHERE id = $1`, id, msg)
	if err != nil {
		return fmt.Errorf("fail event %s: %w", id, err)
	}
	return nil
}

// ResetEvent implements billing.Store.
func (Store) ResetEvent(ctx context.Context, tx sqlx.ExtContext, id string) error {
	res, err := tx.ExecContext(ctx, `UPDATE stripe_events SET status = 'pending', applied_at = NULL, note = '' WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("reset event %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("event %s: %w", id, billing.ErrNotFound)
	}
	return nil
}

// StoredEventIDs implements billing.Store.
func (Store) StoredEventIDs(ctx context.Context, q sqlx.QueryerContext, ids []string) (map[string]bool, error) {
	var got []string
	if err := sqlx.SelectContext(ctx, q, &got, `SELECT id FROM stripe_events WHERE id = ANY($1)`, postgres.Array(ids)); err != nil {
		return nil, fmt.Errorf("stored events: %w", err)
	}
	out := make(map[string]bool, len(got))
	for _, id := range got {
		out[id] = true
	}
	return out, nil
}

// Account API (plans, Checkout, the Portal, plan changes).

// Payer implements billing.Store.
func (Store) Payer(ctx context.Context, q sqlx.QueryerContext, orgID, userID uuid.UUID) (*billing.Payer, error) {
	const query = `SELECT o.name AS org_name, u.email, u.email_verified_at IS NOT NULL AS email_verified
		FROM organizations o CROSS JOIN users u WHERE o.id = $1 AND u.id = $2`
	var p billing.Payer
	if err := sqlx.GetContext(ctx, q, &p, query, orgID, userID); err != nil {
		return nil, fmt.Errorf("payer of %s: %w", orgID, notFound(err))
	}
	return &p, nil
}
