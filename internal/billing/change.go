package billing

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/stripe/stripe-go/v76"

	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/jobs/task"
)

// queueChange adds the billing:change-plan task of a plan change request
// in tx; the request's new ID keys its Stripe calls.
func (s *Service) queueChange(ctx context.Context, tx *sqlx.Tx, orgID uuid.UUID, planID, interval string) error {
	t, err := task.NewBillingChangePlanTask(orgID, task.BillingChangePlanPayload{RequestID: uuid.New(), Plan: planID, Interval: interval})
	if err != nil {
		return err
	}
	_, err = outbox.Add(ctx, tx, t)
	return err
}

// ChangePlan carries out a plan change request (billing:change-plan) on
// orgID's live subscription: an upgrade at once, invoicing the prorated
// difference now; a downgrade at the current period's end through a
// subscription schedule. Stripe is called outside any transaction, each
// call keyed by the request, so a retried task repeats none of them. The
// new state arrives through webhooks. An error wrapping ErrStripeRefused
// will not succeed on a retry.
func (s *Service) ChangePlan(ctx context.Context, orgID uuid.UUID, req task.BillingChangePlanPayload) error {
	if s.Stripe == nil {
		return ErrUnavailable
	}
	target, ok := s.Plans.Get(req.Plan)
	price, priced := target.PriceFor(req.Interval)
	if !ok || !priced {
		return s.changeFailed(ctx, orgID, req, fmt.Errorf("billing: plan %q has no %q price in plans.yaml: %w", req.Plan, req.Interval, ErrStripeRefused))
	}
	a, members, err := s.readSeats(ctx, orgID)
	if err != nil {
		return err
	}
	if !a.liveSubscription() {
		s.Log.Info().Str("org_id", orgID.String()).Str("request", req.RequestID.String()).
			Msg("billing: plan change dropped: the organization has no live subscription any more")
		return nil
	}
	sub, item, err := s.subscriptionItem(ctx, *a.SubscriptionID)
	if err != nil {
		return err
	}
	quantity := int64(1)
	if target.PerSeat {
		quantity = int64(max(members, 1))
	}
	if item.Price.ID == price {
		return nil // done before (a retry after the call succeeded)
	}
	// The direction is judged as the request was: from the plan the
	// organization is on (the webhooks' state), not from Stripe's price,
	// which the catalog may no longer list.
	fromPlan, fromInterval := "", ""
	if a.PlanID != nil {
		fromPlan = *a.PlanID
	}
	if a.Interval != nil {
		fromInterval = *a.Interval
	}
	key := "keel-change-" + req.RequestID.String()
	if s.upgrade(fromPlan, fromInterval, target.ID, req.Interval) {
		err = s.upgradeNow(ctx, sub, item, price, quantity, key)
	} else {
		err = s.downgradeAtPeriodEnd(ctx, sub, item, price, quantity, key)
	}
	if errors.Is(err, ErrStripeRefused) {
		return s.changeFailed(ctx, orgID, req, err)
	}
	return err
}

