package billing

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/stripe/stripe-go/v76"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/tenant"
)

// Errors of the account API, besides the kernel's.
var (
	errEmailNotVerified  = apperr.New(apperr.Forbidden, "email_not_verified", "Verify your email address before you subscribe; we can send the link again.")
	errAlreadySubscribed = apperr.New(apperr.Conflict, "already_subscribed", "The organization is already subscribed to this plan and interval.")
	errNoBillingAccount  = apperr.New(apperr.Conflict, "no_billing_account", "The organization has no billing account yet: subscribe to a plan first.")
	errUnpaid            = apperr.New(apperr.Conflict, "subscription_unpaid",
		"The subscription has an unpaid invoice: pay it in the billing portal before changing plans.")
)

// SubscribeInput is a subscription request: a paid plan and "month" or
// "year".
type SubscribeInput struct {
	Plan     string
	Interval string
}

// validate checks the input's shape (400) and then that the plan can be
// bought at that interval (422).
func (in SubscribeInput) validate(c *plan.Catalog) (plan.Plan, string, error) {
	var fields []apperr.FieldError
	p, known := c.Get(in.Plan)
	if !known {
		fields = append(fields, apperr.FieldError{Field: "plan", Message: "is not a plan of GET /billing/plans"})
	}
	if in.Interval != "month" && in.Interval != "year" {
		fields = append(fields, apperr.FieldError{Field: "interval", Message: `must be "month" or "year"`})
	}
	if len(fields) > 0 {
		return plan.Plan{}, "", apperr.Validation(fields...)
	}
	price, ok := p.PriceFor(in.Interval)
	if !ok {
		return plan.Plan{}, "", apperr.New(apperr.Unprocessable, "plan_not_purchasable",
			fmt.Sprintf("The %s plan cannot be bought by the %s (see its intervals in GET /billing/plans).", p.Name, in.Interval))
	}
	return p, price, nil
}

// Subscription is Subscribe's answer: a Checkout URL to pay at, or the plan
// change that was queued.
type Subscription struct {
	CheckoutURL string
	Change      *PlanChange
}

// PlanChange is a queued change of a live subscription's plan.
type PlanChange struct {
	Plan     string `json:"plan"`
	Interval string `json:"interval"`
	// Effective is "now" (an upgrade, prorated) or "period_end" (a
	// downgrade).
	Effective string `json:"effective"`
}

// Subscribe subscribes the caller's organization to a paid plan; owners
// only, signed in (not an API key), with a verified email. An organization
// with a live Stripe subscription changes plans (a billing:change-plan
// task); any other gets a Checkout URL, its Stripe customer being created
// on first need.
func (s *Service) Subscribe(ctx context.Context, p *tenant.Principal, in SubscribeInput, meta audit.Meta) (*Subscription, error) {
	target, price, err := in.validate(s.Plans)
	if err != nil {
		return nil, err
	}
	if !p.IsUser() {
		return nil, tenant.ErrUserOnly
	}
	var (
		a     *Account
		payer *Payer
		seats int
		out   *Subscription
	)
	err = tenant.InOrg(ctx, s.DB, p, tenant.RoleOwner, func(tx *sqlx.Tx, _ string) error {
		if payer, err = s.Store.Payer(ctx, tx, p.OrgID, p.UserID); err != nil {
			return err
		}
		if !payer.EmailVerified {
			return errEmailNotVerified
		}
		if s.Stripe == nil {
			return ErrUnavailable
		}
		if a, err = s.account(ctx, tx, p); err != nil {
			return err
		}
		switch {
		case a.liveSubscription():
			out, err = s.requestChange(ctx, tx, p, a, target, in.Interval, meta)
			return err
		case a.unpaidSubscription():
			return errUnpaid
		}
		seats, err = s.Store.Members(ctx, tx, p.OrgID)
		return err
	})
	if err != nil || out != nil {
		return out, err
	}
	url, err := s.checkout(ctx, p, a, payer, target, price, in.Interval, seats, meta)
	if err != nil {
		return nil, err
	}
	return &Subscription{CheckoutURL: url}, nil
}

// liveSubscription reports whether a holds a Stripe subscription a plan
// change can move (a new Checkout would make it a second one).
func (a *Account) liveSubscription() bool {
	if a.SubscriptionID == nil || a.StripeStatus == nil {
		return false
	}
	switch *a.StripeStatus {
	case "trialing", "active", "past_due":
		return true
	}
	return false
}

// unpaidSubscription reports a subscription Stripe stopped for an unpaid
// invoice: neither a change nor a second subscription is right; paying is.
func (a *Account) unpaidSubscription() bool {
	return a.SubscriptionID != nil && a.StripeStatus != nil && (*a.StripeStatus == "unpaid" || *a.StripeStatus == "paused")
}

