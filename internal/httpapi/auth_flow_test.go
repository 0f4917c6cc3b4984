package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func claimsOf(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRegisterVerifyLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	reg := map[string]any{"email": "Ada@Example.com", "password": password, "name": "Ada"}
	e.expect(req{method: "POST", path: "/api/v1/auth/register", body: reg}, 202, nil)
	// Emails are case-insensitive and unique; a second registration changes
	// nothing (TestRegisterExistingEmailRevealsNothing).
	reg["email"] = "ADA@example.COM"
	e.expect(req{method: "POST", path: "/api/v1/auth/register", body: reg}, 202, nil)
	var created struct {
		UserID   string `db:"user_id"`
		OrgID    string `db:"org_id"`
		Verified bool   `db:"verified"`
	}
	if err := e.db.Owner.Get(&created, `SELECT u.id AS user_id, m.org_id, u.email_verified_at IS NOT NULL AS verified
		FROM users u JOIN memberships m ON m.user_id = u.id WHERE u.email = 'ada@example.com'`); err != nil || created.Verified {
		t.Fatalf("created %+v (%v)", created, err)
	}
	e.problem(req{method: "POST", path: "/api/v1/auth/register", body: map[string]any{
		"email": "bob@example.com", "password": "passwordpassword", "name": "Bob"}}, 400, "password_too_weak")
	e.problem(req{method: "POST", path: "/api/v1/auth/register", body: map[string]any{
		"email": "bob@example.com", "password": "short", "name": "Bob"}}, 400, "validation_failed")
	e.problem(req{method: "POST", path: "/api/v1/auth/register", body: map[string]any{
		"email": "not-an-email", "password": password, "name": "Bob"}}, 400, "validation_failed")
	e.problem(req{method: "POST", path: "/api/v1/auth/register", body: `{"email":"x@example.com","password":"` + password + `","name":"X","admin":true}`}, 400, "validation_failed")

	login := req{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": "ada@example.com", "password": password}}
	e.problem(login, 403, "email_not_verified")

	// A resend voids the first link.
	first := e.mailToken("ada@example.com", "Confirm your email", 1)
	e.expect(req{method: "POST", path: "/api/v1/auth/resend-verification", body: map[string]string{"email": "ada@example.com"}}, 202, nil)
	e.expect(req{method: "POST", path: "/api/v1/auth/resend-verification", body: map[string]string{"email": "nobody@example.com"}}, 202, nil)
	second := e.mailToken("ada@example.com", "Confirm your email", 2)
	e.problem(req{method: "POST", path: "/api/v1/auth/verify-email", body: map[string]string{"token": first}}, 400, "invalid_token")
	e.expect(req{method: "POST", path: "/api/v1/auth/verify-email", body: map[string]string{"token": second}}, 204, nil)
	e.problem(req{method: "POST", path: "/api/v1/auth/verify-email", body: map[string]string{"token": second}}, 400, "invalid_token")
	if n := e.mailCount("nobody@example.com", ""); n != 0 {
		t.Fatalf("mailed an unknown address %d times", n)
	}

	var s session
	e.expect(login, 200, &s)
	if s.TokenType != "Bearer" || s.ExpiresIn != 900 || s.RefreshToken == "" || s.OrganizationID != created.OrgID || s.Role != "owner" {
		t.Fatalf("session %+v", s)
	}
	c := claimsOf(t, s.AccessToken)
	if c["sub"] != created.UserID || c["org"] != created.OrgID || c["role"] != "owner" || c["jti"] == "" || c["aud"] == nil || c["sid"] == nil {
		t.Fatalf("claims %v", c)
	}
	if c["exp"].(float64)-c["iat"].(float64) != 900 {
		t.Fatalf("access token lives %v s", c["exp"].(float64)-c["iat"].(float64))
	}

	var me struct {
		Email         string `json:"email"`
		EmailVerified bool   `json:"email_verified"`
		Memberships   []struct {
			OrganizationName string `json:"organization_name"`
			Role             string `json:"role"`
		} `json:"memberships"`
	}
	e.expect(req{method: "GET", path: "/api/v1/me", token: s.AccessToken}, 200, &me)
	if !me.EmailVerified || len(me.Memberships) != 1 || me.Memberships[0].Role != "owner" || me.Memberships[0].OrganizationName != "Ada's organization" {
		t.Fatalf("me %+v", me)
	}

	// Wrong password and unknown email are indistinguishable.
	e.problem(req{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": "ada@example.com", "password": "wrong password 123"}}, 401, "invalid_credentials")
	e.problem(req{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": "nobody@example.com", "password": "wrong password 123"}}, 401, "invalid_credentials")

	e.problem(req{method: "POST", path: "/api/v1/auth/login", body: "x", header: map[string]string{"Content-Type": "text/plain"}}, 415, "unsupported_media_type")
	e.problem(req{method: "POST", path: "/api/v1/auth/login", body: "{"}, 400, "invalid_json")
	e.problem(req{method: "GET", path: "/api/v1/me"}, 401, "unauthenticated")
	e.problem(req{method: "GET", path: "/api/v1/me", header: map[string]string{"Authorization": "Basic eDp5"}}, 401, "unauthenticated")
	e.problem(req{method: "GET", path: "/api/v1/me", token: s.AccessToken + "x"}, 401, "invalid_token")
	e.problem(req{method: "GET", path: "/api/v1/me", token: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}, 401, "invalid_token")
}

func TestLoginThrottle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	s := e.signup("eve@example.com", "Eve", "Eve Inc")
	bad := map[string]string{"email": "eve@example.com", "password": "wrong password 123"}
	for i := range 10 {
		e.problem(req{method: "POST", path: "/api/v1/auth/login", body: bad, ip: "198.51.100." + strconv.Itoa(i+1)}, 401, "invalid_credentials")
	}
	// Locked for the account, from any IP, even with the right password.
	w := e.problem(req{method: "POST", path: "/api/v1/auth/login", ip: "203.0.113.9",
		body: map[string]string{"email": "eve@example.com", "password": password}}, 429, "too_many_attempts")
	ra, err := strconv.Atoi(w.Header().Get("Retry-After"))
	if err != nil || ra < 1 || ra > 900 {
		t.Fatalf("Retry-After %q", w.Header().Get("Retry-After"))
	}
	var n int
	if err := e.db.Owner.Get(&n, `SELECT count(*) FROM audit_log WHERE org_id = $1 AND action = 'user.login_locked'`, s.OrganizationID); err != nil || n != 1 {
		t.Fatalf("lockout audit entries %d (%v)", n, err)
	}

	// Per IP: many accounts failing from one address lock that address.
	e.auth.Throttle.IPLimit = 3
	for i := range 3 {
		e.problem(req{method: "POST", path: "/api/v1/auth/login", ip: "192.0.2.77",
			body: map[string]string{"email": "u" + strconv.Itoa(i) + "@example.com", "password": "wrong password 123"}}, 401, "invalid_credentials")
	}
	e.problem(req{method: "POST", path: "/api/v1/auth/login", ip: "192.0.2.77",
		body: map[string]string{"email": "other@example.com", "password": "wrong password 123"}}, 429, "too_many_attempts")
	e.problem(req{method: "POST", path: "/api/v1/auth/login", ip: "192.0.2.78",
		body: map[string]string{"email": "other@example.com", "password": "wrong password 123"}}, 401, "invalid_credentials")
}

// TestLoginTiming: a login naming no account costs about what a wrong
// password costs (one argon2id run each), so timing reveals no accounts.
func TestLoginTiming(t *testing.T) {
	e := newEnv(t, envOpts{noMail: true})
	e.expect(req{method: "POST", path: "/api/v1/auth/register", body: map[string]any{
		"email": "tim@example.com", "password": password, "name": "Tim"}}, 202, nil)
	measure := func(email string) time.Duration {
		start := time.Now()
		e.problem(req{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": email, "password": "wrong password 123"}}, 401, "invalid_credentials")
		return time.Since(start)
	}
	var known, unknown []time.Duration
	for i := range 7 {
		known = append(known, measure("tim@example.com"))
		unknown = append(unknown, measure("nobody"+strconv.Itoa(i)+"@example.com"))
	}
	k, u := median(known), median(unknown)
	// Without the dummy hash an unknown email answers ~50x faster; a factor
	// of 3 leaves room for a busy machine.
	if k > 3*u || u > 3*k {
		t.Fatalf("wrong password takes %s, unknown email %s", k, u)
	}
}

func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}

// TestLoginWithRedisDown: without the throttle, logins fail closed with 503.
func TestLoginWithRedisDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noMail: true})
	e.redis.Stop()
	w := e.problem(req{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": "a@example.com", "password": "wrong password 123"}}, 503, "login_unavailable")
	if w.Header().Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
}

func TestRefreshRotationReuseAndLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	s := e.signup("rot@example.com", "Rot", "")
	refresh := func(tok string) *req {
		return &req{method: "POST", path: "/api/v1/auth/refresh", body: map[string]string{"refresh_token": tok}}
	}
	var s2 session
	e.expect(*refresh(s.RefreshToken), 200, &s2)
	if s2.RefreshToken == s.RefreshToken || s2.AccessToken == "" || s2.OrganizationID != s.OrganizationID {
		t.Fatalf("rotation %+v", s2)
	}
	var s3 session
	e.expect(*refresh(s2.RefreshToken), 200, &s3)
	// Replaying a rotated token revokes the family: the newest token dies too.
	e.problem(*refresh(s.RefreshToken), 401, "refresh_token_reused")
	e.problem(*refresh(s3.RefreshToken), 401, "invalid_refresh_token")
	e.problem(*refresh("no-such-token"), 401, "invalid_refresh_token")
	e.problem(req{method: "POST", path: "/api/v1/auth/refresh", body: `{}`}, 400, "validation_failed")

	// Another login is another family, untouched by the revocation.
	other := e.login("rot@example.com", password)
	e.expect(req{method: "POST", path: "/api/v1/auth/logout", body: map[string]string{"refresh_token": other.RefreshToken}}, 204, nil)
	e.problem(*refresh(other.RefreshToken), 401, "invalid_refresh_token")
}

func TestRefreshCookieMode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{cookie: true})
	e.expect(req{method: "POST", path: "/api/v1/auth/register", body: map[string]any{
		"email": "spa@example.com", "password": password, "name": "Spa"}}, 202, nil)
	tok := e.mailToken("spa@example.com", "Confirm your email", 1)
	e.expect(req{method: "POST", path: "/api/v1/auth/verify-email", body: map[string]string{"token": tok}}, 204, nil)
	var s session
	w := e.expect(req{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": "spa@example.com", "password": password}}, 200, &s)
	if s.RefreshToken != "" {
		t.Fatal("cookie mode leaked the refresh token into JSON")
	}
	ck := refreshCookie(t, w)
	if !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/api/v1/auth" {
		t.Fatalf("cookie %+v", ck)
	}
	spa := map[string]string{"X-Requested-With": "keel", "Origin": "https://spa.keel.test"}
	e.problem(req{method: "POST", path: "/api/v1/auth/refresh", body: `{}`, cookies: []*http.Cookie{ck}}, 403, "csrf_check_failed")
	e.problem(req{method: "POST", path: "/api/v1/auth/refresh", body: `{}`, cookies: []*http.Cookie{ck},
		header: map[string]string{"X-Requested-With": "keel", "Origin": "https://evil.example"}}, 403, "csrf_check_failed")
	w = e.expect(req{method: "POST", path: "/api/v1/auth/refresh", body: `{}`, cookies: []*http.Cookie{ck}, header: spa}, 200, &s)
	ck2 := refreshCookie(t, w)
	if ck2.Value == ck.Value {
		t.Fatal("refresh cookie not rotated")
	}
	w = e.expect(req{method: "POST", path: "/api/v1/auth/logout", body: `{}`, cookies: []*http.Cookie{ck2}, header: spa}, 204, nil)
	if c := refreshCookie(t, w); c.MaxAge >= 0 {
		t.Fatalf("logout did not clear the cookie: %+v", c)
	}
	e.problem(req{method: "POST", path: "/api/v1/auth/refresh", body: `{}`, cookies: []*http.Cookie{ck2}, header: spa}, 401, "invalid_refresh_token")
}

func refreshCookie(t *testing.T, w interface{ Result() *http.Response }) *http.Cookie {
	t.Helper()
	for _, c := range w.Result().Cookies() {
		if c.Name == "keel_refresh" {
			return c
		}
	}
	t.Fatal("no keel_refresh cookie")
	return nil
}
