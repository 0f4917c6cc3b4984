package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/app"
	"github.com/keelhq/keel/internal/auth"
)

// problemCode returns a response's problem code ("" for other bodies).
func problemCode(w *httptest.ResponseRecorder) string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &p)
	return p.Code
}

// retryAfter fails unless w carries a Retry-After of 1 to max seconds.
func retryAfter(t *testing.T, w *httptest.ResponseRecorder, max int) {
	t.Helper()
	ra, err := strconv.Atoi(w.Header().Get("Retry-After"))
	if err != nil || ra < 1 || ra > max {
		t.Errorf("Retry-After %q, want 1..%d", w.Header().Get("Retry-After"), max)
	}
}

// concurrently sends every request at once and returns the responses in
// order.
func (e *env) concurrently(rs []req) []*httptest.ResponseRecorder {
	out := make([]*httptest.ResponseRecorder, len(rs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = e.do(r)
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// TestConcurrentWrongPasswords: 30 wrong passwords for one account sent at
// once. When the lock check and the failure count are separate steps
// around argon2id, all 30 pass the check before any is counted and all 30
// are tried; counted before the check, exactly the limit of 10 are.
func TestConcurrentWrongPasswords(t *testing.T) {
	t.Parallel()
	// A long hashing wait: this test is about the throttle, not the hashing bound.
	e := newEnv(t, envOpts{limits: app.Limits{HashWait: 5 * time.Minute}})
	e.signup("gus@example.com", "Gus", "")
	before := e.auth.Hasher.Stats().Verifies
	const n = 30
	rs := make([]req, n)
	for i := range rs {
		rs[i] = req{method: "POST", path: "/api/v1/auth/login", ip: "198.51.100." + strconv.Itoa(i+1),
			body: map[string]string{"email": "gus@example.com", "password": "wrong password " + strconv.Itoa(i)}}
	}
	var wrong, locked int
	for i, w := range e.concurrently(rs) {
		switch c := problemCode(w); {
		case w.Code == 401 && c == "invalid_credentials":
			wrong++
		case w.Code == 429 && c == "too_many_attempts":
			locked++
			retryAfter(t, w, 900)
		default:
			t.Errorf("attempt %d: %d %q: %s", i, w.Code, c, w.Body.String())
		}
	}
	verified := e.auth.Hasher.Stats().Verifies - before
	t.Logf("%d wrong, %d locked, %d passwords verified", wrong, locked, verified)
	if wrong != 10 || locked != n-10 {
		t.Fatalf("%d answers said the password was wrong and %d that the account is locked; want 10 and %d", wrong, locked, n-10)
	}
	if verified != 10 {
		t.Fatalf("%d password verifications for %d attempts, want the limit of 10", verified, n)
	}
	e.problem(req{method: "POST", path: "/api/v1/auth/login", ip: "203.0.113.5",
		body: map[string]string{"email": "gus@example.com", "password": password}}, 429, "too_many_attempts")
}

// TestPasswordChecksShareTheLoginThrottle: a thief with a stolen session
// guesses the password through the checks outside login (PATCH /me's
// current password, 2fa/disable). Those failures count with the login
// failures, and once the account is locked every password check refuses,
// the right password included.
func TestPasswordChecksShareTheLoginThrottle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	s := e.signup("pam@example.com", "Pam", "")
	var setup struct {
		Secret string `json:"secret"`
	}
	e.expect(req{method: "POST", path: "/api/v1/auth/2fa/setup", token: s.AccessToken}, 200, &setup)
	code := func() string {
		c, err := auth.TOTPCode(setup.Secret, e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	e.expect(req{method: "POST", path: "/api/v1/auth/2fa/enable", token: s.AccessToken, body: map[string]string{"code": code(), "password": password}}, 200, nil)
	e.clock.Advance(30 * time.Second)

	patch := func(current string) req {
		return req{method: "PATCH", path: "/api/v1/me", token: s.AccessToken, ip: "198.51.100.1",
			body: map[string]string{"current_password": current, "new_password": "a new long passphrase 7"}}
	}
	disable := func(pw string) req {
		return req{method: "POST", path: "/api/v1/auth/2fa/disable", token: s.AccessToken, ip: "198.51.100.2",
			body: map[string]string{"password": pw, "code": code()}}
	}
	login := func(pw string) req {
		return req{method: "POST", path: "/api/v1/auth/login", ip: "198.51.100.3",
			body: map[string]string{"email": "pam@example.com", "password": pw, "totp_code": code()}}
	}
	for range 5 {
		e.problem(patch("wrong password 123"), 403, "invalid_password")
	}
	for range 4 {
		e.problem(disable("wrong password 123"), 403, "invalid_password")
	}
	e.problem(login("wrong password 123"), 401, "invalid_credentials") // the 10th failure

	for _, r := range []req{patch(password), disable(password), login(password)} {
		retryAfter(t, e.problem(r, 429, "too_many_attempts"), 900)
	}
	var n int
	if err := e.db.Owner.Get(&n, `SELECT count(*) FROM audit_log WHERE org_id = $1 AND action = 'user.login_locked'`, s.OrganizationID); err != nil || n != 1 {
		t.Fatalf("lockout audit entries %d (%v)", n, err)
	}
	var hash string
	if err := e.db.Owner.Get(&hash, `SELECT password_hash FROM users WHERE email = 'pam@example.com'`); err != nil {
		t.Fatal(err)
	}
	if ok, _ := auth.VerifyPassword(password, hash); !ok {
		t.Fatal("the password changed while the account was locked")
	}
}

// TestTrustedProxies: behind a load balancer every request comes from the
// balancer's address. With TRUSTED_PROXIES naming it, the client IP is read
// from X-Forwarded-For past the trusted hops: failures from many clients
// lock only those clients, a client cannot choose its address by sending
// its own X-Forwarded-For, a peer that is not a trusted proxy is its own
// client whatever it sends, and the audit log records the client.
func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	const proxy = "10.20.30.40"
	e := newEnv(t, envOpts{trustedProxies: []string{"10.20.30.0/24"}})
	s := e.signup("tina@example.com", "Tina", "Tina Inc")
	e.auth.Throttle.IPLimit = 3
	n := 0
	try := func(peer, xff string, status int, code string) {
		t.Helper()
		n++
		e.problem(req{method: "POST", path: "/api/v1/auth/login", ip: peer, header: map[string]string{"X-Forwarded-For": xff},
			body: map[string]string{"email": fmt.Sprintf("guess%d@example.com", n), "password": "wrong password 123"}}, status, code)
	}

	// Five clients behind the balancer each use up their own budget, and
	// lock only themselves.
	for c := 1; c <= 5; c++ {
		client := fmt.Sprintf("203.0.113.%d", c)
		for range 3 {
			try(proxy, client, 401, "invalid_credentials")
		}
		try(proxy, client, 429, "too_many_attempts")
	}
	try(proxy, "203.0.113.99", 401, "invalid_credentials")
	// What the client sent is to the left of what the balancer appended.
	try(proxy, "203.0.113.99, 203.0.113.1", 429, "too_many_attempts")
	// A second trusted hop is skipped.
	try(proxy, "203.0.113.1, 10.20.30.41", 429, "too_many_attempts")
	try(proxy, "203.0.113.98, 10.20.30.41", 401, "invalid_credentials")

	// A peer outside TRUSTED_PROXIES is the client, whatever it forwards.
	for i := range 3 {
		try("198.51.100.7", fmt.Sprintf("192.0.2.%d", 100+i), 401, "invalid_credentials")
	}
	try("198.51.100.7", "192.0.2.200", 429, "too_many_attempts")
	try(proxy, "192.0.2.100", 401, "invalid_credentials")

	// The audit log records the client, not the balancer.
	e.expect(req{method: "POST", path: "/api/v1/auth/login", ip: proxy, header: map[string]string{"X-Forwarded-For": "203.0.113.77"},
		body: map[string]string{"email": "tina@example.com", "password": password}}, 200, nil)
	var ip string
	if err := e.db.Owner.Get(&ip, `SELECT ip FROM audit_log WHERE org_id = $1 AND action = 'user.login' ORDER BY created_at DESC LIMIT 1`, s.OrganizationID); err != nil {
		t.Fatal(err)
	}
	if ip != "203.0.113.77" {
		t.Fatalf("audit log records %q, want the forwarded client 203.0.113.77", ip)
	}
}

// TestHashingIsBounded: argon2id holds 19 MiB per run, so concurrent
// registrations without a bound are unbounded memory. With one hashing slot
// and a short wait, a burst gets 503 server_busy with Retry-After for what
// cannot be hashed in time, never more than one hash runs at once, and the
// API serves again once the burst has passed.
func TestHashingIsBounded(t *testing.T) {
	t.Parallel()
	// 40 passes: one hash takes far longer than the 100 ms wait.
	slow := auth.OWASPParams
	slow.Time = 40
	e := newEnv(t, envOpts{noMail: true, params: &slow, limits: app.Limits{HashConcurrency: 1, HashWait: 100 * time.Millisecond}})
	rs := make([]req, 6)
	for i := range rs {
		rs[i] = req{method: "POST", path: "/api/v1/auth/register", ip: "198.51.100." + strconv.Itoa(i+1),
			body: map[string]any{"email": fmt.Sprintf("burst%d@example.com", i), "password": password, "name": "Burst"}}
	}
	created, busy := 0, 0
	for i, w := range e.concurrently(rs) {
		switch c := problemCode(w); {
		case w.Code == 202:
			created++
		case w.Code == 503 && c == "server_busy":
			busy++
			retryAfter(t, w, 1)
		default:
			t.Errorf("registration %d: %d %q: %s", i, w.Code, c, w.Body.String())
		}
	}
	st := e.auth.Hasher.Stats()
	t.Logf("%d created, %d busy; %+v", created, busy, st)
	if created < 1 || busy < 1 {
		t.Fatalf("%d created and %d refused as busy; want both", created, busy)
	}
	if st.PeakInFlight != 1 || st.Busy != int64(busy) {
		t.Fatalf("hasher stats %+v after %d busy answers", st, busy)
	}
	e.expect(req{method: "POST", path: "/api/v1/auth/register", ip: "198.51.100.99",
		body: map[string]any{"email": "after@example.com", "password": password, "name": "After"}}, 202, nil)
}

// TestPerIPLimits: one address can make the API register accounts, send
// reset mail and accept invitations anonymously (each an argon2id hash or
// an email) only so often; other addresses are unaffected. IPv6 addresses
// count by /64.
func TestPerIPLimits(t *testing.T) {
	t.Parallel()
	three := auth.Rate{N: 3, Window: time.Hour}
	e := newEnv(t, envOpts{limits: app.Limits{Register: three, PasswordReset: three, InvitationAccept: three}})
	owner := e.signup("olga@example.com", "Olga", "Olga Inc")

	register := func(ip string, i int) req {
		return req{method: "POST", path: "/api/v1/auth/register", ip: ip,
			body: map[string]any{"email": fmt.Sprintf("r%d@example.com", i), "password": password, "name": "R"}}
	}
	for i := range 3 {
		e.expect(register("198.51.100.10", i), 202, nil)
	}
	retryAfter(t, e.problem(register("198.51.100.10", 3), 429, "too_many_requests"), 3600)
	e.expect(register("198.51.100.11", 4), 202, nil)
	e.expect(register("[2001:db8:1:2::1]", 5), 202, nil)
	e.expect(register("[2001:db8:1:2::2]", 6), 202, nil)
	e.expect(register("[2001:db8:1:2:ffff::3]", 7), 202, nil)
	e.problem(register("[2001:db8:1:2::4]", 8), 429, "too_many_requests")
	e.expect(register("[2001:db8:1:3::1]", 9), 202, nil)

	// Forgot and reset share one budget.
	forgot := func(ip string) req {
		return req{method: "POST", path: "/api/v1/auth/password/forgot", ip: ip, body: map[string]string{"email": "olga@example.com"}}
	}
	reset := func(ip string) req {
		return req{method: "POST", path: "/api/v1/auth/password/reset", ip: ip,
			body: map[string]string{"token": "bogus", "password": "a new long passphrase 7"}}
	}
	e.expect(forgot("198.51.100.20"), 202, nil)
	e.expect(forgot("198.51.100.20"), 202, nil)
	e.problem(reset("198.51.100.20"), 400, "invalid_token")
	e.problem(forgot("198.51.100.20"), 429, "too_many_requests")
	retryAfter(t, e.problem(reset("198.51.100.20"), 429, "too_many_requests"), 3600)
	e.expect(forgot("198.51.100.21"), 202, nil)

	// Accepting an invitation anonymously registers an account; with a
	// session it does not, and is not counted.
	accept := func(token string) req {
		return req{method: "POST", path: "/api/v1/invitations/accept", ip: "198.51.100.30", token: token,
			body: map[string]string{"token": "bogus", "name": "Ivan", "password": password}}
	}
	for range 3 {
		e.problem(accept(""), 400, "invalid_token")
	}
	retryAfter(t, e.problem(accept(""), 429, "too_many_requests"), 3600)
	e.problem(accept(owner.AccessToken), 400, "invalid_token")
}

// TestEmailChangeMailIsLimited: PATCH /me with a new email mails that
// address a link; any account could otherwise mail any third party without
// bound. The same per-address limit as resend-verification applies, and
// the refusal says so.
func TestEmailChangeMailIsLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	s := e.signup("mia@example.com", "Mia", "")
	change := req{method: "PATCH", path: "/api/v1/me", token: s.AccessToken, body: map[string]string{"email": "victim@example.org", "current_password": password}}
	for range auth.MailLimit {
		e.expect(change, 200, nil)
	}
	retryAfter(t, e.problem(change, 429, "too_many_emails"), 3600)
	// Each allowed change queued one link, each voiding the one before; the
	// worker mails a link only while it is live, so a link replaced before
	// the worker reached it is not mailed. Once the live one is mailed (its
	// hash is stored when the send is claimed, before SMTP, so the send's
	// acceptance is what to wait for), what arrived is at most the limit,
	// and the newest link works.
	if n := e.queuedTo("victim@example.org"); n != auth.MailLimit {
		t.Fatalf("%d emails queued to the address, want the limit %d", n, auth.MailLimit)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		var pending int
		if err := e.db.Owner.Get(&pending, `SELECT
			(SELECT count(*) FROM email_tokens WHERE email = 'victim@example.org' AND token_hash IS NULL AND used_at IS NULL AND expires_at > now())
			+ (SELECT count(*) FROM sent_emails WHERE recipient = 'victim@example.org' AND sent_at IS NULL)
			+ (SELECT 1 - count(*) FROM email_tokens WHERE email = 'victim@example.org' AND token_hash IS NOT NULL AND used_at IS NULL)`); err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the live link was not mailed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	n := e.mailCount("victim@example.org", "Confirm your email")
	if n < 1 || n > auth.MailLimit {
		t.Fatalf("%d emails to the address, want 1 to the limit %d", n, auth.MailLimit)
	}
	e.expect(req{method: "POST", path: "/api/v1/auth/verify-email", body: map[string]string{
		"token": e.mailToken("victim@example.org", "Confirm your email", n)}}, 204, nil)
}
