package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/billing/billingdb"
	"github.com/keelhq/keel/internal/billing/stripeevent"
	"github.com/keelhq/keel/internal/health"
	"github.com/keelhq/keel/internal/httpapi"
	"github.com/keelhq/keel/internal/httpapi/apitest"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/platform/clock/clocktest"
	"github.com/keelhq/keel/internal/platform/mailtest"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/redistest"
	"github.com/keelhq/keel/internal/platform/stripetest"
	"github.com/keelhq/keel/jobs"
	"github.com/keelhq/keel/jobs/task"
)

// previousSecret is the secret of a rotation's previous endpoint secret.
const previousSecret = "whsec_keel_previous_secret"

// hookEnv is the API with billing only (the webhook), on a fresh database,
// with billing's clock fake and its metrics on a private registry.
type hookEnv struct {
	t     testing.TB
	db    *postgrestest.DB
	h     http.Handler
	bill  *billing.Service
	clock *clocktest.Fake
	reg   *prometheus.Registry
	mail  *mailtest.Server
}

func newHookEnv(t testing.TB, now time.Time) *hookEnv {
	t.Helper()
	cat, err := plan.Load("")
	if err != nil {
		t.Fatal(err)
	}
	e := &hookEnv{t: t, db: postgrestest.New(t), clock: clocktest.New(now), reg: prometheus.NewRegistry()}
	e.bill = &billing.Service{DB: e.db.App, Store: billingdb.Store{}, Plans: cat, BaseURL: baseURL,
		WebhookSecrets: []string{stripetest.WebhookSecret, previousSecret}, Now: e.clock.Now,
		Metrics: billing.NewMetrics(e.reg), Log: zerolog.Nop()}
	e.h, err = httpapi.New(httpapi.Deps{Log: zerolog.Nop(), Health: &health.Checker{}, Billing: e.bill})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// newOrg creates an organization with an owner (owner@<name>.test) and its
// billing row, as signup does; fixed IDs make runs comparable.
func (e *hookEnv) newOrg(id uuid.UUID, name string) {
	e.t.Helper()
	user := uuid.NewSHA1(id, []byte("owner"))
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO users (id, email, name, password_hash, email_verified_at) VALUES ($1, $2, 'Owner', 'x', now())`, []any{user, "owner@" + name + ".test"}},
		{`INSERT INTO organizations (id, name) VALUES ($1, $2)`, []any{id, name}},
		{`INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, 'owner')`, []any{id, user}},
	} {
		if _, err := e.db.Owner.Exec(q.sql, q.args...); err != nil {
			e.t.Fatal(err)
		}
	}
	err := postgres.InTx(context.Background(), e.db.App, id, func(tx *sqlx.Tx) error { return e.bill.StartOrg(context.Background(), tx, id) })
	if err != nil {
		e.t.Fatal(err)
	}
}

// deliver posts a signed delivery of payload (signed now with secret)
// through the router, checked against the OpenAPI document.
func (e *hookEnv) deliver(payload []byte, secret string) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.deliverSigned(payload, stripeevent.Sign(payload, secret, time.Now()))
}

func (e *hookEnv) deliverSigned(payload []byte, sig string) *httptest.ResponseRecorder {
	e.t.Helper()
	r := httptest.NewRequest("POST", "/api/v1/stripe/webhook", bytes.NewReader(payload))
	r.Header.Set("Content-Type", "application/json")
	if sig != "" {
		r.Header.Set("Stripe-Signature", sig)
	}
	return apitest.Do(e.t, e.h, r)
}

// rawDeliver is deliver without the document check, safe from any
// goroutine.
func (e *hookEnv) rawDeliver(payload []byte) (int, string) {
	r := httptest.NewRequest("POST", "/api/v1/stripe/webhook", bytes.NewReader(payload))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Stripe-Signature", stripeevent.Sign(payload, stripetest.WebhookSecret, time.Now()))
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func (e *hookEnv) count(q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.db.Owner.Get(&n, q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// stored counts the inbox rows and the stripe:event outbox rows.
func (e *hookEnv) stored() (events, tasks int) {
	return e.count(`SELECT count(*) FROM stripe_events`),
		e.count(`SELECT count(*) FROM outbox WHERE task_type = $1`, task.TypeStripeEvent)
}

// startWorker runs the outbox relay and an Asynq server with every job
// handler (billing's with e.bill) and concurrency n; emails go to a private
// Mailpit. Tasks that fail for good become dead tasks, as in the worker.
func (e *hookEnv) startWorker(n int) {
	rs := redistest.Start(e.t)
	e.mail = mailtest.Start(e.t)
	runWorker(e.t, e.db.App, rs.Port, e.mail.SMTPURL, workerConfig{concurrency: n, relayIdle: 10 * time.Millisecond, relayLoops: 2, fast: true},
		jobs.Deps{Billing: e.bill})
}

// settle waits until every stored event is applied or ignored and every
// queued email is sent.
func (e *hookEnv) settle(timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pending := e.count(`SELECT count(*) FROM stripe_events WHERE status = 'pending'`)
		undispatched := e.count(`SELECT count(*) FROM outbox WHERE dispatched_at IS NULL`)
		queued := e.count(`SELECT count(*) FROM outbox WHERE task_type = $1`, task.TypeEmailSend)
		sent := e.count(`SELECT count(*) FROM sent_emails`)
		dead := e.count(`SELECT count(*) FROM dead_tasks`)
		if dead > 0 {
			var errs []string
			_ = e.db.Owner.Select(&errs, `SELECT task_type || ': ' || coalesce(last_error, '') FROM dead_tasks`)
			e.t.Fatalf("dead tasks: %q", errs)
		}
		if pending == 0 && undispatched == 0 && sent == queued {
			if e.mail == nil {
				return
			}
			list, _, err := e.mail.Messages(context.Background())
			if err == nil && len(list) == sent {
				return
			}
		}
		if time.Now().After(deadline) {
			var errs []string
			_ = e.db.Owner.Select(&errs, `SELECT id || ': ' || last_error FROM stripe_events WHERE last_error <> ''`)
			e.t.Fatalf("not settled after %s: %d events pending, %d outbox rows undispatched, %d of %d emails sent; event errors %q",
				timeout, pending, undispatched, sent, queued, errs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// outcome is what a run of the replay test ends with, ready to compare.
type outcome struct {
	Account  string
	Invoices []string
	Emails   []string // recipient | subject, sorted
	Notices  []string
	Audit    []string // action | target | details, sorted
	Events   []string // id | status | note, sorted
}

func (e *hookEnv) outcome(org uuid.UUID) outcome {
	e.t.Helper()
	var o outcome
	var acc []byte
	if err := e.db.Owner.Get(&acc, `SELECT to_jsonb(s) - 'version' - 'created_at' - 'updated_at' FROM subscriptions s WHERE org_id = $1`, org); err != nil {
		e.t.Fatal(err)
	}
	o.Account = string(acc)
	e.selectStrings(&o.Invoices, `SELECT (to_jsonb(i) - 'created_at' - 'updated_at')::text FROM invoices i WHERE org_id = $1 ORDER BY stripe_invoice_id`, org)
	e.selectStrings(&o.Notices, `SELECT key FROM billing_notices WHERE org_id = $1 ORDER BY key`, org)
	e.selectStrings(&o.Audit, `SELECT action || ' | ' || target_type || ':' || target_id || ' | ' || details::text FROM audit_log WHERE org_id = $1 ORDER BY 1`, org)
	e.selectStrings(&o.Events, `SELECT id || ' | ' || status || ' | ' || note FROM stripe_events ORDER BY id`)
	if e.mail != nil {
		list, _, err := e.mail.Messages(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		for _, m := range list {
			to := ""
			for _, a := range m.To {
				to += a.Address
			}
			o.Emails = append(o.Emails, to+" | "+m.Subject)
		}
		sort.Strings(o.Emails)
	}
	return o
}

func (e *hookEnv) selectStrings(dst *[]string, q string, args ...any) {
	e.t.Helper()
	if err := e.db.Owner.Select(dst, q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
}

func (e *hookEnv) account(org uuid.UUID) billing.Account {
	e.t.Helper()
	var a billing.Account
	err := e.db.Owner.Get(&a, `SELECT org_id, plan_id, status, billing_interval, trial_end, current_period_end, cancel_at_period_end,
	stripe_customer_id, stripe_subscription_id, stripe_status, stripe_subscription_created, stripe_event_at,
	stripe_event_id, quantity, past_due_since, grace_until, version, created_at, updated_at FROM subscriptions WHERE org_id = $1`, org)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func pretty(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}
