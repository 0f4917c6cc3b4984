package httpapi_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/billing/stripeevent"
	"github.com/keelhq/keel/internal/platform/stripetest"
)

var (
	lifeOrg = uuid.MustParse("0190f0e0-0000-7000-8000-00000000000a")
	// lifeStart is the organization's signup; billing's fake clock stays
	// there, so no grace period ever runs out during the test.
	lifeStart = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
)

// lifeEvents is the recorded life of one organization as Stripe reports
// it: Checkout with a trial, the trial ending, the first invoice paid, a
// renewal that fails twice (past_due) and is then paid, an upgrade to the
// per-seat plan with its proration invoice, and the cancellation at the
// period's end. invoice.paid and invoice.payment_succeeded come for every
// payment, as Stripe sends both; one event of a type Keel does not handle
// is among them.
func lifeEvents() [][]byte {
	const day = 24 * time.Hour
	subCreated := lifeStart.Add(time.Hour)
	trialEnd := lifeStart.Add(15 * day)
	renewal := trialEnd.AddDate(0, 1, 0)
	base := stripeevent.Facts{OrgID: lifeOrg.String(), CustomerID: "cus_Life1", SubscriptionID: "sub_Life1",
		SubscriptionCreated: subCreated, PriceID: "price_keel_pro_monthly"}
	var out [][]byte
	n := 0
	add := func(typ string, at time.Time, set func(f *stripeevent.Facts)) {
		n++
		f := base
		f.EventID = fmt.Sprintf("evt_Life%02d", n)
		f.Created = at
		if set != nil {
			set(&f)
		}
		out = append(out, stripeevent.MustBuild(typ, f))
	}
	trialing := func(f *stripeevent.Facts) {
		f.Status, f.TrialEnd, f.PeriodStart, f.PeriodEnd = "trialing", trialEnd, subCreated, trialEnd
	}
	firstPeriod := func(f *stripeevent.Facts) { f.PeriodStart, f.PeriodEnd = trialEnd, renewal }
	secondPeriod := func(f *stripeevent.Facts) { f.PeriodStart, f.PeriodEnd = renewal, renewal.AddDate(0, 1, 0) }
	invoice := func(id string, created time.Time, amount int64, attempts int) func(f *stripeevent.Facts) {
		return func(f *stripeevent.Facts) {
			f.InvoiceID, f.InvoiceNumber, f.InvoiceCreated, f.Amount, f.AttemptCount = id, "LIFE-"+id[len(id)-4:], created, amount, attempts
			f.Trial = amount == 0
		}
	}
	add(billing.EventCheckoutCompleted, subCreated, nil)
	add(billing.EventSubscriptionCreated, subCreated.Add(time.Second), trialing)
	trialInvoice := func(f *stripeevent.Facts) {
		trialing(f)
		invoice("in_Life0000", subCreated, 0, 0)(f)
	}
	add(billing.EventInvoicePaid, subCreated.Add(2*time.Second), trialInvoice)
	add(billing.EventInvoicePaymentSucceded, subCreated.Add(3*time.Second), trialInvoice)
	n++
	out = append(out, []byte(fmt.Sprintf(`{"id":"evt_Life%02d","object":"event","api_version":%q,"created":%d,"livemode":false,"type":"customer.updated","data":{"object":{"id":"cus_Life1","object":"customer","email":"owner@lifeco.test"}}}`,
		n, billing.APIVersion, subCreated.Add(4*time.Second).Unix())))
	add(billing.EventTrialWillEnd, trialEnd.Add(-3*day), trialing)
	add(billing.EventSubscriptionUpdated, trialEnd.Add(time.Second), firstPeriod)
	add(billing.EventInvoicePaid, trialEnd.Add(time.Minute), func(f *stripeevent.Facts) {
		firstPeriod(f)
		invoice("in_Life0001", trialEnd, 2900, 1)(f)
	})
	add(billing.EventInvoicePaymentSucceded, trialEnd.Add(time.Minute+time.Second), func(f *stripeevent.Facts) {
		firstPeriod(f)
		invoice("in_Life0001", trialEnd, 2900, 1)(f)
	})
	add(billing.EventInvoicePaymentFailed, renewal.Add(time.Minute), func(f *stripeevent.Facts) {
		secondPeriod(f)
		invoice("in_Life0002", renewal, 2900, 1)(f)
	})
	add(billing.EventSubscriptionUpdated, renewal.Add(time.Minute+time.Second), func(f *stripeevent.Facts) {
		secondPeriod(f)
		f.Status = "past_due"
	})
	add(billing.EventInvoicePaymentFailed, renewal.Add(3*day), func(f *stripeevent.Facts) {
		secondPeriod(f)
		invoice("in_Life0002", renewal, 2900, 2)(f)
	})
	add(billing.EventInvoicePaid, renewal.Add(5*day), func(f *stripeevent.Facts) {
		secondPeriod(f)
		invoice("in_Life0002", renewal, 2900, 3)(f)
	})
	add(billing.EventInvoicePaymentSucceded, renewal.Add(5*day+time.Second), func(f *stripeevent.Facts) {
		secondPeriod(f)
		invoice("in_Life0002", renewal, 2900, 3)(f)
	})
	add(billing.EventSubscriptionUpdated, renewal.Add(5*day+2*time.Second), secondPeriod)
	business := func(f *stripeevent.Facts) {
		secondPeriod(f)
		f.PriceID, f.Quantity = "price_keel_business_monthly", 3
	}
	add(billing.EventSubscriptionUpdated, renewal.Add(8*day), business)
	add(billing.EventInvoicePaid, renewal.Add(8*day+5*time.Second), func(f *stripeevent.Facts) {
		business(f)
		invoice("in_Life0003", renewal.Add(8*day), 7400, 1)(f)
	})
	add(billing.EventInvoicePaymentSucceded, renewal.Add(8*day+6*time.Second), func(f *stripeevent.Facts) {
		business(f)
		invoice("in_Life0003", renewal.Add(8*day), 7400, 1)(f)
	})
	add(billing.EventSubscriptionUpdated, renewal.Add(10*day), func(f *stripeevent.Facts) {
		business(f)
		f.CancelAtPeriodEnd = true
	})
	add(billing.EventSubscriptionDeleted, renewal.AddDate(0, 1, 0), func(f *stripeevent.Facts) {
		business(f)
		f.CancelAtPeriodEnd = true
	})
	return out
}

