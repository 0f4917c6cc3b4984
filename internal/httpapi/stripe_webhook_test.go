package httpapi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/billing/stripeevent"
	"github.com/keelhq/keel/internal/platform/stripetest"
)

// metric sums the counters of name in reg whose labels include labels
// ("k=v"); 0 when none has been counted.
func metric(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, want := range labels {
				found := false
				for _, l := range m.GetLabel() {
					found = found || l.GetName()+"="+l.GetValue() == want
				}
				if !found {
					continue next
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// Bad signatures answer 400 invalid_signature and store nothing (no
// stripe_events row, no outbox row); the previous secret works during a
// rotation; a redelivery answers 200 duplicate and stores nothing more.
func TestStripeWebhookSignature(t *testing.T) {
	t.Parallel()
	e := newHookEnv(t, time.Now())
	payload := stripeevent.MustBuild(billing.EventInvoicePaid, stripeevent.Facts{OrgID: uuid.NewString(), EventID: "evt_sig"})
	now := time.Now()
	tampered := bytes.Replace(payload, []byte(`"amount_paid":2900`), []byte(`"amount_paid":1`), 1)
	if bytes.Equal(tampered, payload) {
		t.Fatal("tampering changed nothing")
	}
	bad := []struct {
		name string
		body []byte
		sig  string
	}{
		{"wrong secret", payload, stripeevent.Sign(payload, "whsec_someone_else", now)},
		{"tampered body", tampered, stripeevent.Sign(payload, stripetest.WebhookSecret, now)},
		{"stale timestamp", payload, stripeevent.Sign(payload, stripetest.WebhookSecret, now.Add(-10*time.Minute))},
		{"missing header", payload, ""},
		{"malformed header", payload, "t=yesterday,v1=zz"},
		{"signature of another time", payload, strings.Replace(stripeevent.Sign(payload, stripetest.WebhookSecret, now), fmt.Sprint(now.Unix()), fmt.Sprint(now.Unix()-1), 1)},
	}
	for _, c := range bad {
		w := e.deliverSigned(c.body, c.sig)
		if w.Code != 400 || problemCode(w) != "invalid_signature" {
			t.Errorf("%s: %d %s", c.name, w.Code, w.Body)
		}
		if ev, tasks := e.stored(); ev != 0 || tasks != 0 {
			t.Fatalf("%s: stored %d events and %d outbox rows", c.name, ev, tasks)
		}
	}
	if n := metric(t, e.reg, "billing_webhook_deliveries_total", "result=bad_signature"); n != float64(len(bad)) {
		t.Errorf("bad_signature counted %v times, want %d", n, len(bad))
	}

	// During a rotation Stripe signs with the new secret only once the
	// endpoint rolled; until then the previous one is still good.
	w := e.deliver(payload, previousSecret)
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"received":true}` {
		t.Fatalf("previous secret: %d %s", w.Code, w.Body)
	}
	for range 2 {
		w = e.deliver(payload, stripetest.WebhookSecret)
		if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"duplicate":true,"received":true}` {
			t.Fatalf("duplicate: %d %s", w.Code, w.Body)
		}
	}
	if ev, tasks := e.stored(); ev != 1 || tasks != 1 {
		t.Fatalf("after one event delivered 3 times: %d events, %d outbox rows", ev, tasks)
	}
	var got billing.Event
	if err := e.db.Owner.Get(&got, `SELECT id, type, api_version, status, created FROM stripe_events`); err != nil {
		t.Fatal(err)
	}
	if got.ID != "evt_sig" || got.Type != billing.EventInvoicePaid || got.APIVersion != billing.APIVersion || got.Status != billing.EventPending {
		t.Fatalf("stored %+v", got)
	}
	if metric(t, e.reg, "billing_webhook_deliveries_total", "result=stored") != 1 || metric(t, e.reg, "billing_webhook_deliveries_total", "result=duplicate") != 2 {
		t.Error("stored/duplicate not counted")
	}

	// A well-signed body that is not an event, and one over the cap.
	junk := []byte(`{"hello":"world"}`)
	if w := e.deliver(junk, stripetest.WebhookSecret); w.Code != 400 || problemCode(w) != "invalid_event" {
		t.Errorf("not an event: %d %s", w.Code, w.Body)
	}
	big := append(bytes.Repeat([]byte(" "), 513<<10), payload...)
	if w := e.deliver(big, stripetest.WebhookSecret); w.Code != 413 {
		t.Errorf("oversized body: %d %s", w.Code, w.Body)
	}
	if ev, tasks := e.stored(); ev != 1 || tasks != 1 {
		t.Fatalf("bad bodies stored something: %d events, %d outbox rows", ev, tasks)
	}

	// Without a secret the endpoint cannot verify anything.
	e.bill.WebhookSecrets = nil
	if w := e.deliver(payload, stripetest.WebhookSecret); w.Code != 503 || problemCode(w) != "billing_unavailable" {
		t.Errorf("no secret: %d %s", w.Code, w.Body)
	}
}

// Events Keel does not read are stored and marked ignored, with why: an
// unhandled type, another API version (counted: the endpoint is
// misconfigured), a customer no organization has. None writes audit.
// Applying an event twice does nothing the second time.
func TestStripeEventsIgnored(t *testing.T) {
	t.Parallel()
	e := newHookEnv(t, time.Now())
	org := uuid.New()
	e.newOrg(org, "ignoreco")
	ctx := context.Background()
	unknownType := []byte(fmt.Sprintf(`{"id":"evt_unhandled","object":"event","api_version":%q,"created":%d,"type":"customer.updated","data":{"object":{"id":"cus_x"}}}`,
		billing.APIVersion, time.Now().Unix()))
	otherVersion := bytes.Replace(stripeevent.MustBuild(billing.EventSubscriptionUpdated, stripeevent.Facts{OrgID: org.String(), EventID: "evt_version"}),
		[]byte(`"api_version":"`+billing.APIVersion+`"`), []byte(`"api_version":"2024-06-20"`), 1)
	unknownCustomer := stripeevent.MustBuild(billing.EventSubscriptionUpdated, stripeevent.Facts{EventID: "evt_stranger", CustomerID: "cus_stranger"})
	unknownOrg := stripeevent.MustBuild(billing.EventCheckoutCompleted, stripeevent.Facts{EventID: "evt_noorg", OrgID: uuid.NewString()})
	want := map[string]string{
		"evt_unhandled": "unhandled type",
		"evt_version":   `api version "2024-06-20" is not 2023-10-16`,
		"evt_stranger":  "unknown customer cus_stranger",
		"evt_noorg":     "unknown organization",
	}
	for _, p := range [][]byte{unknownType, otherVersion, unknownCustomer, unknownOrg} {
		if w := e.deliver(p, stripetest.WebhookSecret); w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		id := eventID(t, p)
		for range 2 {
			if err := e.bill.ApplyEvent(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		var got billing.Event
		if err := e.db.Owner.Get(&got, `SELECT status, note, attempts FROM stripe_events WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
		if got.Status != billing.EventIgnored || !strings.HasPrefix(got.Note, want[id]) || got.Attempts != 1 {
			t.Errorf("%s: %+v, want ignored with note %q", id, got, want[id])
		}
	}
	if n := metric(t, e.reg, "billing_events_api_version_mismatch_total"); n != 1 {
		t.Errorf("version mismatch counted %v times", n)
	}
	if n := metric(t, e.reg, "billing_events_total", "result=ignored"); n != 4 {
		t.Errorf("ignored counted %v times", n)
	}
	if n := e.count(`SELECT count(*) FROM audit_log WHERE target_type = 'stripe_event'`); n != 0 {
		t.Errorf("%d audit rows for ignored events", n)
	}
	if a := e.account(org); a.SubscriptionID != nil || a.Status != billing.Trialing {
		t.Errorf("ignored events changed the account: %s", pretty(a))
	}
	if err := e.bill.ApplyEvent(ctx, "evt_never_stored"); !errors.Is(err, billing.ErrNotFound) {
		t.Errorf("missing event: %v", err)
	}
}

// An older event never overwrites newer state: two updates of one
// subscription applied newest first leave the newest's plan and status,
// and both are audited. A canceled subscription stays canceled whatever
// comes after it.
func TestStripeOlderEventNeverOverwrites(t *testing.T) {
	t.Parallel()
	e := newHookEnv(t, time.Now())
	org := uuid.New()
	e.newOrg(org, "orderco")
	ctx := context.Background()
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	base := stripeevent.Facts{OrgID: org.String(), CustomerID: "cus_order", SubscriptionID: "sub_order", SubscriptionCreated: t0.Add(-24 * time.Hour)}
	older, newer, deleted, after := base, base, base, base
	older.EventID, older.Created, older.Status = "evt_older", t0, "past_due"
	newer.EventID, newer.Created, newer.PriceID, newer.Quantity = "evt_newer", t0.Add(time.Minute), "price_keel_business_yearly", 4
	deleted.EventID, deleted.Created = "evt_deleted", t0.Add(2*time.Minute)
	after.EventID, after.Created = "evt_after", t0.Add(3*time.Minute) // a later "updated" of the canceled subscription
	apply := func(typ string, f stripeevent.Facts) {
		t.Helper()
		if w := e.deliver(stripeevent.MustBuild(typ, f), stripetest.WebhookSecret); w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		if err := e.bill.ApplyEvent(ctx, f.EventID); err != nil {
			t.Fatal(err)
		}
	}
	apply(billing.EventSubscriptionUpdated, newer)
	apply(billing.EventSubscriptionUpdated, older)
	a := e.account(org)
	if a.Status != billing.Active || a.PlanID == nil || *a.PlanID != "business" || *a.Interval != "year" || *a.Quantity != 4 || *a.EventID != "evt_newer" {
		t.Fatalf("older event overwrote newer state:\n%s", pretty(a))
	}
	if n := e.count(`SELECT count(*) FROM audit_log WHERE action = 'billing.customer.subscription.updated' AND org_id = $1`, org); n != 2 {
		t.Errorf("%d audit rows, want 2", n)
	}
	apply(billing.EventSubscriptionDeleted, deleted)
	apply(billing.EventSubscriptionUpdated, after)
	if a := e.account(org); a.Status != billing.Canceled || a.Plan(e.bill.Plans).ID != "free" {
		t.Fatalf("a later update revived a canceled subscription:\n%s", pretty(a))
	}
}
