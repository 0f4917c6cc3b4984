package admin

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/audit"
)

// StatsDays is the window of the stats: signups are counted for this many
// UTC days (today included), active organizations and the MRR change over
// this many 24-hour days before the stats' instant.
const StatsDays = 30

// StatsStore computes the business stats from local data (never Stripe).
// Every figure is defined in docs/admin.md, "Business stats"; the SQL in
// admindb/stats.go is that definition.
type StatsStore interface {
	// SignupsPerDay counts users created in [from, until], by UTC day; days
	// without a signup are absent.
	SignupsPerDay(ctx context.Context, q sqlx.QueryerContext, from, until time.Time) (map[string]int64, error)
	// ActiveOrganizations counts organizations with a write in (since,
	// until]: an audit row with a user or API key as actor whose action is
	// not an account event (user.*) or an admin's own (admin.*,
	// support_access.*).
	ActiveOrganizations(ctx context.Context, q sqlx.QueryerContext, since, until time.Time) (int64, error)
	// TrialingOrganizations counts subscriptions whose status is trialing.
	TrialingOrganizations(ctx context.Context, q sqlx.QueryerContext) (int64, error)
	// PayingByPlan counts organizations whose MRR contribution is positive,
	// by plan ID ("" for a plan the catalog did not know).
	PayingByPlan(ctx context.Context, q sqlx.QueryerContext) ([]PlanCount, error)
	// MRRAt sums, per currency, each organization's latest MRR history
	// entry at or before at.
	MRRAt(ctx context.Context, q sqlx.QueryerContext, at time.Time) (map[string]int64, error)
	// Churned counts organizations still canceled whose subscription ended
	// in [since, until] and had an invoice paid (money, not a $0 trial).
	Churned(ctx context.Context, q sqlx.QueryerContext, since, until time.Time) (int64, error)
	// FailedPaymentsOpen counts invoices that failed at least once and are
	// still open.
	FailedPaymentsOpen(ctx context.Context, q sqlx.QueryerContext) (int64, error)
}

// Stats is GET /admin/stats: the business as of AsOf.
type Stats struct {
	AsOf                  time.Time  `json:"as_of"`
	SignupsPerDay         []DayCount `json:"signups_per_day"`
	ActiveOrganizations   int64      `json:"active_organizations"`
	TrialingOrganizations int64      `json:"trialing_organizations"`
	PayingOrganizations   Paying     `json:"paying_organizations"`
	MRR                   []MRR      `json:"mrr"`
	ChurnedThisMonth      int64      `json:"churned_this_month"`
	FailedPaymentsOpen    int64      `json:"failed_payments_open"`
}

// DayCount is one UTC day's count (date as YYYY-MM-DD).
type DayCount struct {
	Date  string `json:"date"`
	Count int64  `json:"count"`
}

// Paying is the paying organizations, in total and by plan.
type Paying struct {
	Total  int64       `json:"total"`
	ByPlan []PlanCount `json:"by_plan"`
}

// PlanCount is how many organizations one plan has.
type PlanCount struct {
	Plan  string `json:"plan" db:"plan"`
	Count int64  `json:"count" db:"count"`
}

// MRR is one currency's monthly recurring revenue, in its smallest unit:
// now, StatsDays days before, and the change (Amount − Amount30DaysAgo).
type MRR struct {
	Currency        string `json:"currency"`
	Amount          int64  `json:"amount"`
	Amount30DaysAgo int64  `json:"amount_30_days_ago"`
	Change          int64  `json:"change"`
}

// Stats computes the business stats as of s.Now() in one transaction on
// the admin role and records the reading as a platform audit row
// (admin.stats_viewed).
func (s *Service) Stats(ctx context.Context, a *Admin, meta audit.Meta) (*Stats, error) {
	asOf := s.now().UTC().Truncate(time.Microsecond)
	var out *Stats
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		if out, err = s.computeStats(ctx, tx, asOf); err != nil {
			return err
		}
		return record(ctx, tx, a, meta, uuid.Nil, "admin.stats_viewed", "stats", "",
			map[string]any{"as_of": asOf})
	})
	if err != nil {
		return nil, fmt.Errorf("admin stats: %w", err)
	}
	return out, nil
}

// computeStats reads every figure as of asOf from tx's snapshot.
func (s *Service) computeStats(ctx context.Context, tx *sqlx.Tx, asOf time.Time) (*Stats, error) {
	// One snapshot for every figure, so they agree with one another.
	if _, err := tx.ExecContext(ctx, `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`); err != nil {
		return nil, err
	}
	st := s.Store
	out := &Stats{AsOf: asOf}
	today := dayStart(asOf)
	from := today.AddDate(0, 0, -(StatsDays - 1))
	signups, err := st.SignupsPerDay(ctx, tx, from, asOf)
	if err != nil {
		return nil, err
	}
	out.SignupsPerDay = everyDay(from, today, signups)
	monthAgo := asOf.Add(-StatsDays * 24 * time.Hour)
	if out.ActiveOrganizations, err = st.ActiveOrganizations(ctx, tx, monthAgo, asOf); err != nil {
		return nil, err
	}
	if out.TrialingOrganizations, err = st.TrialingOrganizations(ctx, tx); err != nil {
		return nil, err
	}
	if out.PayingOrganizations, err = paying(ctx, st, tx); err != nil {
		return nil, err
	}
	now, err := st.MRRAt(ctx, tx, asOf)
	if err != nil {
		return nil, err
	}
	before, err := st.MRRAt(ctx, tx, monthAgo)
	if err != nil {
		return nil, err
	}
	out.MRR = mrrChange(now, before)
	monthStart := time.Date(asOf.Year(), asOf.Month(), 1, 0, 0, 0, 0, time.UTC)
	if out.ChurnedThisMonth, err = st.Churned(ctx, tx, monthStart, asOf); err != nil {
		return nil, err
	}
	if out.FailedPaymentsOpen, err = st.FailedPaymentsOpen(ctx, tx); err != nil {
		return nil, err
	}
	return out, nil
}

func paying(ctx context.Context, st Store, tx *sqlx.Tx) (Paying, error) {
	by, err := st.PayingByPlan(ctx, tx)
	if err != nil {
		return Paying{}, err
	}
	p := Paying{ByPlan: by}
	if p.ByPlan == nil {
		p.ByPlan = []PlanCount{}
	}
	for _, c := range by {
		p.Total += c.Count
	}
	return p, nil
}

// dayStart is the start of t's UTC day.
func dayStart(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// everyDay lists each UTC day from first to last (both day starts), oldest
// first, with its count in counts (keyed YYYY-MM-DD) or zero.
func everyDay(first, last time.Time, counts map[string]int64) []DayCount {
	var out []DayCount
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		key := d.Format(time.DateOnly)
		out = append(out, DayCount{Date: key, Count: counts[key]})
	}
	return out
}

// mrrChange pairs each currency's MRR now and before, sorted by currency;
// a currency with nothing at either instant is left out.
func mrrChange(now, before map[string]int64) []MRR {
	seen := map[string]bool{}
	out := []MRR{}
	for _, m := range []map[string]int64{now, before} {
		for cur := range m {
			if seen[cur] || (now[cur] == 0 && before[cur] == 0) {
				continue
			}
			seen[cur] = true
			out = append(out, MRR{Currency: cur, Amount: now[cur], Amount30DaysAgo: before[cur], Change: now[cur] - before[cur]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Currency < out[j].Currency })
	return out
}
