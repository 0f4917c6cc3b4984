package billing_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/plan/plandb"
	"github.com/keelhq/keel/internal/resource"
	"github.com/keelhq/keel/internal/resource/resourcedb"
	"github.com/keelhq/keel/internal/tenant"
)

// pastDue subscribes org to Pro (active since t0) and fails its first
// invoice at failed: the state invoice.payment_failed leaves.
func (e *periodicEnv) pastDue(t *testing.T, org uuid.UUID, failed time.Time) {
	t.Helper()
	end := t0.Add(30 * day)
	snap := billing.Snapshot{ID: "sub_" + org.String()[:8], CustomerID: "cus_" + org.String()[:8], Status: "active",
		PriceID: "price_keel_pro_monthly", Quantity: 1, Created: t0, CurrentPeriodEnd: &end, EventAt: t0, EventID: "evt_a"}
	e.apply(t, org, snap)
	sub := snap.ID
	e.inTx(t, org, func(tx *sqlx.Tx) error {
		inv := billing.MergeInvoice(nil, billing.Invoice{OrgID: org, ID: "in_1", SubscriptionID: &sub, Number: "KEEL-0001",
			Status: "open", Currency: "usd", AmountDue: 2900, Created: failed, AttemptCount: 1}, &failed)
		return e.svc.Store.SaveInvoice(context.Background(), tx, &inv, failed)
	})
	snap.Status, snap.EventAt, snap.EventID = "past_due", failed, "evt_b"
	if a := e.apply(t, org, snap); a.Status != billing.PastDue || !a.GraceUntil.Equal(failed.Add(10*day)) {
		t.Fatalf("after the failure: %s until %v", a.Status, a.GraceUntil)
	}
}

