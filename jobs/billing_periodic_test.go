package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/billing/billingdb"
	"github.com/keelhq/keel/internal/email"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/platform/clock/clocktest"
	"github.com/keelhq/keel/internal/platform/mail"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/jobs"
	"github.com/keelhq/keel/jobs/task"
)

// withBilling registers the handlers again on f with a billing service on
// clk (Stripe not configured).
func withBilling(t *testing.T, f *fleet, clk *clocktest.Fake) *billing.Service {
	t.Helper()
	plans, err := plan.Load("")
	if err != nil {
		t.Fatal(err)
	}
	b := &billing.Service{DB: f.db.App, Store: billingdb.Store{}, Plans: plans, Now: clk.Now, Log: zerolog.Nop()}
	smtp, err := mail.NewSMTP("smtp://127.0.0.1:1", "x@example.com")
	if err != nil {
		t.Fatal(err)
	}
	render, err := email.NewRenderer("http://localhost", "Keel")
	if err != nil {
		t.Fatal(err)
	}
	f.mux = asynq.NewServeMux()
	if err := jobs.Register(f.mux, jobs.Deps{DB: f.db.App, Mail: smtp, Render: render, Queue: f.queue, Archive: f.insp,
		Billing: b, Log: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	return b
}

// The three billing jobs run through the periodic wrapper: each run is in
// job_runs with its service's result; without Stripe, stripe:reconcile
// fails saying so, and without billing at all every one of them does.
func TestBillingPeriodicJobs(t *testing.T) {
	t.Parallel()
	f := MustFleet(t, nil)
	if err := f.run(t, task.TypeTrialExpire); err == nil || !errors.Is(err, asynq.SkipRetry) || !strings.Contains(err.Error(), "Billing is nil") {
		t.Fatalf("trial:expire without billing: %v", err)
	}

	start := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	clk := clocktest.New(start)
	b := withBilling(t, f, clk)
	org := uuid.New()
	if _, err := f.db.Owner.Exec(fmt.Sprintf(`INSERT INTO organizations (id, name) VALUES ('%s', 'Acme')`, org)); err != nil {
		t.Fatal(err)
	}
	if err := postgres.InTx(context.Background(), f.db.App, org, func(tx *sqlx.Tx) error {
		return b.StartOrg(context.Background(), tx, org)
	}); err != nil {
		t.Fatal(err)
	}
	clk.Set(start.Add(15 * 24 * time.Hour))
	if err := f.run(t, task.TypeTrialExpire); err != nil {
		t.Fatal(err)
	}
	if r := f.lastRun(t, task.TypeTrialExpire); r.Status != "ok" || !strings.Contains(r.Detail, `"expired": 1`) || !strings.Contains(r.Detail, `"trialing": 1`) {
		t.Fatalf("trial:expire run: %+v", r)
	}
	if err := f.run(t, task.TypeBillingDunning); err != nil {
		t.Fatal(err)
	}
	if r := f.lastRun(t, task.TypeBillingDunning); r.Status != "ok" || !strings.Contains(r.Detail, `"orgs": 0`) {
		t.Fatalf("billing:dunning run: %+v", r)
	}
	err := f.run(t, task.TypeStripeReconcile)
	if !errors.Is(err, billing.ErrStripeOff) || !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("stripe:reconcile without Stripe: %v", err)
	}
	if r := f.lastRun(t, task.TypeStripeReconcile); r.Status != "failed" || r.Error == nil || !strings.Contains(*r.Error, "STRIPE_SECRET_KEY") {
		t.Fatalf("stripe:reconcile run: %+v", r)
	}
}
