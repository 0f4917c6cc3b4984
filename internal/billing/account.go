package billing

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/tenant"
)

// PlanOffer is a plan as clients see it: what it allows and at which
// intervals it can be bought. Price IDs stay out: a client subscribes by
// plan and interval, and the price IDs are this server's Stripe settings.
type PlanOffer struct {
	ID        string      `json:"id"`
	Name      string      `json:"name"`
	TrialDays int         `json:"trial_days"`
	PerSeat   bool        `json:"per_seat"`
	Limits    plan.Limits `json:"limits"`
	// Intervals are "month" and/or "year"; empty for a free plan.
	Intervals []string `json:"intervals"`
	Default   bool     `json:"default"`
	Fallback  bool     `json:"fallback"`
}

// Offers lists the catalog's plans in plans.yaml order (the order upgrades
// are measured in).
func (s *Service) Offers() []PlanOffer {
	out := make([]PlanOffer, 0, len(s.Plans.Plans))
	for _, p := range s.Plans.Plans {
		o := PlanOffer{ID: p.ID, Name: p.Name, TrialDays: p.TrialDays, PerSeat: p.PerSeat, Limits: p.Limits,
			Intervals: []string{}, Default: p.ID == s.Plans.Default, Fallback: p.ID == s.Plans.Fallback}
		for _, iv := range intervals {
			if _, ok := p.PriceFor(iv); ok {
				o.Intervals = append(o.Intervals, iv)
			}
		}
		out = append(out, o)
	}
	return out
}

var intervals = []string{"month", "year"}

// Overview is an organization's billing state, for any member.
type Overview struct {
	Plan              plan.Plan
	Status            Status
	Interval          *string
	TrialEnd          *time.Time
	CurrentPeriodEnd  *time.Time
	CancelAtPeriodEnd bool
	// GraceUntil is when a past_due organization becomes read-only.
	GraceUntil *time.Time
	// Usage is each metric against the plan's limit (nil without Limits).
	Usage []plan.Usage
	// Invoices are the newest few.
	Invoices []Invoice
}

// overviewInvoices is how many invoices Overview carries.
const overviewInvoices = 5

// Overview returns the caller's organization's billing state; any member
// may read it. An organization without a subscriptions row is free on the
// fallback plan. apiUsed, when the caller knows it, is the organization's
// spend of its per-minute API budget.
func (s *Service) Overview(ctx context.Context, p *tenant.Principal, apiUsed *int64) (*Overview, error) {
	var out *Overview
	err := tenant.InOrg(ctx, s.DB, p, tenant.RoleMember, func(tx *sqlx.Tx, _ string) error {
		a, err := s.account(ctx, tx, p)
		if err != nil {
			return err
		}
		out = &Overview{Plan: a.Plan(s.Plans), Status: a.Status, Interval: a.Interval, TrialEnd: a.TrialEnd,
			CurrentPeriodEnd: a.CurrentPeriodEnd, CancelAtPeriodEnd: a.CancelAtPeriodEnd, GraceUntil: a.GraceUntil}
		if out.Usage, err = s.usage(ctx, tx, p, apiUsed); err != nil {
			return err
		}
		out.Invoices, err = s.Store.Invoices(ctx, tx, p.OrgID, nil, overviewInvoices)
		return err
	})
	return out, err
}

// account reads the caller's organization's row; one without a row is
// free on the fallback plan.
func (s *Service) account(ctx context.Context, tx *sqlx.Tx, p *tenant.Principal) (*Account, error) {
	a, err := s.Store.Account(ctx, tx, p.OrgID, false)
	if errors.Is(err, ErrNotFound) {
		return &Account{OrgID: p.OrgID, Status: Free}, nil
	}
	return a, err
}

// usage counts as org.Service.Usage does: seats live, the rest from the
// limiter's counters, in the same transaction as the plan it reads.
func (s *Service) usage(ctx context.Context, tx *sqlx.Tx, p *tenant.Principal, apiUsed *int64) ([]plan.Usage, error) {
	if s.Limits == nil {
		return nil, nil
	}
	counts := map[plan.Metric]int64{}
	if s.Seats != nil {
		members, pending, err := s.Seats.CountSeats(ctx, tx, p.OrgID, s.now())
		if err != nil {
			return nil, err
		}
		counts[plan.Seats] = members + pending
	}
	if apiUsed != nil {
		counts[plan.APIRequestsPerMinute] = *apiUsed
	}
	_, us, err := s.Limits.Usage(ctx, tx, p.OrgID, counts)
	return us, err
}

// Invoices returns a page of the organization's invoices, newest first;
// any member may read them.
func (s *Service) Invoices(ctx context.Context, p *tenant.Principal, pg tenant.Page) ([]Invoice, string, error) {
	after, err := parseInvoiceCursor(pg.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := pg.Limit
	if limit <= 0 || limit > 100 {
		limit = 20
	}
	var rows []Invoice
	err = tenant.InOrg(ctx, s.DB, p, tenant.RoleMember, func(tx *sqlx.Tx, _ string) error {
		rows, err = s.Store.Invoices(ctx, tx, p.OrgID, after, limit+1)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		last := rows[limit-1]
		next = encodeInvoiceCursor(InvoiceCursor{Created: last.Created, ID: last.ID})
	}
	return rows, next, nil
}

var errBadCursor = apperr.Validation(apperr.FieldError{Field: "cursor", Message: "is not a cursor this API returned"})

// Invoice IDs are Stripe's strings, not UUIDs, so the list has its own
// cursor: the last row's Stripe creation time and ID.
func encodeInvoiceCursor(c InvoiceCursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(c.Created.UTC().Format(time.RFC3339Nano) + "|" + c.ID))
}

func parseInvoiceCursor(c string) (*InvoiceCursor, error) {
	if c == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, errBadCursor
	}
	at, id, ok := strings.Cut(string(b), "|")
	t, err := time.Parse(time.RFC3339Nano, at)
	// A NUL could never come from a row and would fail the query as a 500.
	if !ok || err != nil || id == "" || strings.IndexByte(id, 0) >= 0 {
		return nil, errBadCursor
	}
	return &InvoiceCursor{Created: t, ID: id}, nil
}