func (e *periodicEnv) dunning(t *testing.T) billing.DunningResult {
	t.Helper()
	r, err := e.svc.Dunning(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Dunning over an unpaid invoice's life: reminders on day 3 and day 7,
// each once; read-only at the end of the 10 grace days, when a member's
// and an API key's writes answer 402 payment_required and reads keep
// working; the payment restores writes at once.
func TestDunningRemindsOnceAndTurnsReadOnlyAfterGrace(t *testing.T) {
	t.Parallel()
	e := newPeriodicEnv(t)
	org, memberID := e.org(t, "Acme")
	other, _ := e.org(t, "Paying") // active all along: dunning leaves it alone
	e.apply(t, other, billing.Snapshot{ID: "sub_other", CustomerID: "cus_other", Status: "active",
		PriceID: "price_keel_pro_monthly", Quantity: 1, Created: t0, EventAt: t0, EventID: "evt_o"})
	failed := t0.Add(time.Hour)
	e.pastDue(t, org, failed)

	resources := &resource.Service{DB: e.db.App, Store: resourcedb.Store{}, Now: e.clock.Now,
		Limits: &plan.Limiter{Plans: billing.Resolver{Store: e.svc.Store, Plans: e.svc.Plans}, Store: plandb.Store{}}}
	member := &tenant.Principal{UserID: memberID, OrgID: org, Role: "member"}
	key := &tenant.Principal{APIKeyID: uuid.New(), OrgID: org, Role: "member"}
	ctx := context.Background()
	kept, err := resources.Create(ctx, member, resource.Input{Name: "before"}, audit.Meta{})
	if err != nil {
		t.Fatal(err)
	}

	version := e.account(t, org).Version
	steps := []struct {
		at        time.Duration // after the failure
		reminders int
		status    billing.Status
	}{
		{0, 0, billing.PastDue},
		{3*day - time.Minute, 0, billing.PastDue},
		{3 * day, 1, billing.PastDue},
		{3*day + time.Hour, 0, billing.PastDue},
		{6 * day, 0, billing.PastDue},
		{7 * day, 1, billing.PastDue},
		{7 * day, 0, billing.PastDue},
		{10*day - time.Second, 0, billing.PastDue},
	}
	for _, s := range steps {
		e.clock.Set(failed.Add(s.at))
		if r := e.dunning(t); r.Reminders != s.reminders || r.ReadOnly != 0 || r.Orgs != 1 {
			t.Fatalf("at %v: %+v, want %d reminders", s.at, r, s.reminders)
		}
		if a := e.account(t, org); a.Status != s.status {
			t.Fatalf("at %v: %s", s.at, a.Status)
		}
	}
	if n := e.mails(t, org, billing.MailPaymentFailed); n != 2 {
		t.Fatalf("%d dunning emails, want 2 (day 3 and day 7)", n)
	}
	if v := e.account(t, org).Version; v != version {
		t.Fatalf("runs in the grace period rewrote the row: version %d -> %d", version, v)
	}
	for _, k := range []string{"dunning:in_1:3", "dunning:in_1:7"} {
		var n int
		if err := e.db.Owner.Get(&n, `SELECT count(*) FROM billing_notices WHERE org_id = $1 AND key = $2`, org, k); err != nil || n != 1 {
			t.Fatalf("notice %s: %d (%v)", k, n, err)
		}
	}
	if _, err := resources.Create(ctx, member, resource.Input{Name: "in grace"}, audit.Meta{}); err != nil {
		t.Fatalf("a write in the grace period: %v", err)
	}

	e.clock.Set(failed.Add(10 * day))
	if r := e.dunning(t); r.ReadOnly != 1 || r.Reminders != 0 {
		t.Fatalf("at the grace's end: %+v", r)
	}
	if r := e.dunning(t); r.ReadOnly != 0 || r.Orgs != 1 {
		t.Fatalf("again: %+v", r)
	}
	if a := e.account(t, org); a.Status != billing.ReadOnly {
		t.Fatalf("after grace: %s", a.Status)
	}
	if n := e.audits(t, org, "billing.read_only"); n != 1 {
		t.Fatalf("%d billing.read_only rows", n)
	}
	if n := e.mails(t, org, billing.MailReadOnly); n != 1 {
		t.Fatalf("%d read-only emails", n)
	}
	for who, p := range map[string]*tenant.Principal{"member": member, "API key": key} {
		_, err := resources.Create(ctx, p, resource.Input{Name: "refused"}, audit.Meta{})
		if ae, ok := apperr.As(err); !ok || ae.Kind != apperr.PaymentRequired || ae.Code != "payment_required" {
			t.Fatalf("%s's write when read-only: %v", who, err)
		}
	}
	if _, err := resources.Update(ctx, member, kept.ID, kept.Version, resource.Patch{Name: ptr("renamed")}, audit.Meta{}); apperr.KindOf(err) != apperr.PaymentRequired {
		t.Fatalf("an update when read-only: %v", err)
	}
	if got, err := resources.Get(ctx, member, kept.ID); err != nil || got.Name != "before" {
		t.Fatalf("a read when read-only: %v %v", got, err)
	}
	if rows, _, err := resources.List(ctx, member, tenant.Page{Limit: 10}, resource.Filter{}); err != nil || len(rows) != 2 {
		t.Fatalf("a list when read-only: %d rows, %v", len(rows), err)
	}

	// invoice.paid: the invoice merges to paid and the state settles again.
	paidAt := failed.Add(10*day + time.Hour)
	e.clock.Set(paidAt)
	e.inTx(t, org, func(tx *sqlx.Tx) error {
		have, err := e.svc.Store.Invoice(ctx, tx, org, "in_1")
		if err != nil {
			return err
		}
		inv := billing.MergeInvoice(have, billing.Invoice{OrgID: org, ID: "in_1", Status: "paid", AmountPaid: 2900, PaidAt: &paidAt}, nil)
		if err := e.svc.Store.SaveInvoice(ctx, tx, &inv, paidAt); err != nil {
			return err
		}
		a, err := e.svc.LockAccount(ctx, tx, org)
		if err != nil {
			return err
		}
		return e.svc.Resettle(ctx, tx, a)
	})
	// While the row holds Stripe's past_due snapshot, the paid invoice
	// alone does not restore access (Settle dates the grace from that
	// snapshot); Stripe sends customer.subscription.updated (active) with
	// the payment.
	e.apply(t, org, billing.Snapshot{ID: "sub_" + org.String()[:8], CustomerID: "cus_" + org.String()[:8], Status: "active",
		PriceID: "price_keel_pro_monthly", Quantity: 1, Created: t0, EventAt: paidAt, EventID: "evt_c"})
	if a := e.account(t, org); a.Status != billing.Active {
		t.Fatalf("after payment: %s", a.Status)
	}
	if _, err := resources.Create(ctx, member, resource.Input{Name: "after payment"}, audit.Meta{}); err != nil {
		t.Fatalf("a write after payment: %v", err)
	}
	if r := e.dunning(t); r.Orgs != 0 || r.Reminders != 0 {
		t.Fatalf("after payment: %+v", r)
	}
	if n := e.mails(t, org, billing.MailPaymentFailed) + e.mails(t, other, billing.MailPaymentFailed); n != 2 {
		t.Fatalf("%d dunning emails in all, want 2", n)
	}
	if !strings.Contains(e.lastMail(t, org, billing.MailPaymentFailed), `"grace_until":"12 March 2026"`) {
		t.Fatalf("reminder data: %s", e.lastMail(t, org, billing.MailPaymentFailed))
	}
}

// An invoice paid before its day 3 gets no reminder, even while the
// subscription's status has not caught up (no active snapshot yet).
func TestDunningSkipsAPaidInvoice(t *testing.T) {
	t.Parallel()
	e := newPeriodicEnv(t)
	org, _ := e.org(t, "Paid")
	failed := t0.Add(time.Hour)
	e.pastDue(t, org, failed)
	e.inTx(t, org, func(tx *sqlx.Tx) error {
		_, err := tx.Exec(`UPDATE invoices SET status = 'paid' WHERE org_id = $1`, org)
		return err
	})
	e.clock.Set(failed.Add(8 * day))
	if r := e.dunning(t); r.Reminders != 0 || r.Orgs != 1 {
		t.Fatalf("%+v", r)
	}
	if n := e.mails(t, org, billing.MailPaymentFailed); n != 0 {
		t.Fatalf("%d reminders of a paid invoice", n)
	}
}

func ptr[T any](v T) *T { return &v }

func (e *periodicEnv) lastMail(t *testing.T, org uuid.UUID, template string) string {
	t.Helper()
	var p string
	err := e.db.Owner.Get(&p, `SELECT convert_from(payload, 'UTF8') FROM outbox WHERE task_type = 'email:send'
		AND headers->>'org_id' = $1 AND convert_from(payload, 'UTF8') LIKE '%' || $2 || '%' ORDER BY created_at DESC LIMIT 1`,
		org.String(), `"template":"`+template+`"`)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
