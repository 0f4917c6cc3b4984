package auth

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/apperr"
)

// Throttle limits password guessing and the anonymous endpoints that cost
// an argon2id hash or send mail, in Redis, over sliding windows of sorted
// sets. Password attempts are counted per account (email) and per client
// IP before the password is checked, so concurrent guesses cannot outrun
// the limit. State in Redis is shared by every API replica, and every key
// expires on its own.
type Throttle struct {
	Redis        *redis.Client
	Window       time.Duration // 15 minutes
	AccountLimit int           // password attempts per account per window: 10
	IPLimit      int           // password attempts per IP per window: 100
	Prefix       string        // key prefix, "keel:login:"
	// Per-IP budgets of anonymous requests (see Limit).
	Register         Rate // POST /auth/register
	PasswordReset    Rate // POST /auth/password/forgot and /auth/password/reset, together
	InvitationAccept Rate // POST /invitations/accept without a session
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Rate is a budget of N requests per Window.
type Rate struct {
	N      int
	Window time.Duration
}

// Keel's default per-IP budgets. They are generous enough for an office
// behind one address and small enough that one address cannot make the
// API hash (or mail) without bound.
var (
	DefaultRegisterRate         = Rate{N: 20, Window: time.Hour}
	DefaultPasswordResetRate    = Rate{N: 30, Window: time.Hour}
	DefaultInvitationAcceptRate = Rate{N: 60, Window: time.Hour}
)

func (t *Throttle) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// NewThrottle returns a Throttle with Keel's limits.
func NewThrottle(rdb *redis.Client) *Throttle {
	return &Throttle{Redis: rdb, Window: 15 * time.Minute, AccountLimit: 10, IPLimit: 100, Prefix: "keel:login:",
		Register: DefaultRegisterRate, PasswordReset: DefaultPasswordResetRate, InvitationAccept: DefaultInvitationAcceptRate}
}

func (t *Throttle) accountKey(email string) string { return t.Prefix + "acct:" + email }
func (t *Throttle) ipKey(ip string) string         { return t.Prefix + "ip:" + ipBucket(ip) }

// ipBucket is the unit per-IP limits count: the address itself for IPv4,
// its /64 for IPv6 (one subscriber usually holds a whole /64, so counting
// single IPv6 addresses would limit nothing).
func ipBucket(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}

// takeScript counts one event under every key of KEYS unless one of them
// is already at its limit. ARGV: now (ms), window (ms), the event's unique
// member, then one limit per key. It returns {wait, n}: wait is 0 when the
// event was counted, else the seconds until the fullest key falls below its
// limit again (the event is then not counted, so refused requests do not
// extend a lock); n is the first key's count including this event.
// Check and count are one script, so concurrent callers cannot all pass the
// check before any of them is counted.
var takeScript = redis.NewScript(`
local now, window, member = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local wait, first = 0, 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[3 + i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local n = redis.call('ZCARD', key)
  if i == 1 then first = n end
  if n >= limit then
    local oldest = redis.call('ZRANGE', key, n - limit, n - limit, 'WITHSCORES')
    wait = math.max(wait, 1, math.ceil((tonumber(oldest[2]) + window - now) / 1000))
  end
end
if wait > 0 then return {wait, first} end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, window)
end
return {0, first + 1}
`)

func (t *Throttle) take(ctx context.Context, keys []string, window time.Duration, limits ...int) (member string, wait, n int, err error) {
	now := t.now().UnixMilli()
	member = strconv.FormatInt(now, 10) + ":" + uuid.NewString()
	args := []any{now, window.Milliseconds(), member}
	for _, l := range limits {
		args = append(args, l)
	}
	res, err := takeScript.Run(ctx, t.Redis, keys, args...).Int64Slice()
	if err != nil {
		return "", 0, 0, fmt.Errorf("throttle: %w", err)
	}
	return member, int(res[0]), int(res[1]), nil
}

// Attempt is one password attempt, counted against the account and the
// client IP before the password is checked. Its outcome settles it: a
// wrong password leaves it counted (Failed), a right one clears the
// account's failures (Succeeded), and an attempt that never reached the
// password check is taken back (Cancel).
type Attempt struct {
	t          *Throttle
	email, ip  string
	member     string
	count      int
	RetryAfter int // > 0: refused, the account or IP is locked for this many seconds; nothing was counted
}

// Begin counts a password attempt for email from ip, unless either is
// locked: then the returned Attempt has RetryAfter > 0 and nothing was
// counted. An error means Redis is unreachable.
func (t *Throttle) Begin(ctx context.Context, email, ip string) (*Attempt, error) {
	member, wait, n, err := t.take(ctx, []string{t.accountKey(email), t.ipKey(ip)}, t.Window, t.AccountLimit, t.IPLimit)
	if err != nil {
		return nil, err
	}
	return &Attempt{t: t, email: email, ip: ip, member: member, count: n, RetryAfter: wait}, nil
}

// Failed reports whether this attempt, now known to be wrong, is the one
// that locked the account (for the audit log). It stays counted.
func (a *Attempt) Failed() (lockedNow bool) {
	return a.RetryAfter == 0 && a.count == a.t.AccountLimit
}

// Succeeded clears the account's failures and takes this attempt back from
// the IP's count: a right password proves the caller is no guesser.
func (a *Attempt) Succeeded(ctx context.Context) error {
	if a.RetryAfter > 0 {
		return nil
	}
	_, err := a.t.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, a.t.accountKey(a.email))
		p.ZRem(ctx, a.t.ipKey(a.ip), a.member)
		return nil
	})
	return err
}