// readSeats reads orgID's billing row and member count in a tenant
// transaction.
func (s *Service) readSeats(ctx context.Context, orgID uuid.UUID) (*Account, int, error) {
	var (
		a       *Account
		members int
	)
	err := postgres.InTx(ctx, s.DB, orgID, func(tx *sqlx.Tx) error {
		var err error
		if a, err = s.Store.Account(ctx, tx, orgID, false); err != nil {
			return err
		}
		members, err = s.Store.Members(ctx, tx, orgID)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return &Account{OrgID: orgID, Status: Free}, 0, nil
	}
	return a, members, err
}

// subscriptionItem fetches a subscription and its (single) item from
// Stripe: the item's ID is what an update names. A GET is safe to repeat.
func (s *Service) subscriptionItem(ctx context.Context, id string) (*stripe.Subscription, *stripe.SubscriptionItem, error) {
	params := &stripe.SubscriptionParams{}
	params.Context = ctx
	sub, err := s.Stripe.Subscriptions.Get(id, params)
	if err != nil {
		return nil, nil, stripeError("get subscription "+id, err)
	}
	if sub.Items == nil || len(sub.Items.Data) == 0 || sub.Items.Data[0].Price == nil {
		return nil, nil, fmt.Errorf("billing: subscription %s has no priced item: %w", id, ErrStripeRefused)
	}
	return sub, sub.Items.Data[0], nil
}

// upgradeNow moves the subscription's item to price at once.
// proration_behavior always_invoice bills the prorated difference now
// rather than on the next renewal (create_prorations), which for a yearly
// plan could be months away: the better plan is paid for when it starts,
// and a card that cannot pay shows at once (invoice.payment_failed). A
// pending downgrade's schedule is released first: Stripe refuses item
// changes of a subscription a schedule manages.
func (s *Service) upgradeNow(ctx context.Context, sub *stripe.Subscription, item *stripe.SubscriptionItem, price string, quantity int64, key string) error {
	if sub.Schedule != nil && sub.Schedule.ID != "" {
		rp := &stripe.SubscriptionScheduleReleaseParams{}
		rp.SetIdempotencyKey(key + "-release")
		rp.Context = ctx
		if _, err := s.Stripe.SubscriptionSchedules.Release(sub.Schedule.ID, rp); err != nil {
			return stripeError("release schedule "+sub.Schedule.ID, err)
		}
	}
	params := &stripe.SubscriptionParams{
		Items:             []*stripe.SubscriptionItemsParams{{ID: stripe.String(item.ID), Price: stripe.String(price), Quantity: stripe.Int64(quantity)}},
		ProrationBehavior: stripe.String("always_invoice"),
	}
	params.SetIdempotencyKey(key)
	params.Context = ctx
	if _, err := s.Stripe.Subscriptions.Update(sub.ID, params); err != nil {
		return stripeError("upgrade subscription "+sub.ID, err)
	}
	return nil
}

// downgradeAtPeriodEnd makes the subscription's schedule (or reuses the
// one it has) run the current price until the period ends, then price.
// Two calls, each keyed by the request: the schedule from the subscription
// (no other parameter is allowed with from_subscription), then its phases.
func (s *Service) downgradeAtPeriodEnd(ctx context.Context, sub *stripe.Subscription, item *stripe.SubscriptionItem, price string, quantity int64, key string) error {
	var schedID string
	start := sub.CurrentPeriodStart
	if sub.Schedule != nil && sub.Schedule.ID != "" {
		schedID = sub.Schedule.ID
	} else {
		cp := &stripe.SubscriptionScheduleParams{FromSubscription: stripe.String(sub.ID)}
		cp.SetIdempotencyKey(key + "-schedule")
		cp.Context = ctx
		sched, err := s.Stripe.SubscriptionSchedules.New(cp)
		if err != nil {
			return stripeError("schedule subscription "+sub.ID, err)
		}
		schedID = sched.ID
		if len(sched.Phases) > 0 && sched.Phases[0].StartDate > 0 {
			start = sched.Phases[0].StartDate
		}
	}
	currentQty := max(item.Quantity, 1)
	up := &stripe.SubscriptionScheduleParams{
		EndBehavior: stripe.String(string(stripe.SubscriptionScheduleEndBehaviorRelease)),
		Phases: []*stripe.SubscriptionSchedulePhaseParams{
			{
				Items:     []*stripe.SubscriptionSchedulePhaseItemParams{{Price: stripe.String(item.Price.ID), Quantity: stripe.Int64(currentQty)}},
				StartDate: stripe.Int64(start),
				EndDate:   stripe.Int64(sub.CurrentPeriodEnd),
			},
			{
				Items:      []*stripe.SubscriptionSchedulePhaseItemParams{{Price: stripe.String(price), Quantity: stripe.Int64(quantity)}},
				Iterations: stripe.Int64(1),
			},
		},
	}
	up.SetIdempotencyKey(key + "-phases")
	up.Context = ctx
	if _, err := s.Stripe.SubscriptionSchedules.Update(schedID, up); err != nil {
		return stripeError("set phases of schedule "+schedID, err)
	}
	return nil
}

// changeFailed records a plan change Stripe refused for good (an audit row
// the owners can see) and returns err for the job to give up on.
func (s *Service) changeFailed(ctx context.Context, orgID uuid.UUID, req task.BillingChangePlanPayload, cause error) error {
	s.Log.Error().Err(cause).Str("org_id", orgID.String()).Str("request", req.RequestID.String()).Msg("billing: plan change refused")
	err := postgres.InTx(ctx, s.DB, orgID, func(tx *sqlx.Tx) error {
		return audit.Record(ctx, tx, audit.Entry{OrgID: orgID, Action: "billing.plan_change_failed", TargetType: "organization",
			TargetID: orgID.String()}.WithDetails(map[string]any{"request": req.RequestID, "plan": req.Plan, "interval": req.Interval,
			"error": cause.Error()}))
	})
	if err != nil {
		return err
	}
	return cause
}
