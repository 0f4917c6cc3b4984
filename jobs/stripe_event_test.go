package jobs_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/billing/billingdb"
	"github.com/keelhq/keel/internal/billing/stripeevent"
	"github.com/keelhq/keel/internal/email"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/platform/mail"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/jobs"
	"github.com/keelhq/keel/jobs/task"
)

// stripe:event applies its event; an application that fails is recorded
// on the event (attempts, last_error) and returned so Asynq retries it; an
// event that is not stored fails for good (SkipRetry).
func TestStripeEventHandler(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	cat, err := plan.Load("")
	if err != nil {
		t.Fatal(err)
	}
	bill := &billing.Service{DB: db.App, Store: billingdb.Store{}, Plans: cat, Log: zerolog.Nop()}
	smtp, _ := mail.NewSMTP("smtp://127.0.0.1:1", "x@example.com")
	render, _ := email.NewRenderer("http://localhost", "Keel")
	mux := asynq.NewServeMux()
	if err := jobs.Register(mux, jobs.Deps{DB: db.App, Mail: smtp, Render: render, Billing: bill, Log: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, b := uuid.New(), uuid.New()
	for _, org := range []uuid.UUID{a, b} {
		if _, err := db.Owner.Exec(`INSERT INTO organizations (id, name) VALUES ($1, 'org')`, org); err != nil {
			t.Fatal(err)
		}
	}
	process := func(id string) error {
		tk, err := task.NewStripeEventTask(id)
		if err != nil {
			t.Fatal(err)
		}
		return mux.ProcessTask(ctx, asynq.NewTask(tk.Type, tk.Payload))
	}
	accept := func(f stripeevent.Facts) string {
		t.Helper()
		f.Created = time.Now()
		if _, err := bill.Accept(ctx, stripeevent.MustBuild(billing.EventCheckoutCompleted, f)); err != nil {
			t.Fatal(err)
		}
		return f.EventID
	}
	ok := accept(stripeevent.Facts{EventID: "evt_ok", OrgID: a.String(), CustomerID: "cus_shared"})
	if err := process(ok); err != nil {
		t.Fatal(err)
	}
	// The same customer for another organization cannot be linked: the
	// application fails, and says why on the event.
	bad := accept(stripeevent.Facts{EventID: "evt_conflict", OrgID: b.String(), CustomerID: "cus_shared"})
	for i := 1; i <= 2; i++ {
		err := process(bad)
		if err == nil || errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("conflicting link: %v", err)
		}
		var ev billing.Event
		if err := db.Owner.Get(&ev, `SELECT status, attempts, last_error FROM stripe_events WHERE id = $1`, bad); err != nil {
			t.Fatal(err)
		}
		if ev.Status != billing.EventPending || ev.Attempts != i || !strings.Contains(ev.LastError, "cus_shared") {
			t.Fatalf("after failure %d: %+v", i, ev)
		}
	}
	var linked int
	err = postgres.InTx(ctx, db.App, b, func(tx *sqlx.Tx) error {
		return tx.Get(&linked, `SELECT count(*) FROM billing_customers`)
	})
	if err != nil || linked != 0 {
		t.Fatalf("the failed application left %d links (%v)", linked, err)
	}
	if err := process("evt_missing"); !errors.Is(err, asynq.SkipRetry) || !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("missing event: %v", err)
	}
}