// checkout makes the Checkout session of a (read in a transaction that
// has ended: Stripe is never called inside one).
func (s *Service) checkout(ctx context.Context, p *tenant.Principal, a *Account, payer *Payer, target plan.Plan,
	price, interval string, seats int, meta audit.Meta) (string, error) {
	customer, version, err := s.customer(ctx, p, a, payer)
	if err != nil {
		return "", err
	}
	quantity := int64(1)
	if target.PerSeat {
		quantity = int64(max(seats, 1))
	}
	trial := s.checkoutTrial(a, target)
	org := p.OrgID.String()
	params := &stripe.CheckoutSessionParams{
		Mode:                stripe.String(string(stripe.CheckoutSessionModeSubscription)),
		Customer:            stripe.String(customer),
		LineItems:           []*stripe.CheckoutSessionLineItemParams{{Price: stripe.String(price), Quantity: stripe.Int64(quantity)}},
		AllowPromotionCodes: stripe.Bool(true),
		ClientReferenceID:   stripe.String(org),
		SubscriptionData:    &stripe.CheckoutSessionSubscriptionDataParams{Metadata: map[string]string{"org_id": org}},
		SuccessURL:          stripe.String(s.BaseURL + "/billing?checkout=success"),
		CancelURL:           stripe.String(s.BaseURL + "/billing?checkout=canceled"),
	}
	params.AddMetadata("org_id", org)
	if trial > 0 {
		params.SubscriptionData.TrialPeriodDays = stripe.Int64(trial)
	}
	params.SetIdempotencyKey(checkoutKey(p.OrgID, target.ID, interval, version, quantity, trial))
	params.Context = ctx
	sess, err := s.Stripe.CheckoutSessions.New(params)
	if err != nil {
		return "", stripeError("create checkout session", err)
	}
	err = tenant.InOrg(ctx, s.DB, p, tenant.RoleOwner, func(tx *sqlx.Tx, _ string) error {
		return audit.Record(ctx, tx, audit.By(p, meta, "billing.checkout_started", "organization", org).WithDetails(map[string]any{
			"plan": target.ID, "interval": interval, "quantity": quantity, "trial_days": trial, "session": sess.ID,
			"customer": customer}))
	})
	if err != nil {
		return "", err
	}
	return sess.URL, nil
}

// checkoutKey is the Checkout session's idempotency key: the business
// operation (this organization buying this plan by this interval) at the
// version of its billing row, with the parameters that can drift while the
// row does not (seats, the trial days left). A double click sends the same
// key and gets the same session; once anything changed (a webhook bumped
// the row, a member joined, a day passed) the key is new, where reusing
// the old one would make Stripe refuse different parameters under it.
func checkoutKey(org uuid.UUID, planID, interval string, version, quantity, trial int64) string {
	return fmt.Sprintf("keel-checkout-%s-%s-%s-v%d-q%d-t%d", org, planID, interval, version, quantity, trial)
}

// checkoutTrial is the trial the Checkout subscription starts with, in
// days: what is left of the organization's signup trial (rounded up, so
// paying early loses none of it), the plan's own trial for an organization
// that never had a trial nor a subscription, and none otherwise (a trial
// that ended, a returning customer).
func (s *Service) checkoutTrial(a *Account, target plan.Plan) int64 {
	if a.SubscriptionID != nil {
		return 0
	}
	if a.TrialEnd == nil {
		if a.Status == Free {
			return int64(target.TrialDays)
		}
		return 0
	}
	left := a.TrialEnd.Sub(s.now())
	if a.Status != Trialing || left <= 0 {
		return 0
	}
	return int64(math.Ceil(left.Hours() / 24))
}

// customer returns the organization's Stripe customer, creating it on
// first need, and the version of its billing row after the link. The
// customer is created outside any transaction with a key derived from the
// organization, so a crash before the link is saved, or two requests at
// once, get the same customer back from Stripe.
func (s *Service) customer(ctx context.Context, p *tenant.Principal, a *Account, payer *Payer) (string, int64, error) {
	if a.CustomerID != nil {
		return *a.CustomerID, a.Version, nil
	}
	params := &stripe.CustomerParams{Email: stripe.String(payer.Email), Name: stripe.String(payer.OrgName)}
	params.AddMetadata("org_id", p.OrgID.String())
	params.SetIdempotencyKey("keel-customer-" + p.OrgID.String())
	params.Context = ctx
	c, err := s.Stripe.Customers.New(params)
	if err != nil {
		return "", 0, stripeError("create customer", err)
	}
	var version int64
	err = tenant.InOrg(ctx, s.DB, p, tenant.RoleOwner, func(tx *sqlx.Tx, _ string) error {
		if err := s.Store.LinkCustomer(ctx, tx, c.ID, p.OrgID); err != nil {
			return err
		}
		locked, err := s.lockAccount(ctx, tx, p.OrgID)
		if err != nil {
			return err
		}
		if locked.CustomerID == nil {
			locked.CustomerID = &c.ID
			if err := s.Store.SaveAccount(ctx, tx, locked, s.now()); err != nil {
				return err
			}
		}
		version = locked.Version
		return nil
	})
	return c.ID, version, err
}

