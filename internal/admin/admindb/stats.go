package admindb

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/admin"
)

// The queries below are the definitions of docs/admin.md, "Business
// stats"; a change to one is a change to the documented figure.

// SignupsPerDay implements admin.StatsStore: users rows by the UTC day of
// created_at.
func (Store) SignupsPerDay(ctx context.Context, q sqlx.QueryerContext, from, until time.Time) (map[string]int64, error) {
	const query = `SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, count(*) AS n
		FROM users WHERE created_at >= $1 AND created_at <= $2 GROUP BY 1`
	var rows []struct {
		Day string `db:"day"`
		N   int64  `db:"n"`
	}
	if err := sqlx.SelectContext(ctx, q, &rows, query, from, until); err != nil {
		return nil, fmt.Errorf("signups per day: %w", err)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.Day] = r.N
	}
	return out, nil
}

// ActiveOrganizations implements admin.StatsStore. Every audited write of
// an organization's data (members, invitations, API keys, settings,
// resources, files, billing requests) records its user or API key as
// actor; Stripe's and the jobs' rows have none, user.* rows are the
// account's own events (logins, password changes) copied into each
// organization, and admin.* / support_access.* rows are an admin's reads.
func (Store) ActiveOrganizations(ctx context.Context, q sqlx.QueryerContext, since, until time.Time) (int64, error) {
	const query = `SELECT count(DISTINCT org_id) FROM audit_log
		WHERE created_at > $1 AND created_at <= $2 AND org_id IS NOT NULL
		AND (actor_user_id IS NOT NULL OR actor_api_key_id IS NOT NULL)
		AND split_part(action, '.', 1) NOT IN ('user', 'admin', 'support_access')`
	return count(ctx, q, "active organizations", query, since, until)
}

// TrialingOrganizations implements admin.StatsStore: Keel's signup trials
// and Stripe subscriptions in trial alike.
func (Store) TrialingOrganizations(ctx context.Context, q sqlx.QueryerContext) (int64, error) {
	const query = `SELECT count(*) FROM subscriptions WHERE status = 'trialing'`
	return count(ctx, q, "trialing organizations", query)
}

// PayingByPlan implements admin.StatsStore: mrr is kept by the
// subscriptions trigger (billing_mrr, migration 00710).
func (Store) PayingByPlan(ctx context.Context, q sqlx.QueryerContext) ([]admin.PlanCount, error) {
	const query = `SELECT coalesce(plan_id, '') AS plan, count(*) AS count FROM subscriptions
		WHERE mrr > 0 GROUP BY 1 ORDER BY 1`
	var out []admin.PlanCount
	if err := sqlx.SelectContext(ctx, q, &out, query); err != nil {
		return nil, fmt.Errorf("paying organizations: %w", err)
	}
	return out, nil
}

// MRRAt implements admin.StatsStore from subscription_mrr_history.
func (Store) MRRAt(ctx context.Context, q sqlx.QueryerContext, at time.Time) (map[string]int64, error) {
	const query = `SELECT currency, sum(mrr)::bigint AS amount FROM (
		SELECT DISTINCT ON (org_id) currency, mrr FROM subscription_mrr_history
		WHERE at <= $1 ORDER BY org_id, at DESC, id DESC) latest
		GROUP BY currency`
	var rows []struct {
		Currency string `db:"currency"`
		Amount   int64  `db:"amount"`
	}
	if err := sqlx.SelectContext(ctx, q, &rows, query, at); err != nil {
		return nil, fmt.Errorf("mrr at %s: %w", at, err)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.Currency] = r.Amount
	}
	return out, nil
}

// Churned implements admin.StatsStore: ended_at is Stripe's (billing keeps
// it), and a subscription that was paid has an invoice with money paid.
func (Store) Churned(ctx context.Context, q sqlx.QueryerContext, since, until time.Time) (int64, error) {
	const query = `SELECT count(*) FROM subscriptions s
		WHERE s.status = 'canceled' AND s.ended_at >= $1 AND s.ended_at <= $2
		AND EXISTS (SELECT 1 FROM invoices i WHERE i.org_id = s.org_id
			AND i.stripe_subscription_id = s.stripe_subscription_id AND i.amount_paid > 0)`
	return count(ctx, q, "churned organizations", query, since, until)
}

// FailedPaymentsOpen implements admin.StatsStore.
func (Store) FailedPaymentsOpen(ctx context.Context, q sqlx.QueryerContext) (int64, error) {
	const query = `SELECT count(*) FROM invoices WHERE status = 'open' AND first_failed_at IS NOT NULL`
	return count(ctx, q, "failed payments open", query)
}

func count(ctx context.Context, q sqlx.QueryerContext, what, query string, args ...any) (int64, error) {
	var n int64
	if err := q.QueryRowxContext(ctx, query, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return n, nil
}
