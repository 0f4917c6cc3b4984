package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/billing/billingdb"
	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/platform/stripetest"
	"github.com/keelhq/keel/jobs"
	"github.com/keelhq/keel/jobs/task"
)

// billingCalls is a jobs env whose billing service calls a private
// stripe-mock, with one organization subscribed (subscription sub_keel)
// and a mux running the billing call handlers.
type billingCalls struct {
	e      *env
	stripe *stripetest.Server
	mux    *asynq.ServeMux
	org    uuid.UUID
}

func newBillingCalls(t *testing.T, planID, interval string, members int) *billingCalls {
	t.Helper()
	e := newEnv(t)
	s := stripetest.Start(t)
	cat, err := plan.Load("")
	if err != nil {
		t.Fatal(err)
	}
	e.deps.Billing = &billing.Service{DB: e.db.App, Store: billingdb.Store{}, Plans: cat, Stripe: s.Client, Log: zerolog.Nop()}
	mux := asynq.NewServeMux()
	if err := jobs.Register(mux, e.deps); err != nil {
		t.Fatal(err)
	}
	b := &billingCalls{e: e, stripe: s, mux: mux, org: uuid.New()}
	e.db.Owner.MustExec(`INSERT INTO organizations (id, name) VALUES ($1, 'Acme')`, b.org)
	for i := range members {
		u := uuid.New()
		e.db.Owner.MustExec(`INSERT INTO users (id, email, name, password_hash) VALUES ($1, $2, 'U', 'x')`, u, fmt.Sprintf("u%d-%s@example.com", i, u))
		e.db.Owner.MustExec(`INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, 'member')`, b.org, u)
	}
	e.db.Owner.MustExec(`INSERT INTO subscriptions (org_id, plan_id, status, billing_interval, stripe_customer_id,
		stripe_subscription_id, stripe_status, stripe_subscription_created, current_period_end)
		VALUES ($1, $2, 'active', $3, 'cus_keel', 'sub_keel', 'active', now() - interval '1 day', now() + interval '29 days')`,
		b.org, planID, interval)
	return b
}

func (b *billingCalls) run(t *testing.T, ot outbox.Task, err error) error {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	return b.mux.ProcessTask(context.Background(), asynq.NewTaskWithHeaders(ot.Type, ot.Payload, ot.Headers))
}

