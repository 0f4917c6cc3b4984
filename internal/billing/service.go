package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/jmoiron/sqlx"
	"github.com/rs/zerolog"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/outbox"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/jobs/task"
)

// Service runs billing. The API uses it for the billing endpoints and the
// webhook inbox, the worker to apply events and run the billing jobs.
type Service struct {
	DB    *sqlx.DB
	Store Store
	Plans *plan.Catalog
	// Stripe is the Stripe API client (STRIPE_SECRET_KEY, STRIPE_API_BASE);
	// nil when Stripe is not configured: the endpoints and jobs that call
	// Stripe answer 503 billing_unavailable (or fail saying so).
	Stripe *client.API
	// WebhookSecrets verify Stripe-Signature: STRIPE_WEBHOOK_SECRET first,
	// then the previous one during a rotation. Empty: the webhook answers
	// 503.
	WebhookSecrets []string
	// BaseURL is APP_BASE_URL: Checkout and the Portal return there.
	BaseURL string
	// Now is billing's clock (trials, grace periods, dunning days); nil
	// means time.Now. Tests drive it.
	Now     func() time.Time
	Metrics *Metrics
	Log     zerolog.Logger

	// Limits and Seats report an organization's usage against its plan
	// (GET /billing); nil Limits reports none.
	Limits *plan.Limiter
	Seats  SeatCounter
}

// SeatCounter counts an organization's seats as the plan limiter does:
// members and pending invitations that have not expired (org's store).
type SeatCounter interface {
	CountSeats(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, now time.Time) (members, pending int64, err error)
}

func (s *Service) now() time.Time {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	return now().UTC().Truncate(time.Microsecond)
}

// Grace is how long past_due lasts before read-only.
func (s *Service) Grace() time.Duration {
	return time.Duration(s.Plans.GraceDays) * 24 * time.Hour
}

// ErrUnavailable answers what needs Stripe when Stripe is not configured.
var ErrUnavailable = apperr.New(apperr.Unavailable, "billing_unavailable", "Billing is not configured on this server.")

// StartOrg gives a new organization its subscriptions row, in the
// transaction that creates it (tenant set): a trial of the default plan
// when the catalog starts one (signup_trial and the plan's trial_days),
// the fallback plan otherwise.
func (s *Service) StartOrg(ctx context.Context, tx *sqlx.Tx, orgID uuid.UUID) error {
	a := &Account{OrgID: orgID, Status: Free}
	def := s.Plans.DefaultPlan()
	if s.Plans.SignupTrial && def.TrialDays > 0 {
		end := s.now().Add(time.Duration(def.TrialDays) * 24 * time.Hour)
		a.PlanID, a.Status, a.TrialEnd = ptr(def.ID), Trialing, &end
	}
	created, err := s.Store.CreateAccount(ctx, tx, a)
	if err != nil || !created {
		return err
	}
	s.Metrics.StateChanged(a.Status)
	if a.Status != Trialing {
		return nil
	}
	return audit.Record(ctx, tx, audit.Entry{OrgID: orgID, Action: "billing.trial_started", TargetType: "organization",
		TargetID: orgID.String()}.WithDetails(map[string]any{"plan": def.ID, "trial_end": a.TrialEnd}))
}

// Resolver is the plan limiter's plan.Resolver: an organization's plan
// from its subscriptions row, read in the caller's transaction (so a limit
// or a write follows a payment at once, never a cache). It is also a
// plan.Assumer for one-message writes, whose guard rereads the row in the
// write; NewResolver's keeps what it assumed (Assumed), a Resolver made
// without it reads the row before every such write.
type Resolver struct {
	Store Store
	Plans *plan.Catalog
	// Assumed keeps Assume's answers until a write's guard fails
	// (Forget) or for a minute; nil keeps nothing.
	Assumed *expirable.LRU[uuid.UUID, Assumption]
}

// Assumption is what Assume read of an organization's subscriptions row.
type Assumption struct {
	PlanID *string
	Status Status
	Found  bool
}

var (
	_ plan.Resolver = Resolver{}
	_ plan.Assumer  = Resolver{}
)

