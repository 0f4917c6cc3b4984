package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/tenant"
)

// OrgStore reads and changes organizations for the admin organization
// routes. Every method runs on the admin role's transaction it is given.
type OrgStore interface {
	// ListOrgs returns one page of organizations matching q, newest first
	// (created_at, id), after the cursor.
	ListOrgs(ctx context.Context, tx sqlx.QueryerContext, q OrgQuery, after *tenant.Cursor, limit int) ([]OrgSummary, error)
	// GetOrg returns the organization and its subscription row (zero
	// Subscription with Status "free" when it has none);
	// postgres.ErrNotFound when there is no such organization.
	GetOrg(ctx context.Context, tx sqlx.QueryerContext, id uuid.UUID) (*OrgDetail, error)
	// OrgMembers returns up to limit members, oldest membership first.
	OrgMembers(ctx context.Context, tx sqlx.QueryerContext, id uuid.UUID, limit int) ([]OrgMember, error)
	// OrgUsage returns the organization's usage: its members, its pending
	// invitations unexpired at now (together its seats, as the seat limit
	// counts them), and its resources and storage bytes from its usage
	// counters.
	OrgUsage(ctx context.Context, tx sqlx.QueryerContext, id uuid.UUID, now time.Time) (OrgUsage, error)
	// SetSuspended suspends the organization (at set: keeps an earlier
	// suspended_at, replaces the reason) or lifts its suspension (at nil);
	// postgres.ErrNotFound when there is no such organization.
	SetSuspended(ctx context.Context, tx sqlx.ExtContext, id uuid.UUID, at *time.Time, reason string) error
}

// OrgQuery is what GET /admin/organizations filters on, as the store runs
// it: the effective plan (billing's rule: a plan while the status is one of
// OnPlanStatuses and the plan is in the catalog, else Fallback).
type OrgQuery struct {
	// Q matches the name (case-insensitive substring) or, when it is a
	// UUID, the ID exactly.
	Q string
	// Plan is an effective plan ID; "" for any.
	Plan string
	// Status is a billing status; "" for any.
	Status string
	// Suspended filters on suspension when set.
	Suspended *bool
	// Known are the catalog's plan IDs, Fallback its fallback plan and
	// OnPlanStatuses the statuses under which a subscribed plan applies.
	Known          []string
	Fallback       string
	OnPlanStatuses []string
}

// OrgFilter is an admin's organization search.
type OrgFilter struct {
	Q         string
	Plan      string
	Status    string
	Suspended *bool
}

// PlanRef names a plan.
type PlanRef struct {
	ID   string
	Name string
}

// OrgSummary is one organization of the admin list.
type OrgSummary struct {
	ID          uuid.UUID
	Name        string
	CreatedAt   time.Time
	SuspendedAt *time.Time
	// PlanID and Status are the subscription row's (PlanID nil: none);
	// Plan is the effective plan the service fills in.
	PlanID  *string
	Status  string
	Plan    PlanRef
	Members int64
}

// Subscription is an organization's subscriptions row as the admin sees
// it; the Stripe IDs are references, not secrets.
type Subscription struct {
	PlanID               *string
	Status               string
	Interval             *string
	TrialEnd             *time.Time
	CurrentPeriodEnd     *time.Time
	CancelAtPeriodEnd    bool
	PastDueSince         *time.Time
	GraceUntil           *time.Time
	StripeCustomerID     *string
	StripeSubscriptionID *string
	Quantity             *int64
}

// OrgUsage is what an organization uses of its counted plan metrics.
type OrgUsage struct {
	Members, PendingInvitations, Resources, StorageBytes int64
}

// OrgMember is a member of an organization.
type OrgMember struct {
	UserID   uuid.UUID
	Email    string
	Name     string
	Role     string
	JoinedAt time.Time
}

// OrgDetail is everything GET /admin/organizations/{id} shows.
type OrgDetail struct {
	ID              uuid.UUID
	Name            string
	CreatedAt       time.Time
	SuspendedAt     *time.Time
	SuspendedReason string
	Plan            PlanRef
	Subscription    Subscription
	// MemberCount is every member; Members at most MaxDetailMembers.
	MemberCount int64
	Members     []OrgMember
	Usage       []plan.Usage
	// RecentAudit is the organization's newest RecentAuditSize entries
	// (this view's own entry included).
	RecentAudit []AuditEntry
}

var errOrgNotFound = apperr.New(apperr.NotFound, "not_found", "No such organization.")

