package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/admin"
	"github.com/keelhq/keel/internal/admin/admindb"
	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/billing/billingdb"
	"github.com/keelhq/keel/internal/billing/stripeevent"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/platform/clock/clocktest"
	"github.com/keelhq/keel/internal/platform/postgrestest"
)

// The stats' instant and the instants its figures turn on.
var (
	asOf       = time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)
	monthAgo   = asOf.Add(-30 * 24 * time.Hour) // 2026-10-16 12:00
	firstDay   = time.Date(2026, 10, 17, 0, 0, 0, 0, time.UTC)
	longBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
)

func day(m time.Month, d int) time.Time { return time.Date(2026, m, d, 9, 0, 0, 0, time.UTC) }

// statsEnv is a fresh database, billing on a fake clock (the MRR facts are
// written by billing applying Stripe events) and the admin service on the
// admin role with its clock fixed at asOf.
type statsEnv struct {
	t     *testing.T
	db    *postgrestest.DB
	bill  *billing.Service
	clock *clocktest.Fake
}

func newStatsEnv(t *testing.T) *statsEnv {
	plans, err := plan.Load("")
	if err != nil {
		t.Fatal(err)
	}
	db := postgrestest.New(t)
	clk := clocktest.New(longBefore)
	return &statsEnv{t: t, db: db, clock: clk,
		bill: &billing.Service{DB: db.App, Store: billingdb.Store{}, Plans: plans, Now: clk.Now, Log: zerolog.Nop()}}
}