// NewResolver returns a Resolver over store and plans that keeps up to
// 10,000 organizations' assumptions for a minute.
func NewResolver(store Store, plans *plan.Catalog) Resolver {
	return Resolver{Store: store, Plans: plans, Assumed: expirable.NewLRU[uuid.UUID, Assumption](10000, nil, time.Minute)}
}

// PlanOf implements plan.Resolver. An organization without a row (from
// before billing, or made without billing wired) is on the fallback plan.
func (r Resolver) PlanOf(ctx context.Context, q sqlx.QueryerContext, orgID uuid.UUID) (plan.Plan, error) {
	planID, status, found, err := r.Store.PlanOf(ctx, q, orgID)
	if err != nil {
		return plan.Plan{}, fmt.Errorf("billing: %w", err)
	}
	return r.plan(Assumption{PlanID: planID, Status: status, Found: found}), nil
}

func (r Resolver) plan(a Assumption) plan.Plan {
	if !a.Found {
		return r.Plans.FallbackPlan()
	}
	acc := Account{PlanID: a.PlanID, Status: a.Status}
	return acc.Plan(r.Plans)
}

// Assume implements plan.Assumer: the row as read on q (or kept from an
// earlier read), and a guard that it still reads the same.
func (r Resolver) Assume(ctx context.Context, q sqlx.QueryerContext, orgID uuid.UUID) (plan.Plan, *postgres.Stmt, error) {
	a, ok := Assumption{}, false
	if r.Assumed != nil {
		a, ok = r.Assumed.Get(orgID)
	}
	if !ok {
		planID, status, found, err := r.Store.PlanOf(ctx, q, orgID)
		if err != nil {
			return plan.Plan{}, nil, fmt.Errorf("billing: %w", err)
		}
		a = Assumption{PlanID: planID, Status: status, Found: found}
		if r.Assumed != nil {
			r.Assumed.Add(orgID, a)
		}
	}
	guard := r.Store.PlanGuard(orgID, a.PlanID, a.Status, a.Found)
	return r.plan(a), &guard, nil
}

// Forget implements plan.Assumer.
func (r Resolver) Forget(orgID uuid.UUID) {
	if r.Assumed != nil {
		r.Assumed.Remove(orgID)
	}
}

// Cached is a Resolver whose answers are kept for ttl: for the API rate
// limiter, which asks on every request outside any transaction, where a
// plan change taking ttl to reach the per-minute budget is harmless. Limits
// on writes use Resolver itself.
type Cached struct {
	r     plan.Resolver
	cache *expirable.LRU[uuid.UUID, plan.Plan]
}

// NewCached returns a Cached over r keeping up to size answers for ttl.
func NewCached(r plan.Resolver, size int, ttl time.Duration) *Cached {
	return &Cached{r: r, cache: expirable.NewLRU[uuid.UUID, plan.Plan](size, nil, ttl)}
}

// PlanOf implements plan.Resolver.
func (c *Cached) PlanOf(ctx context.Context, q sqlx.QueryerContext, orgID uuid.UUID) (plan.Plan, error) {
	if p, ok := c.cache.Get(orgID); ok {
		return p, nil
	}
	p, err := c.r.PlanOf(ctx, q, orgID)
	if err != nil {
		return p, err
	}
	c.cache.Add(orgID, p)
	return p, nil
}

// SeatsChanged implements org.BillingHooks: after a membership change of
// an organization subscribed to a per-seat plan, it queues
// billing:sync-seats (in tx, through the outbox) to set the subscription's
// quantity; change keys that Stripe call, so a retry does not repeat it.
func (s *Service) SeatsChanged(ctx context.Context, tx *sqlx.Tx, orgID uuid.UUID, change string) error {
	a, err := s.Store.Account(ctx, tx, orgID, false)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if a.SubscriptionID == nil || !a.Status.OnPlan() || !a.Plan(s.Plans).PerSeat {
		return nil
	}
	t, err := task.NewBillingSyncSeatsTask(orgID, change)
	if err != nil {
		return err
	}
	_, err = outbox.Add(ctx, tx, t)
	return err
}
