package billing_test

import (
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/keelhq/keel/internal/billing"
)

// billing_mrr (migration 00710) is the MRR definition of docs/admin.md:
// only an active or past_due Stripe subscription with a known price
// contributes; seats multiply, the coupon comes off per invoice (never
// below zero), the interval spreads it over a month, halves round away
// from zero.
func TestMRRContribution(t *testing.T) {
	t.Parallel()
	e := newPeriodicEnv(t)
	for _, c := range []struct {
		name                  string
		status, sub, interval string
		unit, amountOff       *int64
		qty, count            int
		percent               *float64
		want                  int64
	}{
		{"monthly", "active", "sub", "month", p64(2900), nil, 1, 1, nil, 2900},
		{"past_due still pays", "past_due", "sub", "month", p64(2900), nil, 1, 1, nil, 2900},
		{"yearly / 12, rounded", "active", "sub", "year", p64(29000), nil, 1, 1, nil, 2417},
		{"half rounds up", "active", "sub", "year", p64(18), nil, 1, 1, nil, 2}, // 1.5
		{"seats and percent", "active", "sub", "month", p64(1000), nil, 5, 1, pf(20), 4000},
		{"fractional percent", "active", "sub", "month", p64(1000), nil, 1, 1, pf(12.5), 875},
		{"amount off", "active", "sub", "month", p64(5000), p64(1500), 1, 1, nil, 3500},
		{"amount off on a yearly invoice", "active", "sub", "year", p64(12000), p64(1200), 1, 1, nil, 900},
		{"never below zero", "active", "sub", "month", p64(1000), p64(5000), 1, 1, nil, 0},
		{"100 % off", "active", "sub", "month", p64(1000), nil, 1, 1, pf(100), 0},
		{"every 3 months", "active", "sub", "month", p64(9000), nil, 1, 3, nil, 3000},
		{"weekly", "active", "sub", "week", p64(1200), nil, 1, 1, nil, 5200},
		{"daily", "active", "sub", "day", p64(12), nil, 1, 1, nil, 365},
		{"trialing", "trialing", "sub", "month", p64(2900), nil, 1, 1, nil, 0},
		{"read_only", "read_only", "sub", "month", p64(2900), nil, 1, 1, nil, 0},
		{"canceled", "canceled", "sub", "month", p64(2900), nil, 1, 1, nil, 0},
		{"no Stripe subscription", "active", "", "month", p64(2900), nil, 1, 1, nil, 0},
		{"no price", "active", "sub", "month", nil, nil, 1, 1, nil, 0},
	} {
		var sub *string
		if c.sub != "" {
			sub = &c.sub
		}
		var got int64
		err := e.db.Owner.Get(&got, `SELECT billing_mrr($1, $2, $3, $4, $5, $6, $7, $8)`,
			c.status, sub, c.unit, c.qty, c.interval, c.count, c.percent, c.amountOff)
		if err != nil || got != c.want {
			t.Errorf("%s: %d %v, want %d", c.name, got, err, c.want)
		}
	}
}

func p64(v int64) *int64        { return &v }
func pf(v float64) *float64     { return &v }
func ps(v string) *string       { return &v }
func pi(v int) *int             { return &v }
func pt(t time.Time) *time.Time { return &t }