// Portal returns a Billing Portal URL for the caller's organization;
// owners only, signed in. An organization that never subscribed has no
// Stripe customer: 409 no_billing_account.
func (s *Service) Portal(ctx context.Context, p *tenant.Principal) (string, error) {
	if !p.IsUser() {
		return "", tenant.ErrUserOnly
	}
	var a *Account
	err := tenant.InOrg(ctx, s.DB, p, tenant.RoleOwner, func(tx *sqlx.Tx, _ string) error {
		if s.Stripe == nil {
			return ErrUnavailable
		}
		var err error
		if a, err = s.account(ctx, tx, p); err != nil {
			return err
		}
		if a.CustomerID == nil {
			return errNoBillingAccount
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	// A portal session changes nothing by itself and lives minutes: no
	// business key; stripe-go's own key covers its network retries.
	params := &stripe.BillingPortalSessionParams{Customer: a.CustomerID, ReturnURL: stripe.String(s.BaseURL + "/billing")}
	params.Context = ctx
	sess, err := s.Stripe.BillingPortalSessions.New(params)
	if err != nil {
		return "", stripeError("create billing portal session", err)
	}
	return sess.URL, nil
}

// ErrStripeRefused marks a Stripe call Stripe refused for good (a 4xx
// other than 409 and 429): repeating it cannot succeed, so a job gives up
// (a dead task) instead of retrying.
var ErrStripeRefused = errors.New("stripe refused the call")

// errStripeDown answers an API call when Stripe failed or could not be
// reached.
var errStripeDown = apperr.New(apperr.Unavailable, "stripe_unavailable", "Stripe did not answer; try again in a moment.")

// stripeError wraps a failed Stripe call: refused for good (ErrStripeRefused)
// or not; either way an API caller gets a 503, since nothing they sent was
// wrong (the server's Stripe settings or Stripe itself is).
func stripeError(op string, err error) error {
	var se *stripe.Error
	wrapped := fmt.Errorf("billing: %s: %w", op, err)
	if errors.As(err, &se) && se.HTTPStatusCode >= 400 && se.HTTPStatusCode < 500 &&
		se.HTTPStatusCode != http.StatusConflict && se.HTTPStatusCode != http.StatusTooManyRequests {
		wrapped = fmt.Errorf("billing: %s: %w: %w", op, ErrStripeRefused, err)
	}
	return &apperr.Error{Kind: apperr.Unavailable, Code: errStripeDown.Code, Message: errStripeDown.Message, Err: wrapped}
}

// requestChange queues a plan change of a's live subscription (in tx) and
// says when it takes effect.
func (s *Service) requestChange(ctx context.Context, tx *sqlx.Tx, p *tenant.Principal, a *Account,
	target plan.Plan, interval string, meta audit.Meta) (*Subscription, error) {
	current := a.Plan(s.Plans)
	currentInterval := ""
	if a.Interval != nil {
		currentInterval = *a.Interval
	}
	if current.ID == target.ID && currentInterval == interval {
		return nil, errAlreadySubscribed
	}
	ch := &PlanChange{Plan: target.ID, Interval: interval, Effective: "period_end"}
	if s.upgrade(current.ID, currentInterval, target.ID, interval) {
		ch.Effective = "now"
	}
	if err := s.queueChange(ctx, tx, p.OrgID, target.ID, interval); err != nil {
		return nil, err
	}
	err := audit.Record(ctx, tx, audit.By(p, meta, "billing.plan_change_requested", "organization", p.OrgID.String()).
		WithDetails(map[string]any{"from_plan": current.ID, "from_interval": currentInterval, "plan": target.ID,
			"interval": interval, "effective": ch.Effective}))
	if err != nil {
		return nil, err
	}
	return &Subscription{Change: ch}, nil
}

// upgrade reports whether moving from one plan and interval to another is
// an upgrade (applied now, prorated): a plan later in plans.yaml, or the
// same plan paid yearly instead of monthly. Anything else waits for the
// period's end.
func (s *Service) upgrade(fromPlan, fromInterval, toPlan, toInterval string) bool {
	from, to := s.planIndex(fromPlan), s.planIndex(toPlan)
	if from != to {
		return to > from
	}
	return fromInterval == "month" && toInterval == "year"
}

func (s *Service) planIndex(id string) int {
	for i, p := range s.Plans.Plans {
		if p.ID == id {
			return i
		}
	}
	return -1
}