func eventID(t testing.TB, payload []byte) string {
	var h struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(payload, &h); err != nil {
		t.Fatal(err)
	}
	return h.ID
}

// The acceptance's replay test: one organization's recorded life, signed
// and posted to the real webhook endpoint and applied by the real worker
// (outbox relay, Asynq, the stripe:event handler, email:send to Mailpit),
// in four runs on fresh databases: (a) in order, each applied before the
// next is delivered; (b) every event delivered 3 times; (c) shuffled; (d)
// delivered twice each, shuffled, by 10 concurrent senders, with the
// worker applying 10 at a time. The subscription row, the invoices, the
// notices, the emails delivered (recipient and subject, each exactly once)
// and the audit rows are identical in all four, and are the expected end:
// canceled, on the fallback plan.
func TestStripeReplayAnyOrderSameOutcome(t *testing.T) {
	t.Parallel()
	events := lifeEvents()
	if len(events) < 20 {
		t.Fatalf("only %d events", len(events))
	}
	seed := time.Now().UnixNano()
	t.Logf("shuffle seed %d", seed)
	runs := []struct {
		name    string
		deliver func(t *testing.T, e *hookEnv)
	}{
		{"in_order", func(t *testing.T, e *hookEnv) {
			for _, ev := range events {
				e.deliver(ev, stripetest.WebhookSecret)
				id := eventID(t, ev)
				deadline := time.Now().Add(10 * time.Second)
				for e.count(`SELECT count(*) FROM stripe_events WHERE id = $1 AND status <> 'pending'`, id) == 0 {
					if time.Now().After(deadline) {
						t.Fatalf("%s not applied", id)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
		}},
		{"each_3_times", func(t *testing.T, e *hookEnv) {
			for _, ev := range events {
				for i := 0; i < 3; i++ {
					var got struct {
						Received, Duplicate bool
					}
					w := e.deliver(ev, stripetest.WebhookSecret)
					if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != 200 || !got.Received || got.Duplicate != (i > 0) {
						t.Fatalf("delivery %d of %s: %d %s", i+1, eventID(t, ev), w.Code, w.Body)
					}
				}
			}
		}},
		{"shuffled", func(t *testing.T, e *hookEnv) {
			r := rand.New(rand.NewPCG(uint64(seed), 1))
			for _, i := range r.Perm(len(events)) {
				e.deliver(events[i], stripetest.WebhookSecret)
			}
		}},
		{"parallel_10", func(t *testing.T, e *hookEnv) {
			r := rand.New(rand.NewPCG(uint64(seed), 2))
			all := append(slices.Clone(events), events...)
			r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
			work := make(chan []byte)
			var (
				wg   sync.WaitGroup
				mu   sync.Mutex
				errs []string
			)
			for range 10 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ev := range work {
						if code, body := e.rawDeliver(ev); code != 200 {
							mu.Lock()
							errs = append(errs, fmt.Sprintf("%d %s", code, body))
							mu.Unlock()
						}
					}
				}()
			}
			for _, ev := range all {
				work <- ev
			}
			close(work)
			wg.Wait()
			if len(errs) > 0 {
				t.Fatalf("deliveries failed: %q", errs)
			}
		}},
	}
	outcomes := make([]outcome, len(runs))
	t.Run("runs", func(t *testing.T) {
		for i, run := range runs {
			t.Run(run.name, func(t *testing.T) {
				t.Parallel()
				e := newHookEnv(t, lifeStart)
				e.newOrg(lifeOrg, "lifeco")
				e.startWorker(10)
				run.deliver(t, e)
				e.settle(60 * time.Second)
				if ev, tasks := e.stored(); ev != len(events) || tasks != len(events) {
					t.Errorf("%d events stored with %d stripe:event tasks, want %d each", ev, tasks, len(events))
				}
				outcomes[i] = e.outcome(lifeOrg)
				a := e.account(lifeOrg)
				if a.Status != billing.Canceled || a.Plan(e.bill.Plans).ID != e.bill.Plans.Fallback ||
					a.SubscriptionID == nil || *a.SubscriptionID != "sub_Life1" || a.CustomerID == nil || *a.CustomerID != "cus_Life1" ||
					a.PlanID == nil || *a.PlanID != "business" || a.Quantity == nil || *a.Quantity != 3 || !a.CancelAtPeriodEnd ||
					a.PastDueSince != nil || a.GraceUntil != nil {
					t.Errorf("final subscription row:\n%s", pretty(a))
				}
			})
		}
	})
	if t.Failed() {
		return
	}
	want := outcomes[0]
	wantEmails := []string{
		"owner@lifeco.test | Payment for lifeco failed: invoice LIFE-0002",
		"owner@lifeco.test | Payment received for lifeco: invoice LIFE-0001",
		"owner@lifeco.test | Payment received for lifeco: invoice LIFE-0002",
		"owner@lifeco.test | Payment received for lifeco: invoice LIFE-0003",
		"owner@lifeco.test | The Business subscription of lifeco has ended",
		"owner@lifeco.test | Your Pro trial of lifeco ends on 17 March 2026",
	}
	if !slices.Equal(want.Emails, wantEmails) {
		t.Errorf("emails:\n%s\nwant\n%s", strings.Join(want.Emails, "\n"), strings.Join(wantEmails, "\n"))
	}
	handled := 0
	for _, a := range want.Audit {
		if strings.Contains(a, "| stripe_event:") {
			handled++
		}
	}
	if handled != len(events)-1 || len(want.Invoices) != 4 {
		t.Errorf("%d audit rows of events (want %d), %d invoices (want 4)", handled, len(events)-1, len(want.Invoices))
	}
	for i, o := range outcomes[1:] {
		if d := diff(want, o); d != "" {
			t.Errorf("run %s differs from run in_order:\n%s", runs[i+1].name, d)
		}
	}
}

// diff describes how b differs from a, field by field.
func diff(a, b outcome) string {
	var out []string
	cmp := func(name string, x, y []string) {
		if !slices.Equal(x, y) {
			out = append(out, fmt.Sprintf("%s:\n  %s\nvs\n  %s", name, strings.Join(x, "\n  "), strings.Join(y, "\n  ")))
		}
	}
	cmp("subscription", []string{a.Account}, []string{b.Account})
	cmp("invoices", a.Invoices, b.Invoices)
	cmp("emails", a.Emails, b.Emails)
	cmp("notices", a.Notices, b.Notices)
	cmp("audit", a.Audit, b.Audit)
	cmp("events", a.Events, b.Events)
	return strings.Join(out, "\n")
}
