// Package ratelimit limits each organization's API requests per minute to
// its plan's api_requests_per_minute, in Redis, so every API replica shares
// one budget per organization.
//
// It uses go-redis/redis_rate (GCRA, the generic cell rate algorithm): one
// Lua script per request, run with EVALSHA, is one Redis round trip that
// both checks and spends, with no read-then-write race between replicas. A
// budget of N per minute allows a burst of N and then refills one request
// every 60/N seconds, rather than resetting at the minute: no double burst
// at a window's edge.
package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	goredis "github.com/redis/go-redis/v9"

	"github.com/keelhq/keel/internal/plan"
)

// Limiter spends an organization's request budget.
type Limiter struct {
	limiter *redis_rate.Limiter
	plans   plan.Resolver
	db      sqlx.QueryerContext
}

// New returns a Limiter on rdb whose budgets come from plans. The resolver
// is asked outside any tenant transaction, with db as its reader: a
// resolver that reads the database per request (billing's, later) should
// cache, or this becomes a query on every request.
func New(rdb goredis.UniversalClient, plans plan.Resolver, db sqlx.QueryerContext) *Limiter {
	return &Limiter{limiter: redis_rate.NewLimiter(rdb), plans: plans, db: db}
}

// Result is one request's verdict.
type Result struct {
	// Unlimited: the plan sets no rate; Redis was not asked and the other
	// fields are zero.
	Unlimited bool
	Allowed   bool
	Limit     int64
	// Remaining is how many more requests would pass right now.
	Remaining int64
	// Reset is when the budget is whole again; RetryAfter, for a refused
	// request, when the next one will pass.
	Reset, RetryAfter time.Duration
}

// Used is the part of the budget spent, as the usage endpoint reports it.
func (r Result) Used() int64 { return r.Limit - r.Remaining }

// Key is the Redis key (after redis_rate's "rate:" prefix) of orgID's budget.
func Key(orgID uuid.UUID) string { return "org:" + orgID.String() + ":api" }

// Allow spends one request of orgID's budget. An error means Redis (or the
// plan) could not be read; the caller decides whether to fail open.
func (l *Limiter) Allow(ctx context.Context, orgID uuid.UUID) (Result, error) {
	p, err := l.plans.PlanOf(ctx, l.db, orgID)
	if err != nil {
		return Result{}, fmt.Errorf("plan of %s: %w", orgID, err)
	}
	n := p.Limits.Of(plan.APIRequestsPerMinute)
	if n == plan.Unlimited {
		return Result{Unlimited: true, Allowed: true}, nil
	}
	if n == 0 {
		// redis_rate divides by the rate; a plan that allows no API calls
		// refuses them without asking Redis.
		return Result{Allowed: false, Limit: 0, Reset: time.Minute, RetryAfter: time.Minute}, nil
	}
	res, err := l.limiter.Allow(ctx, Key(orgID), redis_rate.PerMinute(int(n)))
	if err != nil {
		return Result{}, fmt.Errorf("rate limit: %w", err)
	}
	return Result{Allowed: res.Allowed > 0, Limit: n, Remaining: int64(res.Remaining),
		Reset: max(res.ResetAfter, 0), RetryAfter: max(res.RetryAfter, 0)}, nil
}
