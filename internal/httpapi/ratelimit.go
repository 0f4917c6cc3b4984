package httpapi

import (
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/platform/metrics"
	"github.com/keelhq/keel/internal/ratelimit"
	"github.com/keelhq/keel/internal/tenant"
)

// rateResultKey holds, on the Gin context, the request's rate-limit verdict
// (the usage endpoint reports it).
const rateResultKey = "keel.rate_limit"

// orgRateLimit spends one request of the caller's organization's budget
// (its plan's api_requests_per_minute) on every authenticated tenant
// request, and sets RateLimit-Limit, RateLimit-Remaining and
// RateLimit-Reset (seconds until the budget is whole) on the response.
// Past the budget it answers 429 rate_limited with Retry-After. A plan
// without a rate skips Redis and sets no headers.
//
// When Redis cannot be asked the request passes (fail open): the limit
// protects capacity, and refusing every request while Redis is down would
// turn a Redis outage into an API outage. Each such request is counted in
// keel_rate_limit_fail_open_total, and a warning is logged at most every
// 10 seconds.
type orgRateLimit struct {
	limiter *ratelimit.Limiter
	metrics *metrics.HTTP
	warned  atomic.Int64 // unix nanos of the last fail-open warning
}

// allow reports whether the request may go on; when not, it has answered.
func (r *orgRateLimit) allow(c *gin.Context, p *tenant.Principal) bool {
	if p.OrgID == uuid.Nil {
		return true
	}
	ctx := c.Request.Context()
	res, err := r.limiter.Allow(ctx, p.OrgID)
	if err != nil {
		r.metrics.RateLimitFailedOpen()
		now := time.Now().UnixNano()
		if last := r.warned.Load(); now-last > int64(10*time.Second) && r.warned.CompareAndSwap(last, now) {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("rate limit unavailable; letting requests through unchecked")
		}
		return true
	}
	if res.Unlimited {
		return true
	}
	c.Set(rateResultKey, res)
	h := c.Writer.Header()
	h.Set("RateLimit-Limit", strconv.FormatInt(res.Limit, 10))
	h.Set("RateLimit-Remaining", strconv.FormatInt(res.Remaining, 10))
	h.Set("RateLimit-Reset", strconv.Itoa(ceilSeconds(res.Reset)))
	if !res.Allowed {
		writeProblem(c, &apperr.Error{Kind: apperr.TooManyRequests, Code: "rate_limited", RetryAfter: max(ceilSeconds(res.RetryAfter), 1),
			Message: "This organization has used its plan's API requests for now (" + strconv.FormatInt(res.Limit, 10) + " per minute); retry after Retry-After seconds."})
		return false
	}
	return true
}

func ceilSeconds(d time.Duration) int { return int(math.Ceil(d.Seconds())) }

// rateResult returns the request's rate-limit verdict, if it had one.
func rateResult(c *gin.Context) (ratelimit.Result, bool) {
	v, ok := c.Get(rateResultKey)
	if !ok {
		return ratelimit.Result{}, false
	}
	res, ok := v.(ratelimit.Result)
	return res, ok
}