// Sizes of the organization view.
const (
	MaxDetailMembers = 100
	RecentAuditSize  = 20
)

// Statuses are the billing statuses an organization can be filtered on.
var Statuses = []billing.Status{billing.Trialing, billing.Active, billing.PastDue, billing.ReadOnly, billing.Canceled, billing.Free}

// ListOrgs searches organizations, newest first, and audits the search as
// a platform row (admin.organizations_listed with the filters).
func (s *Service) ListOrgs(ctx context.Context, a *Admin, f OrgFilter, pg tenant.Page, meta audit.Meta) ([]OrgSummary, string, error) {
	q, err := s.orgQuery(f)
	if err != nil {
		return nil, "", err
	}
	rows, next, err := auditedList(ctx, s, pg, func(tx *sqlx.Tx, after *tenant.Cursor, limit int) ([]OrgSummary, error) {
		rows, err := s.Store.ListOrgs(ctx, tx, q, after, limit)
		if err != nil {
			return nil, fmt.Errorf("list organizations: %w", err)
		}
		return rows, record(ctx, tx, a, meta, uuid.Nil, "admin.organizations_listed", "", "", orgFilterDetails(f, pg))
	}, func(o *OrgSummary) (time.Time, uuid.UUID) { return o.CreatedAt, o.ID })
	if err != nil {
		return nil, "", err
	}
	for i := range rows {
		rows[i].Plan = s.effectivePlan(rows[i].PlanID, rows[i].Status)
	}
	return rows, next, nil
}

// orgQuery validates f into the store's query.
func (s *Service) orgQuery(f OrgFilter) (OrgQuery, error) {
	var bad []apperr.FieldError
	if utf8.RuneCountInString(f.Q) > 200 {
		bad = append(bad, apperr.FieldError{Field: "q", Message: "must be at most 200 characters"})
	}
	if f.Plan != "" {
		if _, ok := s.Plans.Get(f.Plan); !ok {
			bad = append(bad, apperr.FieldError{Field: "plan", Message: "must be a plan of the catalog: " + strings.Join(s.planIDs(), ", ")})
		}
	}
	if f.Status != "" && !validStatus(f.Status) {
		names := make([]string, len(Statuses))
		for i, st := range Statuses {
			names[i] = string(st)
		}
		bad = append(bad, apperr.FieldError{Field: "status", Message: "must be one of " + strings.Join(names, ", ")})
	}
	if len(bad) > 0 {
		return OrgQuery{}, apperr.Validation(bad...)
	}
	var on []string
	for _, st := range Statuses {
		if st.OnPlan() {
			on = append(on, string(st))
		}
	}
	return OrgQuery{Q: strings.TrimSpace(f.Q), Plan: f.Plan, Status: f.Status, Suspended: f.Suspended,
		Known: s.planIDs(), Fallback: s.Plans.Fallback, OnPlanStatuses: on}, nil
}

func validStatus(v string) bool {
	for _, st := range Statuses {
		if string(st) == v {
			return true
		}
	}
	return false
}

func (s *Service) planIDs() []string {
	ids := make([]string, len(s.Plans.Plans))
	for i, p := range s.Plans.Plans {
		ids[i] = p.ID
	}
	return ids
}

// effectivePlan is the plan an organization is on, by billing's own rule
// (billing.Account.Plan), so the admin sees the limits that apply.
func (s *Service) effectivePlan(planID *string, status string) PlanRef {
	acc := billing.Account{PlanID: planID, Status: billing.Status(status)}
	p := acc.Plan(s.Plans)
	return PlanRef{ID: p.ID, Name: p.Name}
}

func orgFilterDetails(f OrgFilter, pg tenant.Page) map[string]any {
	d := map[string]any{"q": f.Q, "plan": f.Plan, "status": f.Status, "limit": pg.Limit}
	if f.Suspended != nil {
		d["suspended"] = *f.Suspended
	}
	if pg.Cursor != "" {
		d["cursor"] = pg.Cursor
	}
	return d
}

// Org returns an organization's full view and audits the read in that
// organization's log (admin.organization_viewed): its members see that a
// platform admin looked.
func (s *Service) Org(ctx context.Context, a *Admin, id uuid.UUID, meta audit.Meta) (*OrgDetail, error) {
	var d *OrgDetail
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := s.orgExists(ctx, tx, id); err != nil {
			return err
		}
		if err := record(ctx, tx, a, meta, id, "admin.organization_viewed", "organization", id.String(), nil); err != nil {
			return err
		}
		var err error
		d, err = s.orgDetail(ctx, tx, id)
		return err
	})
	return d, err
}

