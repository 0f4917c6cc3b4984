package billing

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/stripe/stripe-go/v76"
)

// SyncSeats sets orgID's per-seat subscription quantity to its member
// count (billing:sync-seats, after the membership change named change).
// The count is read when the task runs, so a late or repeated task sets
// the current count; an organization no longer per-seat or subscribed
// needs nothing. The Stripe call is made outside any transaction, keyed
// by the change and the quantity it sets: a retry of the same change is
// the same call, while a retry that finds another count (a later change
// landed first) is a different operation and must not reuse the key
// (Stripe refuses a key with other parameters).
func (s *Service) SyncSeats(ctx context.Context, orgID uuid.UUID, change string) error {
	if s.Stripe == nil {
		return ErrUnavailable
	}
	a, members, err := s.readSeats(ctx, orgID)
	if err != nil {
		return err
	}
	if !a.liveSubscription() || !a.Plan(s.Plans).PerSeat {
		return nil
	}
	_, item, err := s.subscriptionItem(ctx, *a.SubscriptionID)
	if err != nil {
		return err
	}
	quantity := int64(max(members, 1))
	if item.Quantity == quantity {
		return nil
	}
	params := &stripe.SubscriptionItemParams{Quantity: stripe.Int64(quantity)}
	params.SetIdempotencyKey(fmt.Sprintf("keel-seats-%s-%s-%d", orgID, change, quantity))
	params.Context = ctx
	if _, err := s.Stripe.SubscriptionItems.Update(item.ID, params); err != nil {
		return stripeError("set quantity of "+item.ID, err)
	}
	s.Log.Info().Str("org_id", orgID.String()).Str("change", change).Int64("quantity", quantity).Msg("billing: seats synced")
	return nil
}