func (e *statsEnv) exec(q string, args ...any) {
	e.t.Helper()
	if _, err := e.db.Owner.Exec(q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
}

// org creates an organization (no subscriptions row: billing's first
// event creates it, as for an organization from before billing).
func (e *statsEnv) org(name string) uuid.UUID {
	id := uuid.New()
	e.exec(`INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)`, id, name, longBefore)
	return id
}

func (e *statsEnv) user(email string, created time.Time) uuid.UUID {
	id := uuid.New()
	e.exec(`INSERT INTO users (id, email, name, password_hash, created_at) VALUES ($1, $2, 'U', 'x', $3)`, id, email, created)
	return id
}

// event has billing accept and apply a Stripe event built from f at f.Created
// (billing's clock too, so the MRR history is dated then).
func (e *statsEnv) event(typ string, org uuid.UUID, f stripeevent.Facts) {
	e.t.Helper()
	ctx := context.Background()
	e.clock.Set(f.Created)
	f.OrgID = org.String()
	if f.SubscriptionCreated.IsZero() {
		f.SubscriptionCreated = f.Created
	}
	raw := stripeevent.MustBuild(typ, f)
	var head struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.bill.Accept(ctx, raw); err != nil {
		e.t.Fatal(err)
	}
	if err := e.bill.ApplyEvent(ctx, head.ID); err != nil {
		e.t.Fatal(err)
	}
	var status string
	if err := e.db.Owner.Get(&status, `SELECT status FROM stripe_events WHERE id = $1`, head.ID); err != nil || status != billing.EventApplied {
		e.t.Fatalf("event %s %s: %q %v", typ, head.ID, status, err)
	}
}

// subscribe starts org's subscription on price at start (active).
func (e *statsEnv) subscribe(org uuid.UUID, start time.Time, f stripeevent.Facts) stripeevent.Facts {
	f.Created, f.SubscriptionCreated = start, start
	e.event(billing.EventSubscriptionCreated, org, f)
	return f
}

func (e *statsEnv) auditRow(org uuid.UUID, action string, byUser, byKey bool, at time.Time) {
	var u, k *uuid.UUID
	if byUser {
		id := uuid.New()
		u = &id
	}
	if byKey {
		id := uuid.New()
		k = &id
	}
	e.exec(`INSERT INTO audit_log (id, org_id, actor_user_id, actor_api_key_id, action, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, uuid.New(), org, u, k, action, at)
}

// The seeded data set below covers every edge of the definitions in
// docs/admin.md, "Business stats"; the stats must match it exactly.
func TestStatsMatchSeededData(t *testing.T) {
	t.Parallel()
	e := newStatsEnv(t)
	ctx := context.Background()

	// Signups: the window's first and last UTC day boundaries.
	e.user("before-window@example.com", firstDay.Add(-time.Second)) // 10-16 23:59:59: out
	e.user("first-day@example.com", firstDay)                       // 10-17 00:00: in
	e.user("nov1-a@example.com", time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC))
	e.user("nov1-b@example.com", time.Date(2026, 11, 1, 23, 59, 59, 0, time.UTC))
	e.user("yesterday@example.com", time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC).Add(-time.Microsecond))
	e.user("today@example.com", time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC))
	e.user("after-as-of@example.com", asOf.Add(time.Second)) // after as_of: out
	adminID := e.user("admin@example.com", longBefore)

	usd := func(f stripeevent.Facts) stripeevent.Facts { f.Currency = "usd"; return f }
	proMonthly := usd(stripeevent.Facts{PriceID: "price_keel_pro_monthly", Amount: 2900})

	// A: pro monthly since before the window; an invoice failed then paid
	// (not open).
	a := e.org("A")
	e.subscribe(a, day(9, 1), proMonthly)
	e.event(billing.EventInvoicePaymentFailed, a, usd(stripeevent.Facts{Created: day(10, 5), InvoiceID: "in_a1", Amount: 2900}))
	e.event(billing.EventInvoicePaid, a, usd(stripeevent.Facts{Created: day(10, 6), InvoiceID: "in_a1", Amount: 2900}))
	// B: pro yearly 290.00: 29000 / 12 = 2416.67, rounded to 2417.
	b := e.org("B")
	e.subscribe(b, day(10, 1), usd(stripeevent.Facts{PriceID: "price_keel_pro_yearly", Amount: 29000}))
	// C: business monthly, 5 seats at 10.00, 20 % off: 4000; paying since
	// inside the window (0 thirty days ago).
	c := e.org("C")
	e.subscribe(c, day(11, 10), usd(stripeevent.Facts{PriceID: "price_keel_business_monthly", Amount: 1000, Quantity: 5, PercentOff: 20}))
	// D: business monthly in euros, 50.00 less a 15.00 coupon: 3500 EUR.
	d := e.org("D")
	e.subscribe(d, day(9, 15), stripeevent.Facts{PriceID: "price_keel_business_monthly", Amount: 5000, Currency: "eur", AmountOff: 1500})
	// E: pro monthly, moved to business at 99.00 inside the window.
	eo := e.org("E")
	ef := e.subscribe(eo, day(9, 1), proMonthly)
	ef.Created, ef.PriceID, ef.Amount = day(11, 5), "price_keel_business_monthly", 9900
	e.event(billing.EventSubscriptionUpdated, eo, ef)
	// F: pro monthly, paid, canceled this month: churned.
	f := e.org("F")
	ff := e.subscribe(f, day(9, 1), proMonthly)
	e.event(billing.EventInvoicePaid, f, usd(stripeevent.Facts{Created: day(10, 1), InvoiceID: "in_f1", Amount: 2900}))
	ff.Created, ff.Status = day(11, 3), "canceled"
	e.event(billing.EventSubscriptionDeleted, f, ff)
	// G: pro monthly since August, canceled last month: not churned this
	// month, but in the MRR of thirty days ago.
	g := e.org("G")
	gf := e.subscribe(g, day(8, 1), proMonthly)
	e.event(billing.EventInvoicePaid, g, usd(stripeevent.Facts{Created: day(9, 1), InvoiceID: "in_g1", Amount: 2900}))
	gf.Created, gf.Status = day(10, 20), "canceled"
	e.event(billing.EventSubscriptionDeleted, g, gf)
	// H: a Stripe trial (trialing, no MRR).
	h := e.org("H")
	e.subscribe(h, day(11, 8), usd(stripeevent.Facts{PriceID: "price_keel_pro_monthly", Amount: 2900, Status: "trialing", TrialEnd: day(11, 22)}))
	// I: Keel's own signup trial (no Stripe subscription).
	i := e.org("I")
	e.exec(`INSERT INTO subscriptions (org_id, plan_id, status, trial_end) VALUES ($1, 'pro', 'trialing', $2)`, i, day(11, 20))
	// J: pro monthly; its renewal failed and is still open: past_due,
	// still paying, one failed payment open.
	j := e.org("J")
	e.subscribe(j, day(10, 1), proMonthly)
	e.event(billing.EventInvoicePaymentFailed, j, usd(stripeevent.Facts{Created: day(11, 12), InvoiceID: "in_j1", Amount: 2900}))
	// K: a price the catalog does not know (plan "").
	k := e.org("K")
	e.subscribe(k, day(9, 1), usd(stripeevent.Facts{PriceID: "price_legacy_monthly", Amount: 1000}))
	// L: a Stripe trial canceled this month before it ever paid (its only
	// invoice is the trial's $0 one): not churn.
	l := e.org("L")
	lf := e.subscribe(l, day(11, 1), usd(stripeevent.Facts{PriceID: "price_keel_pro_monthly", Amount: 2900, Status: "trialing", TrialEnd: day(11, 15)}))
	e.event(billing.EventInvoicePaid, l, usd(stripeevent.Facts{Created: day(11, 1), InvoiceID: "in_l0", Trial: true}))
	lf.Created, lf.Status = day(11, 7), "canceled"
	e.event(billing.EventSubscriptionDeleted, l, lf)
	// An uncollectible invoice that had failed is not open.
	e.exec(`INSERT INTO invoices (org_id, stripe_invoice_id, status, stripe_created, first_failed_at)
		VALUES ($1, 'in_d_old', 'uncollectible', $2, $2)`, d, day(9, 20))

	// Activity: written by a user or an API key in (as_of - 30 d, as_of].
	e.auditRow(a, "resource.created", true, false, asOf.Add(-time.Hour))               // active
	e.auditRow(b, "user.login", true, false, asOf.Add(-time.Hour))                     // an account event
	e.auditRow(c, "admin.organization_viewed", true, false, asOf.Add(-time.Hour))      // an admin's read
	e.auditRow(c, "support_access.read", true, false, asOf.Add(-time.Hour))            // ditto
	e.auditRow(d, "resource.updated", false, true, monthAgo)                           // on the edge: out
	e.auditRow(eo, "member.role_changed", true, false, monthAgo.Add(time.Microsecond)) // active
	e.auditRow(f, "resource.created", false, false, asOf.Add(-time.Hour))              // no actor (a job)
	e.auditRow(g, "resource.created", true, false, asOf.Add(time.Second))              // after as_of
	e.auditRow(h, "file.created", false, true, day(11, 10))                            // active (API key)

	svc := &admin.Service{DB: e.db.Platform, App: e.db.App, Store: admindb.Store{}, Now: func() time.Time { return asOf }}
	got, err := svc.Stats(ctx, &admin.Admin{UserID: adminID}, audit.Meta{IP: "203.0.113.9", UserAgent: "stats-test"})
	if err != nil {
		t.Fatal(err)
	}

	signups := map[string]int64{"2026-10-17": 1, "2026-11-01": 2, "2026-11-14": 1, "2026-11-15": 1}
	var days []admin.DayCount
	for dd := firstDay; !dd.After(time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC)); dd = dd.AddDate(0, 0, 1) {
		key := dd.Format(time.DateOnly)
		days = append(days, admin.DayCount{Date: key, Count: signups[key]})
	}
	want := &admin.Stats{
		AsOf:                  asOf,
		SignupsPerDay:         days,
		ActiveOrganizations:   3,
		TrialingOrganizations: 2,
		PayingOrganizations: admin.Paying{Total: 7, ByPlan: []admin.PlanCount{
			{Plan: "", Count: 1}, {Plan: "business", Count: 3}, {Plan: "pro", Count: 3}}},
		MRR: []admin.MRR{
			{Currency: "eur", Amount: 3500, Amount30DaysAgo: 3500, Change: 0},
			// now: A 2900 + B 2417 + C 4000 + E 9900 + J 2900 + K 1000;
			// then: A, E, F, G, J 2900 each + B 2417 + K 1000.
			{Currency: "usd", Amount: 23117, Amount30DaysAgo: 17917, Change: 5200},
		},
		ChurnedThisMonth:   1,
		FailedPaymentsOpen: 1,
	}
	if len(days) != admin.StatsDays {
		t.Fatalf("%d days", len(days))
	}
	if !reflect.DeepEqual(want, got) {
		w, _ := json.MarshalIndent(want, "", " ")
		g, _ := json.MarshalIndent(got, "", " ")
		t.Fatalf("stats:\n got %s\nwant %s", g, w)
	}

	// The MRR of now from the history equals the subscriptions rows' own.
	var rows []struct {
		Currency string `db:"currency"`
		Sum      int64  `db:"sum"`
	}
	if err := e.db.Owner.Select(&rows, `SELECT price_currency AS currency, sum(mrr)::bigint AS sum FROM subscriptions
		WHERE mrr > 0 GROUP BY 1 ORDER BY 1`); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rows) != "[{eur 3500} {usd 23117}]" {
		t.Fatalf("subscriptions' mrr %v", rows)
	}

	// The reading is audited as a platform row with the admin as actor.
	var n int
	if err := e.db.Owner.Get(&n, `SELECT count(*) FROM audit_log WHERE org_id IS NULL AND action = 'admin.stats_viewed'
		AND actor_user_id = $1 AND target_type = 'stats' AND ip = '203.0.113.9'`, adminID); err != nil || n != 1 {
		t.Fatalf("admin.stats_viewed rows: %d %v", n, err)
	}
}

// Without the admin role's pool the stats answer admin_unavailable and
// compute nothing.
func TestStatsUnavailableWithoutAdminDB(t *testing.T) {
	t.Parallel()
	svc := &admin.Service{Store: admindb.Store{}, Now: func() time.Time { return asOf }}
	_, err := svc.Stats(context.Background(), &admin.Admin{UserID: uuid.New()}, audit.Meta{})
	if e, ok := apperr.As(err); !ok || e.Code != "admin_unavailable" {
		t.Fatalf("%v", err)
	}
}
