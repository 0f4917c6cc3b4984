package billing

import (
	"testing"
	"time"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/plan"
)

func testCatalog(t *testing.T) *plan.Catalog {
	t.Helper()
	c, err := plan.Load("")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Upgrades follow plans.yaml order, and the same plan yearly instead of
// monthly; everything else waits for the period's end.
func TestUpgrade(t *testing.T) {
	s := &Service{Plans: testCatalog(t)}
	for _, c := range []struct {
		fromPlan, fromInterval, toPlan, toInterval string
		want                                       bool
	}{
		{"pro", "month", "business", "month", true},
		{"pro", "year", "business", "month", true},
		{"pro", "month", "pro", "year", true},
		{"pro", "year", "pro", "month", false},
		{"business", "month", "pro", "month", false},
		{"business", "month", "pro", "year", false},
		{"free", "", "pro", "month", true},
		{"", "", "pro", "month", true},
	} {
		if got := s.upgrade(c.fromPlan, c.fromInterval, c.toPlan, c.toInterval); got != c.want {
			t.Errorf("%s/%s -> %s/%s: upgrade %v, want %v", c.fromPlan, c.fromInterval, c.toPlan, c.toInterval, got, c.want)
		}
	}
}

// Checkout carries over what is left of the signup trial, rounded up; a
// finished trial or a returning customer gets none; an organization that
// never trialed gets the plan's.
func TestCheckoutTrial(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := &Service{Plans: testCatalog(t), Now: func() time.Time { return now }}
	pro, _ := s.Plans.Get("pro")
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	sub := "sub_1"
	for _, c := range []struct {
		name string
		a    Account
		want int64
	}{
		{"10.2 days left", Account{Status: Trialing, TrialEnd: at(10*24*time.Hour + 5*time.Hour)}, 11},
		{"exactly 3 days left", Account{Status: Trialing, TrialEnd: at(72 * time.Hour)}, 3},
		{"an hour left", Account{Status: Trialing, TrialEnd: at(time.Hour)}, 1},
		{"trial over, not yet expired by the job", Account{Status: Trialing, TrialEnd: at(-time.Minute)}, 0},
		{"trial expired", Account{Status: Free, TrialEnd: at(-24 * time.Hour)}, 0},
		{"never trialed", Account{Status: Free}, int64(pro.TrialDays)},
		{"returning customer", Account{Status: Canceled, SubscriptionID: &sub}, 0},
		{"trialing on Stripe", Account{Status: Trialing, SubscriptionID: &sub, TrialEnd: at(48 * time.Hour)}, 0},
	} {
		if got := s.checkoutTrial(&c.a, pro); got != c.want {
			t.Errorf("%s: %d days, want %d", c.name, got, c.want)
		}
	}
}

func TestSubscribeInputValidate(t *testing.T) {
	c := testCatalog(t)
	if _, price, err := (SubscribeInput{Plan: "business", Interval: "year"}).validate(c); err != nil || price != "price_keel_business_yearly" {
		t.Fatalf("business/year: %q %v", price, err)
	}
	for _, c2 := range []struct {
		in   SubscribeInput
		kind apperr.Kind
		code string
	}{
		{SubscribeInput{Plan: "nope", Interval: "month"}, apperr.Invalid, "validation_failed"},
		{SubscribeInput{Plan: "pro", Interval: "week"}, apperr.Invalid, "validation_failed"},
		{SubscribeInput{}, apperr.Invalid, "validation_failed"},
		{SubscribeInput{Plan: "free", Interval: "month"}, apperr.Unprocessable, "plan_not_purchasable"},
	} {
		_, _, err := c2.in.validate(c)
		e, ok := apperr.As(err)
		if !ok || e.Kind != c2.kind || e.Code != c2.code {
			t.Errorf("%+v: %v", c2.in, err)
		}
	}
}

func TestInvoiceCursor(t *testing.T) {
	c := InvoiceCursor{Created: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), ID: "in_1|x"}
	got, err := parseInvoiceCursor(encodeInvoiceCursor(c))
	if err != nil || !got.Created.Equal(c.Created) || got.ID != c.ID {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, bad := range []string{"%%%", "bm90IGEgY3Vyc29y", encodeInvoiceCursor(InvoiceCursor{Created: c.Created, ID: "a\x00b"})} {
		if _, err := parseInvoiceCursor(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Offers list every plan in order with the intervals it can be bought by.
func TestOffers(t *testing.T) {
	s := &Service{Plans: testCatalog(t)}
	o := s.Offers()
	if len(o) != 3 || o[0].ID != "free" || len(o[0].Intervals) != 0 || !o[0].Fallback ||
		o[1].ID != "pro" || !o[1].Default || len(o[1].Intervals) != 2 || o[2].ID != "business" || !o[2].PerSeat {
		t.Fatalf("%+v", o)
	}
}