// billing:sync-seats sets a per-seat subscription's quantity to the member
// count, keyed by the change and the quantity: the same change run twice
// sends the same key.
func TestSyncSeats(t *testing.T) {
	t.Parallel()
	b := newBillingCalls(t, "business", "month", 3)
	for range 2 {
		ot, err := task.NewBillingSyncSeatsTask(b.org, "joined:inv-1")
		if err := b.run(t, ot, err); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.stripe.RequestsTo("GET", "/v1/subscriptions/sub_keel"); len(got) != 2 {
		t.Fatalf("subscription fetched %d times", len(got))
	}
	var updates []stripetest.Request
	for _, r := range b.stripe.Requests() {
		if r.Method == "POST" {
			updates = append(updates, r)
		}
	}
	want := fmt.Sprintf("keel-seats-%s-joined:inv-1-3", b.org)
	if len(updates) != 2 || updates[0].IdempotencyKey != want || updates[1].IdempotencyKey != want {
		t.Fatalf("updates %+v, want two with key %s", updates, want)
	}
	if q := updates[0].Form.Get("quantity"); q != "3" {
		t.Fatalf("quantity %q", q)
	}
}

// A plan that is not per seat has no quantity to sync: nothing reaches
// Stripe.
func TestSyncSeatsNotPerSeat(t *testing.T) {
	t.Parallel()
	b := newBillingCalls(t, "pro", "month", 3)
	ot, err := task.NewBillingSyncSeatsTask(b.org, "joined:inv-1")
	if err := b.run(t, ot, err); err != nil {
		t.Fatal(err)
	}
	if got := b.stripe.Requests(); len(got) != 0 {
		t.Fatalf("calls: %+v", got)
	}
}

func changeTask(t *testing.T, org uuid.UUID, planID, interval string) (outbox.Task, uuid.UUID) {
	req := uuid.New()
	ot, err := task.NewBillingChangePlanTask(org, task.BillingChangePlanPayload{RequestID: req, Plan: planID, Interval: interval})
	if err != nil {
		t.Fatal(err)
	}
	return ot, req
}

// An upgrade updates the subscription's item to the new price at once,
// invoicing the proration, keyed by the request; per-seat, its quantity is
// the member count.
func TestChangePlanUpgrade(t *testing.T) {
	t.Parallel()
	b := newBillingCalls(t, "pro", "month", 4)
	ot, req := changeTask(t, b.org, "business", "month")
	if err := b.run(t, ot, nil); err != nil {
		t.Fatal(err)
	}
	up := b.stripe.RequestsTo("POST", "/v1/subscriptions/sub_keel")
	if len(up) != 1 {
		t.Fatalf("updates %+v (all %+v)", up, b.stripe.Requests())
	}
	f := up[0].Form
	if up[0].IdempotencyKey != "keel-change-"+req.String() || f.Get("items[0][price]") != "price_keel_business_monthly" ||
		f.Get("items[0][id]") == "" || f.Get("items[0][quantity]") != "4" || f.Get("proration_behavior") != "always_invoice" {
		t.Fatalf("update %+v", up[0])
	}
	if n := len(b.stripe.RequestsTo("POST", "/v1/subscription_schedules")); n != 0 {
		t.Fatalf("%d schedules for an upgrade", n)
	}
}

// A downgrade makes a schedule from the subscription, then sets its
// phases: the current price until the period ends, then the new one; each
// call keyed by the request.
func TestChangePlanDowngrade(t *testing.T) {
	t.Parallel()
	b := newBillingCalls(t, "business", "year", 2)
	ot, req := changeTask(t, b.org, "pro", "month")
	if err := b.run(t, ot, nil); err != nil {
		t.Fatal(err)
	}
	created := b.stripe.RequestsTo("POST", "/v1/subscription_schedules")
	if len(created) != 1 || created[0].IdempotencyKey != "keel-change-"+req.String()+"-schedule" ||
		created[0].Form.Get("from_subscription") != "sub_keel" {
		t.Fatalf("schedule %+v (all %+v)", created, b.stripe.Requests())
	}
	var phases *stripetest.Request
	for _, r := range b.stripe.Requests() {
		if r.Method == "POST" && r.IdempotencyKey == "keel-change-"+req.String()+"-phases" {
			phases = &r
		}
	}
	if phases == nil {
		t.Fatalf("no phases update: %+v", b.stripe.Requests())
	}
	f := phases.Form
	if f.Get("phases[0][end_date]") == "" || f.Get("phases[0][items][0][price]") == "" ||
		f.Get("phases[1][items][0][price]") != "price_keel_pro_monthly" || f.Get("phases[1][items][0][quantity]") != "1" ||
		f.Get("end_behavior") != "release" {
		t.Fatalf("phases %v", f)
	}
	if n := len(b.stripe.RequestsTo("POST", "/v1/subscriptions/sub_keel")); n != 0 {
		t.Fatalf("a downgrade updated the subscription at once (%d calls)", n)
	}
}

// A change Stripe refuses for good (here: a plan the catalog cannot price)
// is a dead task at once, audited; nothing reaches Stripe.
func TestChangePlanRefusedSkipsRetry(t *testing.T) {
	t.Parallel()
	b := newBillingCalls(t, "pro", "month", 1)
	ot, _ := changeTask(t, b.org, "free", "month")
	err := b.run(t, ot, nil)
	if !errors.Is(err, asynq.SkipRetry) || !errors.Is(err, billing.ErrStripeRefused) {
		t.Fatalf("got %v", err)
	}
	var n int
	if err := b.e.db.Owner.Get(&n, `SELECT count(*) FROM audit_log WHERE org_id = $1 AND action = 'billing.plan_change_failed'`, b.org); err != nil || n != 1 {
		t.Fatalf("%d audit rows (%v)", n, err)
	}
	if got := b.stripe.Requests(); len(got) != 0 {
		t.Fatalf("calls: %+v", got)
	}
}