// The subscriptions trigger keeps mrr from what billing saves and appends
// a history row, dated by billing's clock, only when the contribution
// changes: a trial pays nothing, a price change is one row, the
// cancellation is a zero row (and the row keeps when the subscription
// ended), a new subscription's trial nothing, its payment a row.
func TestSubscriptionMRRHistory(t *testing.T) {
	t.Parallel()
	e := newPeriodicEnv(t)
	org, _ := e.org(t, "History")
	price := billing.Price{UnitAmount: p64(2900), Currency: ps("usd"), PriceInterval: ps("month"), IntervalCount: pi(1)}
	at := func(d int) time.Time { return t0.Add(time.Duration(d) * 24 * time.Hour) }
	snap := func(id, status string, created, at time.Time, p billing.Price) billing.Snapshot {
		return billing.Snapshot{ID: id, CustomerID: "cus_h", Status: status, PriceID: "price_keel_pro_monthly",
			Quantity: 1, Created: created, EventAt: at, EventID: "evt_" + at.Format(time.RFC3339), Price: p}
	}
	type row struct {
		MRR          int64      `db:"mrr"`
		EndedAt      *time.Time `db:"ended_at"`
		HistoryCount int        `db:"history"`
	}
	step := func(d int, s billing.Snapshot, want row) {
		t.Helper()
		e.clock.Set(at(d))
		e.apply(t, org, s)
		var got row
		if err := e.db.Owner.Get(&got, `SELECT mrr, ended_at,
			(SELECT count(*) FROM subscription_mrr_history h WHERE h.org_id = s.org_id) AS history
			FROM subscriptions s WHERE org_id = $1`, org); err != nil {
			t.Fatal(err)
		}
		if got.MRR != want.MRR || got.HistoryCount != want.HistoryCount || !sameTime(got.EndedAt, want.EndedAt) {
			t.Fatalf("day %d: %+v, want %+v", d, got, want)
		}
	}
	step(1, snap("sub_1", "trialing", at(1), at(1), price), row{})
	step(2, snap("sub_1", "active", at(1), at(2), price), row{MRR: 2900, HistoryCount: 1})
	step(3, snap("sub_1", "active", at(1), at(3), price), row{MRR: 2900, HistoryCount: 1})
	dearer := price
	dearer.UnitAmount = p64(9900)
	step(4, snap("sub_1", "active", at(1), at(4), dearer), row{MRR: 9900, HistoryCount: 2})
	canceled := snap("sub_1", "canceled", at(1), at(5), dearer)
	canceled.EndedAt = pt(at(5).Add(-time.Hour)) // Stripe's ended_at wins over the event's time
	step(5, canceled, row{EndedAt: pt(at(5).Add(-time.Hour)), HistoryCount: 3})
	step(6, snap("sub_2", "trialing", at(6), at(6), price), row{HistoryCount: 3})
	step(7, snap("sub_2", "active", at(6), at(7), price), row{MRR: 2900, HistoryCount: 4})

	var hist []struct {
		At  time.Time `db:"at"`
		MRR int64     `db:"mrr"`
	}
	if err := e.db.Owner.Select(&hist, `SELECT at, mrr FROM subscription_mrr_history WHERE org_id = $1 ORDER BY id`, org); err != nil {
		t.Fatal(err)
	}
	for i, w := range []struct {
		d   int
		mrr int64
	}{{2, 2900}, {4, 9900}, {5, 0}, {7, 2900}} {
		if !hist[i].At.Equal(at(w.d)) || hist[i].MRR != w.mrr {
			t.Fatalf("history %d: %+v, want day %d %d", i, hist[i], w.d, w.mrr)
		}
	}
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// Reconciliation's fetched subscription carries the same price facts (and
// end) as an event's, so it fills them for a subscription from before they were
// kept.
func TestFetchedSnapshotPrice(t *testing.T) {
	t.Parallel()
	sub := &stripe.Subscription{ID: "sub_f", Status: "canceled", Created: t0.Unix(), EndedAt: t0.Unix() + 60,
		Items: &stripe.SubscriptionItemList{Data: []*stripe.SubscriptionItem{{Quantity: 3,
			Price: &stripe.Price{ID: "price_keel_pro_yearly", UnitAmount: 29000, Currency: "eur",
				Recurring: &stripe.PriceRecurring{Interval: "year", IntervalCount: 1}}}}},
		Discount: &stripe.Discount{Coupon: &stripe.Coupon{PercentOff: 10}}}
	snap := billing.FetchedSnapshot(sub, t0.Add(time.Hour))
	if snap.EndedAt == nil || snap.EndedAt.Unix() != t0.Unix()+60 {
		t.Fatalf("ended at %v", snap.EndedAt)
	}
	p := snap.Price
	if p.UnitAmount == nil || *p.UnitAmount != 29000 || *p.Currency != "eur" || *p.PriceInterval != "year" ||
		*p.IntervalCount != 1 || p.PercentOff == nil || *p.PercentOff != 10 || p.AmountOff != nil {
		t.Fatalf("%+v", p)
	}
}
