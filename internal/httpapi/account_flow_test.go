package httpapi_test

import (
	"testing"
	"time"

	"github.com/keelhq/keel/internal/auth"
)

func TestPasswordReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	s := e.signup("pat@example.com", "Pat", "")
	other := e.login("pat@example.com", password)

	e.expect(req{method: "POST", path: "/api/v1/auth/password/forgot", body: map[string]string{"email": "ghost@example.com"}}, 202, nil)
	e.expect(req{method: "POST", path: "/api/v1/auth/password/forgot", body: map[string]string{"email": "PAT@example.com"}}, 202, nil)
	tok := e.mailToken("pat@example.com", "Reset your", 1)

	reset := func(pw string) req {
		return req{method: "POST", path: "/api/v1/auth/password/reset", body: map[string]string{"token": tok, "password": pw}}
	}
	e.problem(reset("password12345"), 400, "password_too_weak")
	e.problem(req{method: "POST", path: "/api/v1/auth/password/reset", body: map[string]string{"token": "bogus", "password": "a new long passphrase 7"}}, 400, "invalid_token")
	e.expect(reset("a new long passphrase 7"), 204, nil)
	e.problem(reset("another long passphrase 8"), 400, "invalid_token")

	// Every session of the user is revoked.
	for _, rt := range []string{s.RefreshToken, other.RefreshToken} {
		e.problem(req{method: "POST", path: "/api/v1/auth/refresh", body: map[string]string{"refresh_token": rt}}, 401, "invalid_refresh_token")
	}
	e.problem(req{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": "pat@example.com", "password": password}}, 401, "invalid_credentials")
	e.login("pat@example.com", "a new long passphrase 7")
	if n := e.mailCount("ghost@example.com", ""); n != 0 {
		t.Fatalf("mailed an unknown address")
	}
	assertAudit(t, e, s.OrganizationID, "user.password_reset")

	// At most auth.MailLimit reset emails per address per hour, still 202.
	for range auth.MailLimit + 2 {
		e.expect(req{method: "POST", path: "/api/v1/auth/password/forgot", body: map[string]string{"email": "pat@example.com"}}, 202, nil)
	}
	var queued int
	if err := e.db.Owner.Get(&queued, `SELECT count(*) FROM outbox WHERE task_type = 'email:account' AND convert_from(payload, 'UTF8') LIKE '%reset_password%'`); err != nil {
		t.Fatal(err)
	}
	if queued != auth.MailLimit {
		t.Fatalf("%d reset emails queued, want the limit %d", queued, auth.MailLimit)
	}
}

func assertAudit(t *testing.T, e *env, orgID string, actions ...string) {
	t.Helper()
	for _, a := range actions {
		var n int
		if err := e.db.Owner.Get(&n, `SELECT count(*) FROM audit_log WHERE org_id = $1 AND action = $2`, orgID, a); err != nil || n == 0 {
			t.Errorf("no %s in the audit log of %s (%v)", a, orgID, err)
		}
	}
}

func TestTOTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	s := e.signup("tess@example.com", "Tess", "")
	var setup struct {
		Secret     string `json:"secret"`
		OtpauthURL string `json:"otpauth_url"`
	}
	e.expect(req{method: "POST", path: "/api/v1/auth/2fa/setup", token: s.AccessToken}, 200, &setup)
	if setup.Secret == "" || len(setup.OtpauthURL) < 10 || setup.OtpauthURL[:10] != "otpauth://" {
		t.Fatalf("setup %+v", setup)
	}
	var stored []byte
	if err := e.db.Owner.Get(&stored, `SELECT totp_secret FROM users WHERE email = 'tess@example.com'`); err != nil || len(stored) == 0 || string(stored) == setup.Secret {
		t.Fatalf("secret not stored encrypted (%v)", err)
	}
	code := func() string {
		c, err := auth.TOTPCode(setup.Secret, e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	e.problem(req{method: "POST", path: "/api/v1/auth/2fa/enable", token: s.AccessToken, body: map[string]string{"code": "000000", "password": password}}, 400, "invalid_totp_code")
	var en struct {
		RecoveryCodes []string `json:"recovery_codes"`
	}
	e.expect(req{method: "POST", path: "/api/v1/auth/2fa/enable", token: s.AccessToken, body: map[string]string{"code": code(), "password": password}}, 200, &en)
	if len(en.RecoveryCodes) != 10 {
		t.Fatalf("%d recovery codes", len(en.RecoveryCodes))
	}
	login := func(c string) req {
		return req{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": "tess@example.com", "password": password, "totp_code": c}}
	}
	e.problem(login(""), 401, "totp_required")
	// The code that enabled 2FA is spent for its time step.
	e.problem(login(code()), 401, "invalid_totp_code")
	e.clock.Advance(30 * time.Second)
	c := code()
	e.expect(login(c), 200, nil)
	e.problem(login(c), 401, "invalid_totp_code")
	e.expect(login(en.RecoveryCodes[0]), 200, nil)
	e.problem(login(en.RecoveryCodes[0]), 401, "invalid_totp_code")

	e.clock.Advance(30 * time.Second)
	e.problem(req{method: "POST", path: "/api/v1/auth/2fa/disable", token: s.AccessToken,
		body: map[string]string{"password": "wrong password 123", "code": code()}}, 403, "invalid_password")
	e.expect(req{method: "POST", path: "/api/v1/auth/2fa/disable", token: s.AccessToken,
		body: map[string]string{"password": password, "code": code()}}, 204, nil)
	e.expect(login(""), 200, nil)
	assertAudit(t, e, s.OrganizationID, "user.2fa_enabled", "user.2fa_disabled")
}

func TestUpdateMe(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	s := e.signup("max@example.com", "Max", "")
	e.signup("taken@example.com", "Taken", "")
	var me struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	}
	e.expect(req{method: "PATCH", path: "/api/v1/me", token: s.AccessToken, body: map[string]string{"name": "Maxine"}}, 200, &me)
	if me.Name != "Maxine" {
		t.Fatalf("name %q", me.Name)
	}
	e.problem(req{method: "PATCH", path: "/api/v1/me", token: s.AccessToken, body: map[string]string{"new_password": "a new long passphrase 7"}}, 400, "validation_failed")
	e.problem(req{method: "PATCH", path: "/api/v1/me", token: s.AccessToken, body: map[string]string{
		"current_password": "wrong password 123", "new_password": "a new long passphrase 7"}}, 403, "invalid_password")
	e.expect(req{method: "PATCH", path: "/api/v1/me", token: s.AccessToken, body: map[string]string{
		"current_password": password, "new_password": "a new long passphrase 7"}}, 200, nil)
	e.login("max@example.com", "a new long passphrase 7")
	assertAudit(t, e, s.OrganizationID, "user.password_changed")

	// A taken address answers like a free one (its owner is told instead).
	e.expect(req{method: "PATCH", path: "/api/v1/me", token: s.AccessToken, body: map[string]string{
		"email": "taken@example.com", "current_password": "a new long passphrase 7"}}, 200, &me)
	e.expect(req{method: "PATCH", path: "/api/v1/me", token: s.AccessToken, body: map[string]string{
		"email": "max2@example.com", "current_password": "a new long passphrase 7"}}, 200, &me)
	if me.Email != "max@example.com" {
		t.Fatalf("email changed before verification: %q", me.Email)
	}
	tok := e.mailToken("max2@example.com", "Confirm your email", 1)
	e.expect(req{method: "POST", path: "/api/v1/auth/verify-email", body: map[string]string{"token": tok}}, 204, nil)
	e.expect(req{method: "GET", path: "/api/v1/me", token: s.AccessToken}, 200, &me)
	if me.Email != "max2@example.com" {
		t.Fatalf("email %q after verification", me.Email)
	}
	e.login("max2@example.com", "a new long passphrase 7")
}
