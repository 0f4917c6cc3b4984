package admindb

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/admin"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/tenant"
)

// likeEscaper makes a search text match literally inside LIKE.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// effectivePlan is billing.Account.Plan in SQL, with its parameters
// named: the subscribed plan while the status is one that keeps it (on)
// and the catalog still has it (known), else the fallback plan. An
// organization without a subscriptions row is on the fallback plan with
// status free.
func effectivePlan(on, known, fallback string) string {
	return `CASE WHEN s.status = ANY(` + on + `) AND s.plan_id = ANY(` + known + `) THEN s.plan_id ELSE ` + fallback + ` END`
}

type orgSummaryRow struct {
	ID          uuid.UUID  `db:"id"`
	Name        string     `db:"name"`
	CreatedAt   time.Time  `db:"created_at"`
	SuspendedAt *time.Time `db:"suspended_at"`
	PlanID      *string    `db:"plan_id"`
	Status      string     `db:"status"`
	Members     int64      `db:"members"`
}

// ListOrgs implements admin.OrgStore. The filters are ANDed; the page is a
// range of organizations_created_idx.
func (Store) ListOrgs(ctx context.Context, tx sqlx.QueryerContext, q admin.OrgQuery, after *tenant.Cursor, limit int) ([]admin.OrgSummary, error) {
	base := `SELECT o.id, o.name, o.created_at, o.suspended_at, s.plan_id, COALESCE(s.status, 'free') AS status,
		(SELECT count(*) FROM memberships m WHERE m.org_id = o.id) AS members
		FROM organizations o LEFT JOIN subscriptions s ON s.org_id = o.id
		WHERE true`
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.Q != "" {
		cond := `lower(o.name) LIKE lower(` + arg("%"+likeEscaper.Replace(q.Q)+"%") + `)`
		if id, err := uuid.Parse(q.Q); err == nil {
			cond += ` OR o.id = ` + arg(id)
		}
		base += ` AND (` + cond + `)`
	}
	if q.Plan != "" {
		expr := effectivePlan(arg(postgres.Array(q.OnPlanStatuses)), arg(postgres.Array(q.Known)), arg(q.Fallback)+"::text")
		base += ` AND ` + expr + ` = ` + arg(q.Plan)
	}
	if q.Status != "" {
		base += ` AND COALESCE(s.status, 'free') = ` + arg(q.Status)
	}
	if q.Suspended != nil {
		base += ` AND (o.suspended_at IS NOT NULL) = ` + arg(*q.Suspended)
	}
	query, all := tenant.KeysetBy(base, args, "o.created_at", "o.id", true, after, limit)
	var rows []orgSummaryRow
	if err := sqlx.SelectContext(ctx, tx, &rows, query, all...); err != nil {
		return nil, fmt.Errorf("list organizations: %w", err)
	}
	out := make([]admin.OrgSummary, len(rows))
	for i, r := range rows {
		out[i] = admin.OrgSummary{ID: r.ID, Name: r.Name, CreatedAt: r.CreatedAt, SuspendedAt: r.SuspendedAt,
			PlanID: r.PlanID, Status: r.Status, Members: r.Members}
	}
	return out, nil
}

type orgRow struct {
	ID                   uuid.UUID  `db:"id"`
	Name                 string     `db:"name"`
	CreatedAt            time.Time  `db:"created_at"`
	SuspendedAt          *time.Time `db:"suspended_at"`
	SuspendedReason      string     `db:"suspended_reason"`
	PlanID               *string    `db:"plan_id"`
	Status               string     `db:"status"`
	Interval             *string    `db:"billing_interval"`
	TrialEnd             *time.Time `db:"trial_end"`
	CurrentPeriodEnd     *time.Time `db:"current_period_end"`
	CancelAtPeriodEnd    bool       `db:"cancel_at_period_end"`
	PastDueSince         *time.Time `db:"past_due_since"`
	GraceUntil           *time.Time `db:"grace_until"`
	StripeCustomerID     *string    `db:"stripe_customer_id"`
	StripeSubscriptionID *string    `db:"stripe_subscription_id"`
	Quantity             *int64     `db:"quantity"`
}