// Cancel takes the attempt back: the password was never checked (the
// server was busy or failed), or it was right but the login stopped at a
// later step that is not a guess (an unverified email, a missing code).
func (a *Attempt) Cancel(ctx context.Context) error {
	if a.RetryAfter > 0 {
		return nil
	}
	_, err := a.t.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, a.t.accountKey(a.email), a.member)
		p.ZRem(ctx, a.t.ipKey(a.ip), a.member)
		return nil
	})
	return err
}

// Limit is a per-IP request budget; see Throttle's Rate fields.
type Limit string

// The anonymous requests limited per IP.
const (
	LimitRegister         Limit = "register"
	LimitPasswordReset    Limit = "password_reset"
	LimitInvitationAccept Limit = "invitation_accept"
)

func (t *Throttle) rate(l Limit) Rate {
	switch l {
	case LimitRegister:
		return t.Register
	case LimitPasswordReset:
		return t.PasswordReset
	case LimitInvitationAccept:
		return t.InvitationAccept
	}
	panic("auth: unknown limit " + string(l))
}

// Allow counts one request of kind l from ip and returns 0, or, when ip has
// used its budget, the seconds until it may try again (nothing counted).
func (t *Throttle) Allow(ctx context.Context, l Limit, ip string) (int, error) {
	r := t.rate(l)
	_, wait, _, err := t.take(ctx, []string{t.Prefix + "rate:" + string(l) + ":" + ipBucket(ip)}, r.Window, r.N)
	return wait, err
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
	wait, err := t.AllowMailWait(ctx, kind, address)
	return wait == 0, err
}

// AllowMailWait is AllowMail that also says how long until the address may
// be sent another email of kind: 0 when this one may go (and is counted).
func (t *Throttle) AllowMailWait(ctx context.Context, kind, address string) (int, error) {
	_, wait, _, err := t.take(ctx, []string{t.Prefix + "mail:" + kind + ":" + address}, MailWindow, MailLimit)
	return wait, err
}

// Reset forgets an account's failures after a password reset.
func (t *Throttle) Reset(ctx context.Context, email string) error {
	return t.Redis.Del(ctx, t.accountKey(email)).Err()
}

// LimitIP counts one anonymous request of kind l from ip against its
// per-IP budget and returns 429 too_many_requests with Retry-After once the
// budget is spent. When Redis is unreachable it lets the request through
// (logged): these budgets bound cost and mail, and the hashing bound still
// holds without them, while logins fail closed instead.
func (s *Service) LimitIP(ctx context.Context, l Limit, ip string) error {
	wait, err := s.Throttle.Allow(ctx, l, ip)
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("limit", string(l)).Msg("per-IP limit unavailable; request allowed")
		return nil
	}
	if wait > 0 {
		return &apperr.Error{Kind: apperr.TooManyRequests, Code: "too_many_requests", RetryAfter: wait,
			Message: fmt.Sprintf("Too many requests from your address; try again in %d seconds.", wait)}
	}
	return nil
}
