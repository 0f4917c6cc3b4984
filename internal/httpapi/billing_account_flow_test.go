package httpapi_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/platform/stripetest"
)

// newBillingEnv is an API whose billing calls a private stripe-mock.
func newBillingEnv(t *testing.T) (*env, *stripetest.Server) {
	t.Helper()
	s := stripetest.Start(t)
	return newEnv(t, envOpts{stripe: s.Client}), s
}

type billingDoc struct {
	Plan struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"plan"`
	Status            string     `json:"status"`
	Interval          *string    `json:"interval"`
	TrialEnd          *time.Time `json:"trial_end"`
	CurrentPeriodEnd  *time.Time `json:"current_period_end"`
	CancelAtPeriodEnd bool       `json:"cancel_at_period_end"`
	GraceUntil        *time.Time `json:"grace_until"`
	Usage             []struct {
		Metric string `json:"metric"`
		Used   *int64 `json:"used"`
		Limit  *int64 `json:"limit"`
	} `json:"usage"`
	Invoices []invoiceDoc `json:"invoices"`
}

type invoiceDoc struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

func (e *env) billingState(tok string) billingDoc {
	e.t.Helper()
	var b billingDoc
	e.expect(req{method: "GET", path: "/api/v1/billing", token: tok}, 200, &b)
	return b
}

func subscribe(planID, interval string) map[string]string {
	return map[string]string{"plan": planID, "interval": interval}
}

// setSubscription puts org on a live Stripe subscription, as the webhooks
// would have.
func (e *env) setSubscription(org, planID, interval, status, stripeStatus string) {
	e.t.Helper()
	e.db.Owner.MustExec(`UPDATE subscriptions SET plan_id = $2, billing_interval = $3, status = $4, stripe_status = $5,
		stripe_customer_id = 'cus_keel', stripe_subscription_id = 'sub_keel', stripe_subscription_created = now() - interval '40 days',
		trial_end = NULL, current_period_end = now() + interval '20 days',
		grace_until = CASE WHEN $4 = 'past_due' THEN now() + interval '8 days' END,
		past_due_since = CASE WHEN $4 = 'past_due' THEN now() - interval '2 days' END
		WHERE org_id = $1`, org, planID, interval, status, stripeStatus)
}

func (e *env) countOutbox(org, taskType string) int {
	e.t.Helper()
	var n int
	if err := e.db.Owner.Get(&n, `SELECT count(*) FROM outbox WHERE task_type = $1 AND headers->>'org_id' = $2`, taskType, org); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// A new organization is trialing the default plan: GET /billing shows it
// with its usage and no invoices; the plans list every plan in order.
func TestBillingOverviewOfATrial(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noMail: true})
	owner := e.registerVerifiedLogin("owner@example.com")
	var plans struct {
		Data []struct {
			ID        string   `json:"id"`
			Intervals []string `json:"intervals"`
			PerSeat   bool     `json:"per_seat"`
			Default   bool     `json:"default"`
		} `json:"data"`
	}
	e.expect(req{method: "GET", path: "/api/v1/billing/plans", token: owner.AccessToken}, 200, &plans)
	if len(plans.Data) != 3 || plans.Data[0].ID != "free" || len(plans.Data[0].Intervals) != 0 || !plans.Data[1].Default ||
		strings.Join(plans.Data[2].Intervals, ",") != "month,year" || !plans.Data[2].PerSeat {
		t.Fatalf("plans %+v", plans)
	}
	b := e.billingState(owner.AccessToken)
	if b.Plan.ID != "pro" || b.Status != "trialing" || b.TrialEnd == nil || b.Interval != nil || len(b.Invoices) != 0 {
		t.Fatalf("billing %+v", b)
	}
	if d := time.Until(*b.TrialEnd); d < 13*24*time.Hour || d > 15*24*time.Hour {
		t.Fatalf("trial ends in %s", d)
	}
	if len(b.Usage) != 4 || b.Usage[0].Metric != "seats" || b.Usage[0].Used == nil || *b.Usage[0].Used != 1 ||
		b.Usage[0].Limit == nil || *b.Usage[0].Limit != 20 {
		t.Fatalf("usage %+v", b.Usage)
	}
	// An organization from before billing (no row) is free on the fallback.
	e.db.Owner.MustExec(`DELETE FROM subscriptions WHERE org_id = $1`, owner.OrganizationID)
	if b := e.billingState(owner.AccessToken); b.Plan.ID != "free" || b.Status != "free" {
		t.Fatalf("without a row: %+v", b)
	}
}

// Subscribing without a subscription creates the customer once (keyed by
// the organization) and a Checkout session with the plan's price, the
// trial left, promotion codes and the organization in its metadata; the
// same request again gets the same session key and no second customer.
func TestSubscribeCheckout(t *testing.T) {
	t.Parallel()
	e, s := newBillingEnv(t)
	owner := e.signup("owner@example.com", "Owner", "Acme")
	org := owner.OrganizationID
	var out struct {
		CheckoutURL string `json:"checkout_url"`
	}
	for range 2 {
		e.expect(req{method: "POST", path: "/api/v1/billing/subscribe", token: owner.AccessToken, body: subscribe("pro", "month")}, 200, &out)
		if !strings.HasPrefix(out.CheckoutURL, "https://") {
			t.Fatalf("checkout url %q", out.CheckoutURL)
		}
	}
	customers := s.RequestsTo("POST", "/v1/customers")
	if len(customers) != 1 {
		t.Fatalf("%d customer creations", len(customers))
	}
	c := customers[0]
	if c.IdempotencyKey != "keel-customer-"+org || c.Form.Get("metadata[org_id]") != org || c.Form.Get("email") != "owner@example.com" ||
		c.Form.Get("name") != "Acme" {
		t.Fatalf("customer %+v", c)
	}
	var linked string
	if err := e.db.Owner.Get(&linked, `SELECT stripe_customer_id FROM subscriptions WHERE org_id = $1`, org); err != nil || linked == "" {
		t.Fatalf("customer not saved: %q %v", linked, err)
	}
	sessions := s.RequestsTo("POST", "/v1/checkout/sessions")
	if len(sessions) != 2 || sessions[0].IdempotencyKey != sessions[1].IdempotencyKey ||
		!strings.HasPrefix(sessions[0].IdempotencyKey, "keel-checkout-"+org+"-pro-month-") {
		t.Fatalf("sessions %+v", sessions)
	}
	f := sessions[0].Form
	for k, want := range map[string]string{
		"mode": "subscription", "customer": linked, "line_items[0][price]": "price_keel_pro_monthly", "line_items[0][quantity]": "1",
		"allow_promotion_codes": "true", "subscription_data[metadata][org_id]": org, "subscription_data[trial_period_days]": "14",
		"client_reference_id": org, "metadata[org_id]": org,
		"success_url": baseURL + "/billing?checkout=success", "cancel_url": baseURL + "/billing?checkout=canceled",
	} {
		if got := f.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	assertAudit(t, e, org, "billing.checkout_started")
	// The audit row names the Stripe customer and session, so support (and
	// the browser tests, through the audit log API) can match Stripe's
	// records and events to the organization.
	var details struct {
		Customer string `json:"customer"`
		Session  string `json:"session"`
	}
	var raw []byte
	if err := e.db.Owner.Get(&raw, `SELECT details FROM audit_log WHERE org_id = $1 AND action = 'billing.checkout_started' LIMIT 1`, org); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &details); err != nil || details.Customer != linked || !strings.HasPrefix(details.Session, "cs_") {
		t.Errorf("checkout_started details %s (%v), want customer %s and a session", raw, err, linked)
	}

	// Per seat: the quantity is the member count; another plan is another
	// operation, with its own key.
	e.join(owner, "member@example.com", "member", 1)
	e.expect(req{method: "POST", path: "/api/v1/billing/subscribe", token: owner.AccessToken, body: subscribe("business", "year")}, 200, &out)
	sessions = s.RequestsTo("POST", "/v1/checkout/sessions")
	last := sessions[len(sessions)-1]
	if last.Form.Get("line_items[0][price]") != "price_keel_business_yearly" || last.Form.Get("line_items[0][quantity]") != "2" ||
		last.IdempotencyKey == sessions[0].IdempotencyKey {
		t.Fatalf("business session %+v", last)
	}
	if n := len(s.RequestsTo("POST", "/v1/customers")); n != 1 {
		t.Fatalf("%d customer creations", n)
	}

	// The portal opens on the customer and returns to /billing.
	var portal struct {
		PortalURL string `json:"portal_url"`
	}
	e.expect(req{method: "POST", path: "/api/v1/billing/portal", token: owner.AccessToken}, 200, &portal)
	ps := s.RequestsTo("POST", "/v1/billing_portal/sessions")
	if portal.PortalURL == "" || len(ps) != 1 || ps[0].Form.Get("customer") != linked || ps[0].Form.Get("return_url") != baseURL+"/billing" {
		t.Fatalf("portal %q %+v", portal.PortalURL, ps)
	}
}

// Only an owner, signed in, with a verified email subscribes or opens the
// portal; bad plans and intervals are refused before anything reaches
// Stripe.
func TestSubscribeRefusals(t *testing.T) {
	t.Parallel()
	e, s := newBillingEnv(t)
	owner := e.signup("owner@example.com", "Owner", "Acme")
	admin := e.join(owner, "admin@example.com", "admin", 1)
	member := e.join(owner, "member@example.com", "member", 1)
	_, key := e.apiKey(owner.AccessToken, "ci", "admin")
	for _, tok := range []string{admin.AccessToken, member.AccessToken} {
		e.problem(req{method: "POST", path: "/api/v1/billing/subscribe", token: tok, body: subscribe("pro", "month")}, 403, "forbidden")
		e.problem(req{method: "POST", path: "/api/v1/billing/portal", token: tok}, 403, "forbidden")
		e.billingState(tok) // reading is for every member
	}
	e.problem(req{method: "POST", path: "/api/v1/billing/subscribe", token: key, body: subscribe("pro", "month")}, 403, "user_required")
	e.problem(req{method: "POST", path: "/api/v1/billing/portal", token: key}, 403, "user_required")
	e.problem(req{method: "POST", path: "/api/v1/billing/subscribe", token: owner.AccessToken, body: subscribe("gold", "month")}, 400, "validation_failed")
	e.problem(req{method: "POST", path: "/api/v1/billing/subscribe", token: owner.AccessToken, body: subscribe("pro", "weekly")}, 400, "validation_failed")
	e.problem(req{method: "POST", path: "/api/v1/billing/subscribe", token: owner.AccessToken, body: `{"plan":"pro"}`}, 400, "validation_failed")
	e.problem(req{method: "POST", path: "/api/v1/billing/subscribe", token: owner.AccessToken, body: subscribe("free", "month")}, 422, "plan_not_purchasable")
	e.problem(req{method: "POST", path: "/api/v1/billing/portal", token: owner.AccessToken}, 409, "no_billing_account")
	e.db.Owner.MustExec(`UPDATE users SET email_verified_at = NULL WHERE email = 'owner@example.com'`)
	e.problem(req{method: "POST", path: "/api/v1/billing/subscribe", token: owner.AccessToken, body: subscribe("pro", "month")}, 403, "email_not_verified")
	if got := s.Requests(); len(got) != 0 {
		t.Fatalf("Stripe was called: %+v", got)
	}
}

// Without Stripe configured, what needs it answers 503; reading works.
func TestSubscribeWithoutStripe(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noMail: true})
	owner := e.registerVerifiedLogin("owner@example.com")
	e.problem(req{method: "POST", path: "/api/v1/billing/subscribe", token: owner.AccessToken, body: subscribe("pro", "month")}, 503, "billing_unavailable")
	e.problem(req{method: "POST", path: "/api/v1/billing/portal", token: owner.AccessToken}, 503, "billing_unavailable")
	e.billingState(owner.AccessToken)
}

// With a live subscription, subscribing changes plans: an upgrade now, a
// downgrade at the period's end, each one billing:change-plan task; the
// same plan is a conflict; an unpaid subscription must be paid first.
func TestSubscribePlanChange(t *testing.T) {
	t.Parallel()
	e, s := newBillingEnv(t)
	owner := e.registerVerifiedLogin("owner@example.com")
	org := owner.OrganizationID
	e.setSubscription(org, "pro", "month", "active", "active")
	if b := e.billingState(owner.AccessToken); b.Status != "active" || b.Plan.ID != "pro" || b.Interval == nil || *b.Interval != "month" ||
		b.CurrentPeriodEnd == nil || b.TrialEnd != nil || b.GraceUntil != nil || len(b.Invoices) != 0 {
		t.Fatalf("active: %+v", b)
	}
	post := func(planID, interval string, status int, out any) {
		t.Helper()
		e.expect(req{method: "POST", path: "/api/v1/billing/subscribe", token: owner.AccessToken, body: subscribe(planID, interval)}, status, out)
	}
	e.problem(req{method: "POST", path: "/api/v1/billing/subscribe", token: owner.AccessToken, body: subscribe("pro", "month")}, 409, "already_subscribed")
	type change struct {
		Change struct{ Plan, Interval, Effective string } `json:"change"`
	}
	for i, c := range []struct {
		planID, interval, effective string
	}{
		{"business", "month", "now"},
		{"pro", "year", "now"},
	} {
		var got change
		post(c.planID, c.interval, 202, &got)
		if got.Change.Plan != c.planID || got.Change.Interval != c.interval || got.Change.Effective != c.effective {
			t.Fatalf("%+v: %+v", c, got)
		}
		if n := e.countOutbox(org, "billing:change-plan"); n != i+1 {
			t.Fatalf("%d change tasks", n)
		}
	}
	e.setSubscription(org, "business", "year", "past_due", "past_due")
	var got change
	post("pro", "year", 202, &got)
	if got.Change.Effective != "period_end" {
		t.Fatalf("downgrade: %+v", got)
	}
	post("business", "month", 202, &got)
	if got.Change.Effective != "period_end" {
		t.Fatalf("yearly to monthly: %+v", got)
	}
	assertAudit(t, e, org, "billing.plan_change_requested")
	e.setSubscription(org, "business", "year", "read_only", "unpaid")
	e.problem(req{method: "POST", path: "/api/v1/billing/subscribe", token: owner.AccessToken, body: subscribe("pro", "year")}, 409, "subscription_unpaid")
	// A canceled subscription is history: subscribing again is a Checkout.
	e.setSubscription(org, "business", "year", "canceled", "canceled")
	var co struct {
		CheckoutURL string `json:"checkout_url"`
	}
	post("pro", "month", 200, &co)
	sessions := s.RequestsTo("POST", "/v1/checkout/sessions")
	if co.CheckoutURL == "" || len(sessions) != 1 || sessions[0].Form.Get("customer") != "cus_keel" ||
		sessions[0].Form.Get("subscription_data[trial_period_days]") != "" {
		t.Fatalf("resubscribe: %+v", sessions)
	}
	if n := len(s.RequestsTo("POST", "/v1/customers")); n != 0 {
		t.Fatalf("a known customer was created again (%d)", n)
	}
}

// A past_due organization shows its grace period and its newest invoices;
// the invoice list pages newest first without repeats.
func TestBillingPastDueAndInvoices(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noMail: true})
	owner := e.registerVerifiedLogin("owner@example.com")
	org := owner.OrganizationID
	e.setSubscription(org, "business", "month", "past_due", "past_due")
	base := time.Now().Add(-100 * 24 * time.Hour).UTC()
	for i := range 7 {
		status := "paid"
		if i == 6 {
			status = "open"
		}
		// Two invoices share a creation time: the ID breaks the tie.
		at := base.Add(time.Duration(min(i, 5)) * 24 * time.Hour)
		e.db.Owner.MustExec(`INSERT INTO invoices (org_id, stripe_invoice_id, stripe_subscription_id, status, currency, amount_due, stripe_created)
			VALUES ($1, $2, 'sub_keel', $3, 'usd', 4900, $4)`, org, fmt.Sprintf("in_%d", i), status, at)
	}
	b := e.billingState(owner.AccessToken)
	if b.Status != "past_due" || b.Plan.ID != "business" || b.GraceUntil == nil || b.CurrentPeriodEnd == nil ||
		b.Interval == nil || *b.Interval != "month" || len(b.Invoices) != 5 || b.Invoices[0].ID != "in_6" || b.Invoices[1].ID != "in_5" {
		t.Fatalf("billing %+v", b)
	}
	var ids []string
	cursor := ""
	for page := 0; ; page++ {
		var p struct {
			Data       []invoiceDoc `json:"data"`
			NextCursor string       `json:"next_cursor"`
		}
		path := "/api/v1/billing/invoices?limit=3"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		e.expect(req{method: "GET", path: path, token: owner.AccessToken}, 200, &p)
		for _, inv := range p.Data {
			ids = append(ids, inv.ID)
		}
		if p.NextCursor == "" {
			break
		}
		if page > 3 {
			t.Fatal("too many pages")
		}
		cursor = p.NextCursor
	}
	if strings.Join(ids, ",") != "in_6,in_5,in_4,in_3,in_2,in_1,in_0" {
		t.Fatalf("pages %v", ids)
	}
	e.problem(req{method: "GET", path: "/api/v1/billing/invoices?cursor=bm9wZQ", token: owner.AccessToken}, 400, "validation_failed")
	e.problem(req{method: "GET", path: "/api/v1/billing/invoices?limit=101", token: owner.AccessToken}, 400, "validation_failed")
}

// On a per-seat plan with a subscription, each membership change (a join
// through an invitation, a removal) queues exactly one seat sync; on a
// plan that is not per seat, none.
func TestMembershipChangeQueuesSeatSync(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	owner := e.signup("owner@example.com", "Owner", "Acme")
	org := owner.OrganizationID
	e.setSubscription(org, "pro", "month", "active", "active")
	e.join(owner, "first@example.com", "member", 1)
	if n := e.countOutbox(org, "billing:sync-seats"); n != 0 {
		t.Fatalf("pro plan: %d syncs", n)
	}
	e.setSubscription(org, "business", "month", "active", "active")
	e.join(owner, "second@example.com", "member", 1)
	if n := e.countOutbox(org, "billing:sync-seats"); n != 1 {
		t.Fatalf("after a join: %d syncs", n)
	}
	e.expect(req{method: "DELETE", path: "/api/v1/organizations/current/members/" + e.userIDOf("second@example.com").String(),
		token: owner.AccessToken}, 204, nil)
	if n := e.countOutbox(org, "billing:sync-seats"); n != 2 {
		t.Fatalf("after a removal: %d syncs", n)
	}
}
