package auth

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Throttle counts failed logins in Redis over a sliding window, per account
// and per client IP. Once a key reaches its limit it is locked until its
// oldest counted failure leaves the window. State in Redis is shared by every
// API replica, and every key expires on its own.
type Throttle struct {
	Redis        *redis.Client
	Window       time.Duration // 15 minutes
	AccountLimit int           // failures per account per window: 10
	IPLimit      int           // failures per IP per window
	Prefix       string        // key prefix, "keel:login:"
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (t *Throttle) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// NewThrottle returns a Throttle with Keel's limits.
func NewThrottle(rdb *redis.Client) *Throttle {
	return &Throttle{Redis: rdb, Window: 15 * time.Minute, AccountLimit: 10, IPLimit: 100, Prefix: "keel:login:"}
}

func (t *Throttle) accountKey(email string) string { return t.Prefix + "acct:" + email }
func (t *Throttle) ipKey(ip string) string         { return t.Prefix + "ip:" + ip }

// retryAfter returns how long key stays locked (0 when it is not): the time
// until enough failures age out that the count falls below limit.
var retryAfterScript = redis.NewScript(`
local key, now, window, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local n = redis.call('ZCARD', key)
if n < limit then return 0 end
local oldest = redis.call('ZRANGE', key, n - limit, n - limit, 'WITHSCORES')
return math.max(1, math.ceil((tonumber(oldest[2]) + window - now) / 1000))
`)

// recordScript adds one failure and returns the count within the window.
var recordScript = redis.NewScript(`
local key, now, window, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
redis.call('ZADD', key, now, member)
redis.call('PEXPIRE', key, window)
return redis.call('ZCARD', key)
`)

// Locked reports, in seconds, how long login stays refused for email or ip;
// 0 when neither is locked.
func (t *Throttle) Locked(ctx context.Context, email, ip string) (int, error) {
	now := t.now().UnixMilli()
	w := t.Window.Milliseconds()
	a, err := retryAfterScript.Run(ctx, t.Redis, []string{t.accountKey(email)}, now, w, t.AccountLimit).Int()
	if err != nil {
		return 0, fmt.Errorf("throttle: %w", err)
	}
	b, err := retryAfterScript.Run(ctx, t.Redis, []string{t.ipKey(ip)}, now, w, t.IPLimit).Int()
	if err != nil {
		return 0, fmt.Errorf("throttle: %w", err)
	}
	return max(a, b), nil
}

// Fail records a failed login and reports whether this failure locked the
// account (reached the limit exactly), for the audit log.
func (t *Throttle) Fail(ctx context.Context, email, ip string) (lockedNow bool, err error) {
	now := t.now().UnixMilli()
	w := t.Window.Milliseconds()
	member := strconv.FormatInt(now, 10) + ":" + uuid.NewString()
	n, err := recordScript.Run(ctx, t.Redis, []string{t.accountKey(email)}, now, w, member).Int()
	if err != nil {
		return false, fmt.Errorf("throttle: %w", err)
	}
	if _, err := recordScript.Run(ctx, t.Redis, []string{t.ipKey(ip)}, now, w, member).Int(); err != nil {
		return false, fmt.Errorf("throttle: %w", err)
	}
	return n == t.AccountLimit, nil
}

// MailLimit and MailWindow bound how many verification or reset emails one
// address is sent, so the always-202 endpoints cannot be used to flood a
// mailbox.
const (
	MailLimit  = 5
	MailWindow = time.Hour
)

// AllowMail records one email of kind to address and reports whether it is
// within MailLimit per MailWindow.
func (t *Throttle) AllowMail(ctx context.Context, kind, address string) (bool, error) {
	now := t.now().UnixMilli()
	member := strconv.FormatInt(now, 10) + ":" + uuid.NewString()
	n, err := recordScript.Run(ctx, t.Redis, []string{t.Prefix + "mail:" + kind + ":" + address}, now, MailWindow.Milliseconds(), member).Int()
	if err != nil {
		return false, fmt.Errorf("throttle: %w", err)
	}
	return n <= MailLimit, nil
}

// Reset forgets an account's failures after a successful login or a
// password reset.
func (t *Throttle) Reset(ctx context.Context, email string) error {
	return t.Redis.Del(ctx, t.accountKey(email)).Err()
}
