// Package ratelimit limits each organization's API requests per minute to
// its plan's api_requests_per_minute, in Redis, so every API replica shares
// one budget per organization.
//
// It uses go-redis/redis_rate (GCRA, the generic cell rate algorithm): one
// Lua script, run with EVALSHA, is one Redis round trip that both checks and
// spends, with no read-then-write race between replicas. A budget of N per
// minute allows a burst of N and then refills one request every 60/N
// seconds, rather than resetting at the minute: no double burst at a
// window's edge. Large budgets are taken a batch at a time (see Batch).
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/google/uuid"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/jmoiron/sqlx"
	goredis "github.com/redis/go-redis/v9"

	"github.com/keelhq/keel/internal/plan"
)

// Leases: an organization whose budget is large takes it from Redis a
// batch at a time and spends the batch in this process, so a busy
// organization costs one Redis round trip per batch rather than per
// request. A batch is 1% of the per-minute budget (at most MaxBatch); a
// budget under 200 a minute is checked request by request, exactly. A
// lease lives at most LeaseTTL: what it did not spend by then is dropped
// (it was counted in Redis, so the organization loses it rather than
// spending it later in a burst). Each replica may thus let through up to
// one batch more than Redis alone would, and RateLimit-Remaining is this
// replica's view.
const (
	MaxBatch = 100
	LeaseTTL = time.Second
	// leases bounds the organizations with a lease in memory.
	leases = 10000
)

// Limiter spends an organization's request budget.
type Limiter struct {
	limiter *redis_rate.Limiter
	plans   plan.Resolver
	db      sqlx.QueryerContext
	leases  *lru.Cache[uuid.UUID, *lease]
}

// lease is a batch of an organization's budget taken from Redis.
type lease struct {
	mu    sync.Mutex
	limit int64 // the plan's rate when it was taken
	left  int64 // taken, not yet spent here
	until time.Time
	res   Result // Redis's answer when it was taken
	// failed is when Redis last failed for this lease: for LeaseTTL after,
	// callers fail at once instead of queueing on the lock behind a Redis
	// that does not answer.
	failed time.Time
}

// New returns a Limiter on rdb whose budgets come from plans. The resolver
// is asked outside any tenant transaction, with db as its reader: a
// resolver that reads the database per request (billing's, later) should
// cache, or this becomes a query on every request.
func New(rdb goredis.UniversalClient, plans plan.Resolver, db sqlx.QueryerContext) *Limiter {
	c, _ := lru.New[uuid.UUID, *lease](leases) // fails only for a size <= 0
	return &Limiter{limiter: redis_rate.NewLimiter(rdb), plans: plans, db: db, leases: c}
}

// Batch is how many requests of a budget of perMinute one Redis call takes.
func Batch(perMinute int64) int64 { return min(max(perMinute/100, 1), MaxBatch) }

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
	batch := Batch(n)
	if batch == 1 {
		res, err := l.limiter.Allow(ctx, Key(orgID), redis_rate.PerMinute(int(n)))
		if err != nil {
			return Result{}, fmt.Errorf("rate limit: %w", err)
		}
		return result(n, res), nil
	}
	le, ok := l.leases.Get(orgID)
	if !ok {
		fresh := &lease{}
		if prev, found, _ := l.leases.PeekOrAdd(orgID, fresh); found {
			le = prev
		} else {
			le = fresh
		}
	}
	le.mu.Lock()
	defer le.mu.Unlock()
	now := time.Now()
	if le.left > 0 && le.limit == n && now.Before(le.until) {
		le.left--
		r := le.res
		r.Remaining += le.left
		return r, nil
	}
	if now.Before(le.failed.Add(LeaseTTL)) {
		return Result{}, errRecentFailure
	}
	// One caller per organization and process asks Redis; the others wait
	// for its batch on the lease's lock.
	res, err := l.limiter.AllowAtMost(ctx, Key(orgID), redis_rate.PerMinute(int(n)), int(batch))
	if err != nil {
		le.failed = time.Now()
		return Result{}, fmt.Errorf("rate limit: %w", err)
	}
	r := result(n, res)
	le.limit, le.left, le.until, le.res = n, 0, now.Add(LeaseTTL), r
	if res.Allowed > 0 {
		le.left = int64(res.Allowed) - 1
		r.Remaining += le.left
	}
	return r, nil
}

var errRecentFailure = errors.New("rate limit: Redis failed less than a second ago")

func result(n int64, res *redis_rate.Result) Result {
	return Result{Allowed: res.Allowed > 0, Limit: n, Remaining: int64(res.Remaining),
		Reset: max(res.ResetAfter, 0), RetryAfter: max(res.RetryAfter, 0)}
}
