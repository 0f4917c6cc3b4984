package main

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/billing/billingdb"
	"github.com/keelhq/keel/internal/health"
	"github.com/keelhq/keel/internal/httpapi"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/stripetest"
)

// keelctl stripe trigger drives a local stack: each event it posts is
// signed with STRIPE_WEBHOOK_SECRET, accepted by the real webhook, and
// applied for the organization named; replay puts an applied event back
// to pending with a fresh stripe:event task; an unknown event ID or type
// fails with a clear message.
func TestStripeTriggerAndReplay(t *testing.T) {
	db := postgrestest.New(t)
	cat, err := plan.Load("")
	if err != nil {
		t.Fatal(err)
	}
	bill := &billing.Service{DB: db.App, Store: billingdb.Store{}, Plans: cat, WebhookSecrets: []string{stripetest.WebhookSecret}, Log: zerolog.Nop()}
	h, err := httpapi.New(httpapi.Deps{Log: zerolog.Nop(), Health: &health.Checker{}, Billing: bill})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	org := uuid.New()
	if _, err := db.Owner.Exec(`INSERT INTO organizations (id, name) VALUES ($1, 'triggerco')`, org); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Owner.Exec(`INSERT INTO subscriptions (org_id, plan_id, status) VALUES ($1, 'pro', 'trialing')`, org); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DATABASE_URL", db.AppURL)
	t.Setenv("STRIPE_WEBHOOK_SECRET", stripetest.WebhookSecret)
	ctx := context.Background()
	trigger := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(ctx, append([]string{"stripe", "trigger"}, append(args, "--org", org.String(), "--url", srv.URL+"/api/v1/stripe/webhook")...), &out); err != nil {
			t.Fatalf("trigger %v: %v\n%s", args, err, out.String())
		}
		var id string
		if err := db.Owner.Get(&id, `SELECT id FROM stripe_events ORDER BY received_at DESC, id DESC LIMIT 1`); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), id) || !strings.Contains(out.String(), "200 OK") {
			t.Fatalf("trigger %v printed:\n%s", args, out.String())
		}
		if err := bill.ApplyEvent(ctx, id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	trigger("checkout.session.completed")
	trigger("customer.subscription.created", "--plan", "business", "--interval", "year", "--quantity", "2")
	var a billing.Account
	if err := db.Owner.Get(&a, `SELECT status, plan_id, stripe_customer_id, stripe_subscription_id, quantity FROM subscriptions WHERE org_id = $1`, org); err != nil {
		t.Fatal(err)
	}
	short := strings.ReplaceAll(org.String(), "-", "")
	if a.Status != billing.Active || *a.PlanID != "business" || *a.CustomerID != "cus_"+short || *a.SubscriptionID != "sub_"+short || *a.Quantity != 2 {
		t.Fatalf("after checkout and subscription.created: %+v", a)
	}
	trigger("invoice.payment_failed")
	last := trigger("invoice.paid")
	var inv struct {
		N      int    `db:"n"`
		Status string `db:"status"`
	}
	if err := db.Owner.Get(&inv, `SELECT count(*) OVER () AS n, status FROM invoices WHERE org_id = $1`, org); err != nil || inv.N != 1 || inv.Status != "paid" {
		t.Fatalf("failed then paid made %+v (%v), want one paid invoice", inv, err)
	}

	var out bytes.Buffer
	if err := run(ctx, []string{"stripe", "replay", last}, &out); err != nil || !strings.Contains(out.String(), "was applied") {
		t.Fatalf("replay: %v %s", err, out.String())
	}
	var status string
	var tasks int
	if err := db.Owner.Get(&status, `SELECT status FROM stripe_events WHERE id = $1`, last); err != nil || status != billing.EventPending {
		t.Fatalf("after replay the event is %q (%v)", status, err)
	}
	if err := db.Owner.Get(&tasks, `SELECT count(*) FROM outbox WHERE task_type = 'stripe:event' AND convert_from(payload, 'UTF8') LIKE '%' || $1 || '%'`, last); err != nil || tasks != 2 {
		t.Fatalf("%d stripe:event tasks for %s (%v), want 2", tasks, last, err)
	}

	err = run(ctx, []string{"stripe", "replay", "evt_nope"}, &out)
	if err == nil || !strings.Contains(err.Error(), "no Stripe event evt_nope") {
		t.Fatalf("replay of an unknown event: %v", err)
	}
	err = run(ctx, []string{"stripe", "trigger", "charge.refunded", "--org", org.String()}, &out)
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "invoice.payment_failed") {
		t.Fatalf("unknown type: %v", err)
	}
}
