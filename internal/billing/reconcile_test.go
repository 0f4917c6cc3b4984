package billing_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/platform/stripetest"
)

// link records customer as org's Stripe customer, as Checkout does.
func (e *periodicEnv) link(t *testing.T, org uuid.UUID, customer string) {
	t.Helper()
	e.inTx(t, org, func(tx *sqlx.Tx) error { return e.svc.Store.LinkCustomer(context.Background(), tx, customer, org) })
}

func activePro(org uuid.UUID, at time.Time, id string) billing.Snapshot {
	end := t0.Add(30 * day)
	return billing.Snapshot{ID: "sub_" + org.String()[:8], CustomerID: "cus_" + org.String()[:8], Status: "active",
		PriceID: "price_keel_pro_monthly", Quantity: 1, Created: t0, CurrentPeriodEnd: &end, EventAt: at, EventID: id}
}

// Against stripe-mock, which answers every list with canned objects: the
// subscriptions of each linked customer are listed with status=all, the
// canned subscription (another customer's) changes nothing, and the
// canned events of the last 3 days are stored and queued once.
func TestReconcileAgainstStripeMock(t *testing.T) {
	t.Parallel()
	e := newPeriodicEnv(t)
	s := stripetest.Start(t)
	e.svc.Stripe = s.Client
	reg := prometheus.NewRegistry()
	e.svc.Metrics = billing.NewMetrics(reg)
	org, _ := e.org(t, "Acme")
	snap := activePro(org, t0, "evt_1")
	e.apply(t, org, snap)
	e.link(t, org, snap.CustomerID)
	before := e.account(t, org)

	r, err := e.svc.Reconcile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Customers != 1 || r.Repaired != 0 || r.Foreign != 1 || r.Backfilled == 0 {
		t.Fatalf("first run: %+v", r)
	}
	t.Logf("first run against stripe-mock: %+v", r)
	subs := s.RequestsTo("GET", "/v1/subscriptions")
	if len(subs) != 1 || subs[0].Form.Get("customer") != snap.CustomerID || subs[0].Form.Get("status") != "all" {
		t.Fatalf("subscription list requests: %+v", subs)
	}
	evs := s.RequestsTo("GET", "/v1/events")
	if len(evs) != 1 {
		t.Fatalf("event list requests: %+v", evs)
	}
	if got, want := evs[0].Form.Get("created[gte]"), e.clock.Now().Add(-billing.BackfillWindow).Unix(); got != itoa(want) {
		t.Fatalf("created[gte] = %s, want %d", got, want)
	}
	for i, typ := range billing.ReconcileEventTypes {
		if got := evs[0].Form.Get("types[" + itoa(int64(i)) + "]"); got != typ {
			t.Fatalf("types[%d] = %q, want %q (%v)", i, got, typ, evs[0].Form)
		}
	}
	after := e.account(t, org)
	if after.Status != billing.Active || *after.CustomerID != snap.CustomerID || *after.SubscriptionID != snap.ID || *after.EventID != "evt_1" {
		t.Fatalf("the canned subscription changed the organization: %+v", after)
	}
	if after.Version != before.Version {
		t.Fatalf("version %d -> %d", before.Version, after.Version)
	}

	var stored []struct {
		ID      string `db:"id"`
		Payload []byte `db:"payload"`
		Status  string `db:"status"`
	}
	if err := e.db.Owner.Select(&stored, `SELECT id, payload, status FROM stripe_events`); err != nil {
		t.Fatal(err)
	}
	if len(stored) != r.Backfilled {
		t.Fatalf("%d events stored, %d reported", len(stored), r.Backfilled)
	}
	for _, ev := range stored {
		var head struct {
			ID     string `json:"id"`
			Object string `json:"object"`
			Type   string `json:"type"`
			Data   struct {
				Object map[string]any `json:"object"`
			} `json:"data"`
		}
		if err := json.Unmarshal(ev.Payload, &head); err != nil || head.ID != ev.ID || head.Object != "event" || head.Type == "" || len(head.Data.Object) == 0 {
			t.Fatalf("stored payload is not the event: %s (%v)", ev.Payload, err)
		}
		if ev.Status != billing.EventPending {
			t.Fatalf("event %s is %s", ev.ID, ev.Status)
		}
	}
	var queued int
	if err := e.db.Owner.Get(&queued, `SELECT count(*) FROM outbox WHERE task_type = 'stripe:event'`); err != nil || queued != r.Backfilled {
		t.Fatalf("%d stripe:event rows queued (%v), want %d", queued, err, r.Backfilled)
	}
	if n := gauge(t, reg, "event"); n != float64(r.Backfilled) {
		t.Fatalf("billing_drift_repaired_total{kind=event} = %v", n)
	}

	r2, err := e.svc.Reconcile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r2.Backfilled != 0 || r2.Repaired != 0 {
		t.Fatalf("second run: %+v", r2)
	}
	if err := e.db.Owner.Get(&queued, `SELECT count(*) FROM outbox WHERE task_type = 'stripe:event'`); err != nil || queued != r.Backfilled {
		t.Fatalf("%d stripe:event rows after the second run (%v)", queued, err)
	}
	if n := gauge(t, reg, "event"); n != float64(r.Backfilled) {
		t.Fatalf("billing_drift_repaired_total{kind=event} = %v after the second run", n)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "billing_drift_repaired_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func (e *periodicEnv) reconcile(t *testing.T, org uuid.UUID, snap billing.Snapshot) bool {
	t.Helper()
	var changed bool
	e.inTx(t, org, func(tx *sqlx.Tx) (err error) {
		changed, err = e.svc.ReconcileSnapshot(context.Background(), tx, org, snap)
		return err
	})
	return changed
}

// The repair itself, with snapshots as a fetch builds them: drift is
// repaired, audited with what changed, and counted; a fetch agreeing with
// the row repairs nothing; an event newer than the fetch keeps its state.
func TestReconcileSnapshotRepairsDrift(t *testing.T) {
	t.Parallel()
	e := newPeriodicEnv(t)
	ctx := context.Background()

	// No drift: Stripe says what the row holds.
	calm, _ := e.org(t, "Calm")
	e.apply(t, calm, activePro(calm, t0, "evt_1"))
	e.clock.Set(t0.Add(time.Hour))
	if e.reconcile(t, calm, activePro(calm, t0.Add(time.Hour), "reconcile:1")) {
		t.Fatal("a fetch equal to the row counted as a repair")
	}
	if n := e.audits(t, calm, "billing.reconciled"); n != 0 {
		t.Fatalf("%d billing.reconciled rows without drift", n)
	}

	// Drift: the row says active, Stripe says canceled (the deletion event
	// was lost). The fetch is newer than the row's event and wins.
	lost, _ := e.org(t, "Lost")
	e.apply(t, lost, activePro(lost, t0, "evt_1"))
	canceled := activePro(lost, t0.Add(2*time.Hour), "reconcile:2")
	canceled.Status = "canceled"
	e.clock.Set(t0.Add(2 * time.Hour))
	if !e.reconcile(t, lost, canceled) {
		t.Fatal("drift not repaired")
	}
	if a := e.account(t, lost); a.Status != billing.Canceled || a.Plan(e.svc.Plans).ID != e.svc.Plans.Fallback {
		t.Fatalf("after the repair: %s on %s", a.Status, a.Plan(e.svc.Plans).ID)
	}
	var details string
	if err := e.db.Owner.Get(&details, `SELECT details::text FROM audit_log WHERE org_id = $1 AND action = 'billing.reconciled'`, lost); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"status": {"to": "canceled", "from": "active"}`, `"stripe_status": {"to": "canceled", "from": "active"}`} {
		if !strings.Contains(details, want) {
			t.Fatalf("audit details %s lack %s", details, want)
		}
	}
	if e.reconcile(t, lost, canceled) {
		t.Fatal("the same fetch again counted as a repair")
	}

	// An event newer than the fetch (created after it started) keeps its
	// state: the fetch is stale and changes nothing.
	fresh, _ := e.org(t, "Fresh")
	e.apply(t, fresh, activePro(fresh, t0.Add(3*time.Hour), "evt_9"))
	stale := activePro(fresh, t0.Add(2*time.Hour), "reconcile:3")
	stale.Status = "past_due"
	if e.reconcile(t, fresh, stale) {
		t.Fatal("a fetch older than the row's event repaired it")
	}
	if a := e.account(t, fresh); a.Status != billing.Active || *a.EventID != "evt_9" {
		t.Fatalf("the stale fetch changed the row: %s %s", a.Status, *a.EventID)
	}

	// A price plans.yaml does not know: the plan is kept, the status is
	// Stripe's, nothing crashes.
	odd, _ := e.org(t, "Odd")
	e.apply(t, odd, activePro(odd, t0, "evt_1"))
	unknown := activePro(odd, t0.Add(4*time.Hour), "reconcile:4")
	unknown.PriceID, unknown.Status = "price_not_in_the_catalog", "past_due"
	e.clock.Set(t0.Add(4 * time.Hour))
	if !e.reconcile(t, odd, unknown) {
		t.Fatal("a status change with an unknown price not repaired")
	}
	if a := e.account(t, odd); a.Status != billing.PastDue || *a.PlanID != "pro" {
		t.Fatalf("unknown price: %s on %v", a.Status, *a.PlanID)
	}
	_ = ctx
}

// Without Stripe, reconciliation fails saying so; keelctl's one-org sync
// names an unknown organization and one without a customer.
func TestReconcileErrors(t *testing.T) {
	t.Parallel()
	e := newPeriodicEnv(t)
	ctx := context.Background()
	if _, err := e.svc.Reconcile(ctx); !errors.Is(err, billing.ErrStripeOff) {
		t.Fatalf("without Stripe: %v", err)
	}
	s := stripetest.Start(t)
	e.svc.Stripe = s.Client
	missing := uuid.New()
	if _, err := e.svc.ReconcileOrg(ctx, missing); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("unknown organization: %v", err)
	}
	org, _ := e.org(t, "Never paid")
	if _, err := e.svc.ReconcileOrg(ctx, org); err == nil || !strings.Contains(err.Error(), "no Stripe customer") {
		t.Fatalf("no customer: %v", err)
	}
	e.link(t, org, "cus_never")
	r, err := e.svc.ReconcileOrg(ctx, org)
	if err != nil || r.Customers != 1 || r.Backfilled != 0 {
		t.Fatalf("one organization: %+v %v", r, err)
	}
	if got := s.RequestsTo("GET", "/v1/subscriptions"); len(got) != 1 || got[0].Form.Get("customer") != "cus_never" {
		t.Fatalf("requests %+v", got)
	}
	if got := s.RequestsTo("GET", "/v1/events"); len(got) != 0 {
		t.Fatalf("a one-organization sync listed events: %+v", got)
	}
}