// GetOrg implements admin.OrgStore.
func (Store) GetOrg(ctx context.Context, tx sqlx.QueryerContext, id uuid.UUID) (*admin.OrgDetail, error) {
	const q = `SELECT o.id, o.name, o.created_at, o.suspended_at, o.suspended_reason,
		s.plan_id, COALESCE(s.status, 'free') AS status, s.billing_interval, s.trial_end, s.current_period_end,
		COALESCE(s.cancel_at_period_end, false) AS cancel_at_period_end, s.past_due_since, s.grace_until,
		s.stripe_customer_id, s.stripe_subscription_id, s.quantity
		FROM organizations o LEFT JOIN subscriptions s ON s.org_id = o.id WHERE o.id = $1`
	var r orgRow
	if err := sqlx.GetContext(ctx, tx, &r, q, id); err != nil {
		return nil, postgres.Translate(err)
	}
	return &admin.OrgDetail{ID: r.ID, Name: r.Name, CreatedAt: r.CreatedAt, SuspendedAt: r.SuspendedAt, SuspendedReason: r.SuspendedReason,
		Subscription: admin.Subscription{PlanID: r.PlanID, Status: r.Status, Interval: r.Interval, TrialEnd: r.TrialEnd,
			CurrentPeriodEnd: r.CurrentPeriodEnd, CancelAtPeriodEnd: r.CancelAtPeriodEnd, PastDueSince: r.PastDueSince,
			GraceUntil: r.GraceUntil, StripeCustomerID: r.StripeCustomerID, StripeSubscriptionID: r.StripeSubscriptionID, Quantity: r.Quantity}}, nil
}

type memberRow struct {
	UserID   uuid.UUID `db:"user_id"`
	Email    string    `db:"email"`
	Name     string    `db:"name"`
	Role     string    `db:"role"`
	JoinedAt time.Time `db:"created_at"`
}

// OrgMembers implements admin.OrgStore.
func (Store) OrgMembers(ctx context.Context, tx sqlx.QueryerContext, id uuid.UUID, limit int) ([]admin.OrgMember, error) {
	const q = `SELECT m.user_id, u.email, u.name, m.role, m.created_at
		FROM memberships m JOIN users u ON u.id = m.user_id
		WHERE m.org_id = $1 ORDER BY m.created_at, m.user_id LIMIT $2`
	var rows []memberRow
	if err := sqlx.SelectContext(ctx, tx, &rows, q, id, limit); err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	out := make([]admin.OrgMember, len(rows))
	for i, r := range rows {
		out[i] = admin.OrgMember(r)
	}
	return out, nil
}

// OrgUsage implements admin.OrgStore: the counts org.Usage and the limits
// engine use (memberships and live invitations for seats, usage_counters
// with their pending usage_deltas for the rest).
func (Store) OrgUsage(ctx context.Context, tx sqlx.QueryerContext, id uuid.UUID, now time.Time) (admin.OrgUsage, error) {
	const q = `SELECT (SELECT count(*) FROM memberships WHERE org_id = $1),
		(SELECT count(*) FROM invitations WHERE org_id = $1 AND accepted_at IS NULL AND expires_at > $2),
		GREATEST(COALESCE((SELECT value FROM usage_counters WHERE org_id = $1 AND metric = 'resources'), 0)
			+ COALESCE((SELECT sum(delta) FROM usage_deltas WHERE org_id = $1 AND metric = 'resources'), 0), 0)::bigint,
		GREATEST(COALESCE((SELECT value FROM usage_counters WHERE org_id = $1 AND metric = 'storage_bytes'), 0)
			+ COALESCE((SELECT sum(delta) FROM usage_deltas WHERE org_id = $1 AND metric = 'storage_bytes'), 0), 0)::bigint`
	var u admin.OrgUsage
	if err := tx.QueryRowxContext(ctx, q, id, now).Scan(&u.Members, &u.PendingInvitations, &u.Resources, &u.StorageBytes); err != nil {
		return admin.OrgUsage{}, fmt.Errorf("organization usage: %w", err)
	}
	return u, nil
}

// SetSuspended implements admin.OrgStore; it changes only the columns the
// admin role may update (migrate.AdminRoleUpdates).
func (Store) SetSuspended(ctx context.Context, tx sqlx.ExtContext, id uuid.UUID, at *time.Time, reason string) error {
	const q = `UPDATE organizations SET suspended_at = CASE WHEN $2::timestamptz IS NULL THEN NULL ELSE COALESCE(suspended_at, $2) END,
		suspended_reason = $3, updated_at = now() WHERE id = $1`
	res, err := tx.ExecContext(ctx, q, id, at, reason)
	if err != nil {
		return fmt.Errorf("set suspension: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return postgres.ErrNotFound
	}
	return nil
}
