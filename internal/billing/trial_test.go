package billing_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/billing"
)

const day = 24 * time.Hour

// expireTrialsTwice runs trial:expire n times at once, then once more
// after them: repeated and overlapping runs.
func expireTrialsTwice(t *testing.T, e *periodicEnv, n int) billing.TrialResult {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total billing.TrialResult
	)
	add := func(r billing.TrialResult) {
		mu.Lock()
		total.Warned += r.Warned
		total.Expired += r.Expired
		mu.Unlock()
	}
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := e.svc.ExpireTrials(context.Background())
			if err != nil {
				t.Error(err)
			}
			add(r)
		}()
	}
	wg.Wait()
	r, err := e.svc.ExpireTrials(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	add(r)
	return total
}

// A signup trial: nothing before its last 3 days, one warning in them
// however often (and however concurrently) the job runs, then at its end
// one move to the fallback plan, one audit row and one "ended" email.
func TestExpireTrialsWarnsOnceThenExpiresOnce(t *testing.T) {
	t.Parallel()
	e := newPeriodicEnv(t)
	org, _ := e.org(t, "Acme")
	a := e.account(t, org)
	if a.Status != billing.Trialing || a.TrialEnd == nil || !a.TrialEnd.Equal(t0.Add(14*day)) {
		t.Fatalf("started as %+v", a)
	}

	e.clock.Set(t0.Add(11*day - time.Minute)) // 3 days and a minute left
	if r := expireTrialsTwice(t, e, 3); r.Warned != 0 || r.Expired != 0 {
		t.Fatalf("before the warning window: %+v", r)
	}
	if n := e.mails(t, org, billing.MailTrialEnding); n != 0 {
		t.Fatalf("%d warnings before the window", n)
	}

	e.clock.Set(t0.Add(11*day + time.Hour))
	if r := expireTrialsTwice(t, e, 4); r.Warned != 1 || r.Expired != 0 {
		t.Fatalf("in the window: %+v", r)
	}
	e.clock.Set(t0.Add(13 * day))
	if r := expireTrialsTwice(t, e, 2); r.Warned != 0 {
		t.Fatalf("a day later: %+v", r)
	}
	if n := e.mails(t, org, billing.MailTrialEnding); n != 1 {
		t.Fatalf("%d trial-ending emails, want 1", n)
	}
	var payload string
	if err := e.db.Owner.Get(&payload, `SELECT convert_from(payload, 'UTF8') FROM outbox WHERE task_type = 'email:send'`); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"days":"3"`, `"plan":"Pro"`, `"fallback":"Free"`, `"trial_end":"16 March 2026"`, `"organization":"Acme"`} {
		if !strings.Contains(payload, want) {
			t.Errorf("warning %s lacks %s", payload, want)
		}
	}
	if a := e.account(t, org); a.Status != billing.Trialing {
		t.Fatalf("still in the trial but %s", a.Status)
	}

	e.clock.Set(t0.Add(14 * day))
	if r := expireTrialsTwice(t, e, 4); r.Expired != 1 || r.Warned != 0 {
		t.Fatalf("at the end: %+v", r)
	}
	a = e.account(t, org)
	if a.Status != billing.Free || a.Plan(e.svc.Plans).ID != e.svc.Plans.Fallback {
		t.Fatalf("after the trial: %s on %s", a.Status, a.Plan(e.svc.Plans).ID)
	}
	if n := e.mails(t, org, billing.MailTrialEnded); n != 1 {
		t.Fatalf("%d trial-ended emails, want 1", n)
	}
	if n := e.audits(t, org, "billing.trial_expired"); n != 1 {
		t.Fatalf("%d billing.trial_expired rows, want 1", n)
	}
	if n := e.mails(t, org, billing.MailTrialEnding); n != 1 {
		t.Fatalf("%d trial-ending emails after the end, want still 1", n)
	}
}

// A trial first seen after its end (the worker was down for its last
// days) gets the "ended" email only: a warning of a past end is noise.
func TestExpireTrialsAfterTheEndSendsOnlyTheEndedEmail(t *testing.T) {
	t.Parallel()
	e := newPeriodicEnv(t)
	org, _ := e.org(t, "Late")
	e.clock.Set(t0.Add(20 * day))
	if r := expireTrialsTwice(t, e, 2); r.Expired != 1 || r.Warned != 0 {
		t.Fatalf("%+v", r)
	}
	if w, d := e.mails(t, org, billing.MailTrialEnding), e.mails(t, org, billing.MailTrialEnded); w != 0 || d != 1 {
		t.Fatalf("%d warnings and %d ended emails, want 0 and 1", w, d)
	}
}

// A Stripe trial (the organization subscribed with a trial through
// Checkout) is Stripe's: trial:expire neither mails nor moves it.
func TestExpireTrialsLeavesStripeTrialsAlone(t *testing.T) {
	t.Parallel()
	e := newPeriodicEnv(t)
	org, _ := e.org(t, "Stripe trial")
	end := t0.Add(7 * day)
	e.apply(t, org, billing.Snapshot{ID: "sub_trial", CustomerID: "cus_trial", Status: "trialing",
		PriceID: "price_keel_pro_monthly", Quantity: 1, Created: t0, TrialEnd: &end, EventAt: t0, EventID: "evt_1"})
	e.clock.Set(t0.Add(30 * day))
	if r := expireTrialsTwice(t, e, 1); r.Expired != 0 || r.Warned != 0 {
		t.Fatalf("%+v", r)
	}
	if a := e.account(t, org); a.Status != billing.Trialing {
		t.Fatalf("a Stripe trial became %s", a.Status)
	}
}
