package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/billing/billingdb"
	"github.com/keelhq/keel/internal/billing/stripeevent"
	"github.com/keelhq/keel/internal/config"
	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/jobs/task"
)

const stripeUsage = `  stripe replay EVENT_ID
                   apply a stored Stripe event again: reset it to pending and queue
                   its stripe:event task (after fixing what made it fail or be
                   ignored, e.g. the webhook endpoint's API version)
  stripe sync ORG_ID
                   fetch the organization's subscription from Stripe and
                   repair its local billing state
  stripe trigger EVENT_TYPE --org ORG_ID [--url URL] [--plan ID] [--interval month|year]
                 [--status S] [--quantity N] [--amount CENTS] [--invoice in_...]
                 [--cancel-at-period-end]
                   build a realistic Stripe event for ORG_ID, sign it with
                   STRIPE_WEBHOOK_SECRET and post it to the local webhook
                   (default http://localhost:8080/api/v1/stripe/webhook)
`

// runStripe dispatches keelctl stripe's subcommands.
func runStripe(ctx context.Context, cfg *config.Ctl, args []string, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: stripe needs replay, trigger or sync", errUsage)
	}
	switch args[0] {
	case "replay":
		return runStripeReplay(ctx, cfg, args[1:], out)
	case "trigger":
		return runStripeTrigger(ctx, cfg, args[1:], out)
	case "sync":
		return stripeSync(ctx, cfg, args[1:], out)
	}
	return fmt.Errorf("%w: unknown stripe command %q", errUsage, args[0])
}

func openStripeDB(cfg *config.Ctl) (*sqlx.DB, config.Stripe, *plan.Catalog, error) {
	s, pc, plans, _, err := cfg.Stripe()
	if err != nil {
		return nil, s, nil, err
	}
	db, err := postgres.Open(pc.URL, postgres.Options{MaxOpenConns: 2})
	return db, s, plans.Catalog, err
}

// runStripeReplay puts an event back to pending and queues its
// application, in one transaction.
func runStripeReplay(ctx context.Context, cfg *config.Ctl, args []string, out io.Writer) error {
	if len(args) != 1 || !strings.HasPrefix(args[0], "evt_") {
		return fmt.Errorf("%w: stripe replay needs one event ID (evt_...)", errUsage)
	}
	id := args[0]
	db, _, _, err := openStripeDB(cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	var prev *billing.Event
	err = postgres.InTx(ctx, db, uuid.Nil, func(tx *sqlx.Tx) error {
		var err error
		if prev, err = (billingdb.Store{}).Event(ctx, tx, id, true); err != nil {
			return err
		}
		if err := (billingdb.Store{}).ResetEvent(ctx, tx, id); err != nil {
			return err
		}
		t, err := task.NewStripeEventTask(id)
		if err != nil {
			return err
		}
		_, err = outbox.Add(ctx, tx, t)
		return err
	})
	if errors.Is(err, billing.ErrNotFound) {
		return fmt.Errorf("no Stripe event %s is stored (keelctl stripe replay applies events the webhook received; see stripe_events)", id)
	}
	if err != nil {
		return err
	}
	note := ""
	if prev.Note != "" {
		note = " (" + prev.Note + ")"
	}
	fmt.Fprintf(out, "%s (%s) was %s%s; queued to apply again\n", id, prev.Type, prev.Status, note)
	return nil
}

// runStripeTrigger builds, signs and posts one event for an organization.
func runStripeTrigger(ctx context.Context, cfg *config.Ctl, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("stripe trigger", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	org := fs.String("org", "", "the organization's ID")
	url := fs.String("url", "http://localhost:8080/api/v1/stripe/webhook", "the webhook endpoint")
	planID := fs.String("plan", "", "plan of the subscription (default: the organization's, else the default plan)")
	interval := fs.String("interval", "month", "month or year")
	status := fs.String("status", "", "the subscription's status (default active; trialing on a trial)")
	quantity := fs.Int("quantity", 1, "the subscription's quantity (seats)")
	amount := fs.Int64("amount", 0, "the invoice's amount in cents (default 2900)")
	invoiceID := fs.String("invoice", "", "the invoice's ID (default: one per organization and day)")
	cancelAtEnd := fs.Bool("cancel-at-period-end", false, "the subscription cancels at its period's end")
	typ := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		typ, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: stripe trigger: %v", errUsage, err)
	}
	if typ == "" && fs.NArg() == 1 {
		typ = fs.Arg(0)
	}
	if typ == "" || !isHandled(typ) {
		return fmt.Errorf("%w: stripe trigger needs an event type, one of:\n  %s", errUsage, strings.Join(stripeevent.Types(), "\n  "))
	}
	orgID, err := uuid.Parse(*org)
	if err != nil {
		return fmt.Errorf("%w: stripe trigger needs --org ORG_ID (an organization's UUID)", errUsage)
	}
	db, sc, cat, err := openStripeDB(cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if sc.WebhookSecret == "" {
		return errors.New("STRIPE_WEBHOOK_SECRET is not set: the event would not verify")
	}
	var a *billing.Account
	err = postgres.InTx(ctx, db, orgID, func(tx *sqlx.Tx) error {
		var err error
		a, err = (billingdb.Store{}).Account(ctx, tx, orgID, false)
		return err
	})
	if errors.Is(err, billing.ErrNotFound) {
		return fmt.Errorf("organization %s has no billing row (is it an organization of this database?)", orgID)
	}
	if err != nil {
		return err
	}
	// Stripe stamps events in whole seconds, and the applier orders two
	// updates of one subscription in the same second by event ID, which is
	// arbitrary. Starting each event on a second of its own keeps a
	// developer's sequence of triggers in the order typed.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	f, err := triggerFacts(typ, a, cat, triggerOpts{plan: *planID, interval: *interval, status: *status,
		quantity: *quantity, amount: *amount, invoice: *invoiceID, cancelAtEnd: *cancelAtEnd}, time.Now())
	if err != nil {
		return err
	}
	payload, err := stripeevent.Build(typ, f)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, *url, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", stripeevent.Sign(payload, sc.WebhookSecret, time.Now()))
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w (is the api running?)", *url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	fmt.Fprintf(out, "%s %s (customer %s, subscription %s, invoice %s)\n%s %s\n", typ, f.EventID, f.CustomerID,
		f.SubscriptionID, f.InvoiceID, resp.Status, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the webhook answered %s", resp.Status)
	}
	return nil
}