// SuspendOrg suspends an organization: from the next request on, its
// members and API keys get 403 organization_suspended on every tenant
// route (tenant.InOrg reads suspended_at in each transaction). Suspending
// a suspended organization keeps its suspension time and replaces the
// reason. The action is audited in the organization's log with the reason.
func (s *Service) SuspendOrg(ctx context.Context, a *Admin, id uuid.UUID, reason string, meta audit.Meta) (*OrgDetail, error) {
	reason, err := checkReason(reason, true)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	return s.changeSuspension(ctx, a, id, &now, reason, "admin.organization_suspended", meta)
}

// UnsuspendOrg lifts an organization's suspension (a no-op, still audited,
// when it is not suspended). reason is optional; the lifted suspension's
// reason is kept in the audit entry.
func (s *Service) UnsuspendOrg(ctx context.Context, a *Admin, id uuid.UUID, reason string, meta audit.Meta) (*OrgDetail, error) {
	reason, err := checkReason(reason, false)
	if err != nil {
		return nil, err
	}
	return s.changeSuspension(ctx, a, id, nil, reason, "admin.organization_unsuspended", meta)
}

func (s *Service) changeSuspension(ctx context.Context, a *Admin, id uuid.UUID, at *time.Time, reason, action string, meta audit.Meta) (*OrgDetail, error) {
	var d *OrgDetail
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		before, err := s.Store.GetOrg(ctx, tx, id)
		if err != nil {
			return notFound(err, "get organization")
		}
		kept := reason
		if at == nil {
			kept = "" // the reason of a lifted suspension lives on in the audit log
		}
		if err := s.Store.SetSuspended(ctx, tx, id, at, kept); err != nil {
			return notFound(err, "suspend organization")
		}
		details := map[string]any{"reason": reason, "was_suspended": before.SuspendedAt != nil}
		if at == nil && before.SuspendedAt != nil {
			details["lifted_reason"] = before.SuspendedReason
		}
		if err := record(ctx, tx, a, meta, id, action, "organization", id.String(), details); err != nil {
			return err
		}
		d, err = s.orgDetail(ctx, tx, id)
		return err
	})
	return d, err
}

// orgExists answers 404 for an unknown organization before anything is
// written (an audit row needs the organization to exist).
func (s *Service) orgExists(ctx context.Context, tx sqlx.QueryerContext, id uuid.UUID) error {
	_, err := s.Store.GetOrg(ctx, tx, id)
	return notFound(err, "get organization")
}

// orgDetail assembles the organization's view inside tx.
func (s *Service) orgDetail(ctx context.Context, tx sqlx.QueryerContext, id uuid.UUID) (*OrgDetail, error) {
	d, err := s.Store.GetOrg(ctx, tx, id)
	if err != nil {
		return nil, notFound(err, "get organization")
	}
	d.Plan = s.effectivePlan(d.Subscription.PlanID, d.Subscription.Status)
	if d.Members, err = s.Store.OrgMembers(ctx, tx, id, MaxDetailMembers); err != nil {
		return nil, fmt.Errorf("organization members: %w", err)
	}
	used, err := s.Store.OrgUsage(ctx, tx, id, s.now())
	if err != nil {
		return nil, fmt.Errorf("organization usage: %w", err)
	}
	d.MemberCount = used.Members
	p, _ := s.Plans.Get(d.Plan.ID)
	d.Usage = []plan.Usage{
		{Metric: plan.Seats, Used: used.Members + used.PendingInvitations, Limit: p.Limits.Seats},
		{Metric: plan.Resources, Used: used.Resources, Limit: p.Limits.Resources},
		{Metric: plan.StorageBytes, Used: used.StorageBytes, Limit: p.Limits.StorageBytes},
	}
	f := AuditFilter{OrgID: &id}
	if d.RecentAudit, err = s.Store.ListAudit(ctx, tx, f, nil, RecentAuditSize); err != nil {
		return nil, fmt.Errorf("organization audit: %w", err)
	}
	return d, nil
}

// notFound turns the store's ErrNotFound into the 404 of an unknown ID.
func notFound(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, postgres.ErrNotFound):
		return errOrgNotFound
	}
	return fmt.Errorf("%s: %w", what, err)
}
