package billing

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

// fold applies snapshots in the order given, as the applier does.
func fold(t *testing.T, snaps []Snapshot) Account {
	t.Helper()
	c := testCatalog(t)
	a := Account{Status: Trialing}
	for _, s := range snaps {
		if a.Newer(s) {
			a.Take(s, c)
		}
	}
	return a
}

func key(a Account) string {
	deref := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	return fmt.Sprintf("sub=%s status=%s event=%s plan=%s", deref(a.SubscriptionID), deref(a.StripeStatus), deref(a.EventID), deref(a.PlanID))
}

// The newest snapshot wins whatever order they arrive in, including events
// created in the same second, a resubscription, and a cancellation that a
// later-stamped update must not undo.
func TestNewestSnapshotWinsInAnyOrder(t *testing.T) {
	snaps := []Snapshot{
		{ID: "sub_a", Status: "incomplete", PriceID: "price_keel_pro_monthly", Created: at(0), EventAt: at(0), EventID: "evt_00"},
		{ID: "sub_a", Status: "trialing", PriceID: "price_keel_pro_monthly", Created: at(0), EventAt: at(1), EventID: "evt_01"},
		{ID: "sub_a", Status: "active", PriceID: "price_keel_pro_monthly", Created: at(0), EventAt: at(10), EventID: "evt_02"},
		{ID: "sub_a", Status: "past_due", PriceID: "price_keel_pro_monthly", Created: at(0), EventAt: at(20), EventID: "evt_03"},
		{ID: "sub_a", Status: "active", PriceID: "price_keel_business_monthly", Created: at(0), EventAt: at(20), EventID: "evt_04"},
		{ID: "sub_a", Status: "canceled", PriceID: "price_keel_business_monthly", Created: at(0), EventAt: at(30), EventID: "evt_05"},
		// Stripe never revives a canceled subscription; a late-stamped
		// update of it must not either.
		{ID: "sub_a", Status: "active", PriceID: "price_keel_business_monthly", Created: at(0), EventAt: at(31), EventID: "evt_06"},
		// The organization subscribes again: a newer subscription.
		{ID: "sub_b", Status: "incomplete", PriceID: "price_keel_pro_yearly", Created: at(40), EventAt: at(40), EventID: "evt_07"},
		{ID: "sub_b", Status: "active", PriceID: "price_keel_pro_yearly", Created: at(40), EventAt: at(41), EventID: "evt_08"},
	}
	want := key(fold(t, snaps))
	if want != "sub=sub_b status=active event=evt_08 plan=pro" {
		t.Fatalf("in order: %s", want)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		perm := append([]Snapshot(nil), snaps...)
		rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		if got := key(fold(t, perm)); got != want {
			t.Fatalf("shuffle %d: %s, want %s", i, got, want)
		}
	}
	// Without the second subscription the cancellation is final.
	if got := key(fold(t, snaps[:7])); got != "sub=sub_a status=canceled event=evt_05 plan=business" {
		t.Fatalf("first subscription alone: %s", got)
	}
}

// A subscription whose first payment never went through is not adopted:
// the organization keeps its signup trial.
func TestPendingSubscriptionIsNotAdopted(t *testing.T) {
	a := fold(t, []Snapshot{{ID: "sub_x", Status: "incomplete_expired", Created: at(0), EventAt: at(5), EventID: "evt_1"}})
	if a.SubscriptionID != nil || a.Status != Trialing {
		t.Fatalf("adopted a subscription that never started: %s, %s", key(a), a.Status)
	}
}

// An invoice's merge is the same whatever order its events come in.
func TestMergeInvoiceIsOrderFree(t *testing.T) {
	failed := at(100)
	paid := at(200)
	type ev struct {
		in       Invoice
		failedAt *time.Time
	}
	evs := []ev{
		{Invoice{ID: "in_1", Status: "open", AmountDue: 2900, AttemptCount: 1, Number: "K-1"}, &failed},
		{Invoice{ID: "in_1", Status: "open", AmountDue: 2900, AttemptCount: 2}, &failed},
		{Invoice{ID: "in_1", Status: "paid", AmountDue: 2900, AmountPaid: 2900, AttemptCount: 3, PaidAt: &paid, Number: "K-1"}, nil},
		{Invoice{ID: "in_1", Status: "paid", AmountDue: 2900, AmountPaid: 2900, AttemptCount: 3, PaidAt: &paid}, nil},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 200 {
		perm := append([]ev(nil), evs...)
		if i > 0 {
			rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		}
		var have *Invoice
		for _, e := range perm {
			m := MergeInvoice(have, e.in, e.failedAt)
			have = &m
		}
		if have.Status != "paid" || have.Number != "K-1" || have.AttemptCount != 3 || have.AmountPaid != 2900 ||
			have.FirstFailedAt == nil || !have.FirstFailedAt.Equal(failed) || have.PaidAt == nil || !have.PaidAt.Equal(paid) {
			t.Fatalf("shuffle %d: %+v", i, *have)
		}
	}
}

// Settle's status from the facts: a failure starts the grace period, its
// end makes the organization read-only, a payment restores it at once,
// and Stripe's own past_due counts only when no payment came after it.
func TestSettle(t *testing.T) {
	grace := 10 * 24 * time.Hour
	sub, active, pastDue := "sub_1", "active", "past_due"
	snapAt := at(1000)
	failed := at(500)
	before, after := at(900), at(1100)
	for _, c := range []struct {
		name         string
		stripe       string
		unpaid, paid *time.Time
		now          time.Time
		want         Status
	}{
		{"active, nothing owed", active, nil, nil, at(2000), Active},
		{"a failed invoice, within grace", active, &failed, nil, failed.Add(grace - time.Second), PastDue},
		{"a failed invoice, grace over", active, &failed, nil, failed.Add(grace), ReadOnly},
		{"Stripe says past_due, no invoice known", pastDue, nil, nil, at(2000), PastDue},
		{"Stripe says past_due, paid before that snapshot", pastDue, nil, &before, at(2000), PastDue},
		{"Stripe says past_due, paid after that snapshot", pastDue, nil, &after, at(2000), Active},
		{"Stripe says past_due long ago, unpaid", pastDue, nil, nil, snapAt.Add(grace), ReadOnly},
		{"unpaid at Stripe", "unpaid", nil, nil, at(2000), ReadOnly},
		{"canceled", "canceled", &failed, nil, at(2000), Canceled},
	} {
		a := Account{Status: Active, SubscriptionID: &sub, StripeStatus: &c.stripe, EventAt: &snapAt}
		a.Settle(c.now, c.unpaid, c.paid, grace)
		if a.Status != c.want {
			t.Errorf("%s: %s, want %s", c.name, a.Status, c.want)
		}
		if (a.Status == PastDue) != (a.GraceUntil != nil && c.now.Before(*a.GraceUntil)) {
			t.Errorf("%s: grace until %v at %v with status %s", c.name, a.GraceUntil, c.now, a.Status)
		}
	}
	// Without a Stripe subscription the signup trial stands until the
	// trial job ends it.
	a := Account{Status: Trialing}
	a.Settle(at(0), nil, nil, grace)
	if a.Status != Trialing {
		t.Fatalf("signup trial: %s", a.Status)
	}
}