func isHandled(typ string) bool {
	for _, t := range stripeevent.Types() {
		if t == typ {
			return true
		}
	}
	return false
}

type triggerOpts struct {
	plan, interval, status, invoice string
	quantity                        int
	amount                          int64
	cancelAtEnd                     bool
}

// triggerFacts are the facts of a triggered event for the organization
// of a: its customer and subscription when it has them (IDs derived from
// the organization otherwise), Keel's org_id metadata (so the event
// resolves even before checkout.session.completed linked the customer),
// and the plan's price.
func triggerFacts(typ string, a *billing.Account, cat *plan.Catalog, o triggerOpts, now time.Time) (stripeevent.Facts, error) {
	short := strings.ReplaceAll(a.OrgID.String(), "-", "")
	f := stripeevent.Facts{EventID: "evt_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:24], OrgID: a.OrgID.String(), Created: now, CustomerID: "cus_" + short, SubscriptionID: "sub_" + short,
		SubscriptionCreated: now, Status: o.status, Quantity: o.quantity, Amount: o.amount,
		CancelAtPeriodEnd: o.cancelAtEnd, InvoiceID: o.invoice}
	if a.CustomerID != nil {
		f.CustomerID = *a.CustomerID
	}
	if a.SubscriptionID != nil && typ != billing.EventCheckoutCompleted {
		f.SubscriptionID = *a.SubscriptionID
		if a.SubscriptionCreated != nil {
			f.SubscriptionCreated = *a.SubscriptionCreated
		}
	}
	id := o.plan
	if id == "" && a.PlanID != nil {
		id = *a.PlanID
	}
	if id == "" {
		id = cat.Default
	}
	p, ok := cat.Get(id)
	if !ok || !p.Paid() {
		return f, fmt.Errorf("plan %q is not a paid plan of the catalog", id)
	}
	price, ok := p.PriceFor(o.interval)
	if !ok {
		return f, fmt.Errorf("plan %s has no %q price (month or year)", p.ID, o.interval)
	}
	f.PriceID, f.Interval = price, o.interval
	if typ == billing.EventTrialWillEnd || f.Status == "trialing" {
		if f.Status == "" {
			f.Status = "trialing"
		}
		f.TrialEnd = now.Add(3 * 24 * time.Hour)
		if typ != billing.EventTrialWillEnd {
			f.TrialEnd = now.AddDate(0, 0, max(p.TrialDays, 1))
		}
		f.PeriodStart, f.PeriodEnd = f.SubscriptionCreated, f.TrialEnd
	}
	if f.InvoiceID == "" {
		f.InvoiceID = "in_" + short[:12] + "_" + now.UTC().Format("20060102")
		f.InvoiceNumber = strings.ToUpper(short[:8]) + "-" + now.UTC().Format("20060102")
	}
	return f, nil
}
