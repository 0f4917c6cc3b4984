package httpapi_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/platform/mailtest"
)

// The attacks of issue 8 ("account takeover and session hygiene"), each
// played through the HTTP API as the attacker would.

const (
	victimAddr = "victim@example.com"
	thiefAddr  = "thief@evil.test"
	newPass    = "a brand new passphrase 9"
)

// queuedTo counts the emails committed to the outbox for recipient: what
// was not queued can never be delivered, so absence is checked here rather
// than by waiting on Mailpit.
func (e *env) queuedTo(recipient string) int {
	e.t.Helper()
	var n int
	if err := e.db.Owner.Get(&n, `SELECT count(*) FROM outbox WHERE task_type IN ('email:send', 'email:account')
		AND convert_from(payload, 'UTF8')::jsonb ->> 'to' = $1`, recipient); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// noLink fails when a notice carries a link with a token: a notice goes to
// an address that may be the attacker's or read by them, and must not be a
// way in.
func noLink(t *testing.T, m mailtest.Message) {
	t.Helper()
	if strings.Contains(m.Text, "token=") || strings.Contains(m.HTML, "token=") {
		t.Fatalf("notice %q carries a token link:\n%s", m.Subject, m.Text)
	}
}

// A thief holding only a stolen access token (15 minutes) can change
// neither the email, nor the password, nor bind their own authenticator.
func TestStolenAccessTokenCannotTakeOver(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	stolen := e.signup(victimAddr, "Vic", "").AccessToken

	patch := func(body map[string]string) req {
		return req{method: "PATCH", path: "/api/v1/me", token: stolen, body: body}
	}
	e.problem(patch(map[string]string{"email": thiefAddr}), 400, "validation_failed")
	e.problem(patch(map[string]string{"email": thiefAddr, "current_password": "a guessed password 1"}), 403, "invalid_password")
	e.problem(patch(map[string]string{"new_password": newPass}), 400, "validation_failed")
	e.problem(patch(map[string]string{"new_password": newPass, "current_password": "a guessed password 1"}), 403, "invalid_password")

	// Setting up only stages a secret; binding it needs the password.
	var setup struct{ Secret string }
	e.expect(req{method: "POST", path: "/api/v1/auth/2fa/setup", token: stolen}, 200, &setup)
	code, err := auth.TOTPCode(setup.Secret, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	enable := func(body map[string]string) req {
		return req{method: "POST", path: "/api/v1/auth/2fa/enable", token: stolen, body: body}
	}
	e.problem(enable(map[string]string{"code": code}), 400, "validation_failed")
	e.problem(enable(map[string]string{"code": code, "password": "a guessed password 1"}), 403, "invalid_password")

	var me struct {
		Email       string `json:"email"`
		TOTPEnabled bool   `json:"totp_enabled"`
	}
	e.expect(req{method: "GET", path: "/api/v1/me", token: stolen}, 200, &me)
	if me.Email != victimAddr || me.TOTPEnabled {
		t.Fatalf("after the attempts: %+v", me)
	}
	if n := e.queuedTo(thiefAddr); n != 0 {
		t.Fatalf("%d emails queued to the thief's address", n)
	}
	e.login(victimAddr, password)
}

// The full takeover: the thief has the victim's password (phished) and a
// session of their own, and starts moving the account to their address.
// The victim is told at the old address, resets the password, and the
// pending change and the thief's session die with it.
func TestTakeoverEndsWithVictimOwningAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	victim := e.signup(victimAddr, "Vic", "")
	thief := e.login(victimAddr, password)

	e.expect(req{method: "PATCH", path: "/api/v1/me", token: thief.AccessToken, body: map[string]string{
		"email": thiefAddr, "current_password": password}}, 200, nil)
	// The thief's confirmation link and the victim's notice both go out; the
	// notice names the new address and carries no link to act on.
	confirm := e.mailToken(thiefAddr, "Confirm your email", 1)
	notice := e.mailWith(victimAddr, "email address is being changed", 1)
	noLink(t, notice)
	if !strings.Contains(notice.Text, thiefAddr) {
		t.Fatalf("the notice does not name the new address:\n%s", notice.Text)
	}
	if n := e.queuedTo(thiefAddr); n != 1 {
		t.Fatalf("%d emails queued to the new address, want its confirmation only", n)
	}

	// The victim reacts before the thief confirms.
	e.expect(req{method: "POST", path: "/api/v1/auth/password/forgot", body: map[string]string{"email": victimAddr}}, 202, nil)
	reset := e.mailToken(victimAddr, "Reset your", 1)
	e.expect(req{method: "POST", path: "/api/v1/auth/password/reset", body: map[string]string{"token": reset, "password": newPass}}, 204, nil)
	noLink(t, e.mailWith(victimAddr, "password was changed", 1))

	// Every way back in for the thief is closed.
	e.problem(req{method: "POST", path: "/api/v1/auth/verify-email", body: map[string]string{"token": confirm}}, 400, "invalid_token")
	for _, rt := range []string{thief.RefreshToken, victim.RefreshToken} {
		e.problem(req{method: "POST", path: "/api/v1/auth/refresh", body: map[string]string{"refresh_token": rt}}, 401, "invalid_refresh_token")
	}
	e.problem(req{method: "PATCH", path: "/api/v1/me", token: thief.AccessToken, body: map[string]string{
		"email": thiefAddr, "current_password": password}}, 403, "invalid_password")
	e.problem(req{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": victimAddr, "password": password}}, 401, "invalid_credentials")

	s := e.login(victimAddr, newPass)
	var me struct{ Email string }
	e.expect(req{method: "GET", path: "/api/v1/me", token: s.AccessToken}, 200, &me)
	if me.Email != victimAddr {
		t.Fatalf("the account's address is %q", me.Email)
	}
	assertAudit(t, e, s.OrganizationID, "user.email_change_requested", "user.password_reset")
}

// A password change keeps the session that made it and ends every other
// one, and voids every link mailed before it (a pending email change, a
// reset link, a verification link).
func TestPasswordChangeKeepsOnlyItsSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	victim := e.signup(victimAddr, "Vic", "")
	thief := e.login(victimAddr, password)
	e.expect(req{method: "PATCH", path: "/api/v1/me", token: thief.AccessToken, body: map[string]string{
		"email": thiefAddr, "current_password": password}}, 200, nil)
	confirm := e.mailToken(thiefAddr, "Confirm your email", 1)
	e.expect(req{method: "POST", path: "/api/v1/auth/password/forgot", body: map[string]string{"email": victimAddr}}, 202, nil)
	reset := e.mailToken(victimAddr, "Reset your", 1)

	// The victim changes the password from their own session.
	e.expect(req{method: "PATCH", path: "/api/v1/me", token: victim.AccessToken, body: map[string]string{
		"current_password": password, "new_password": newPass}}, 200, nil)
	noLink(t, e.mailWith(victimAddr, "password was changed", 1))

	var kept session
	e.expect(req{method: "POST", path: "/api/v1/auth/refresh", body: map[string]string{"refresh_token": victim.RefreshToken}}, 200, &kept)
	e.problem(req{method: "POST", path: "/api/v1/auth/refresh", body: map[string]string{"refresh_token": thief.RefreshToken}}, 401, "invalid_refresh_token")
	e.problem(req{method: "POST", path: "/api/v1/auth/verify-email", body: map[string]string{"token": confirm}}, 400, "invalid_token")
	e.problem(req{method: "POST", path: "/api/v1/auth/password/reset", body: map[string]string{"token": reset, "password": "the thief's own choice 1"}}, 400, "invalid_token")
	// The thief's access token outlives the session by up to 15 minutes, but
	// switching organizations cannot turn it into a new session.
	e.problem(req{method: "POST", path: "/api/v1/auth/switch-org", token: thief.AccessToken,
		body: map[string]string{"organization_id": thief.OrganizationID}}, 401, "session_ended")
	e.login(victimAddr, newPass)
	assertAudit(t, e, victim.OrganizationID, "user.password_changed")
}

// Turning 2FA on or off needs the password, and tells the account's address.
func TestTwoFactorChangesNeedPasswordAndNotify(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	s := e.signup(victimAddr, "Vic", "")
	var setup struct{ Secret string }
	e.expect(req{method: "POST", path: "/api/v1/auth/2fa/setup", token: s.AccessToken}, 200, &setup)
	code := func() string {
		c, err := auth.TOTPCode(setup.Secret, e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	e.expect(req{method: "POST", path: "/api/v1/auth/2fa/enable", token: s.AccessToken,
		body: map[string]string{"code": code(), "password": password}}, 200, nil)
	noLink(t, e.mailWith(victimAddr, "Two-factor authentication was turned on", 1))
	e.clock.Advance(30 * time.Second)
	e.expect(req{method: "POST", path: "/api/v1/auth/2fa/disable", token: s.AccessToken,
		body: map[string]string{"code": code(), "password": password}}, 204, nil)
	noLink(t, e.mailWith(victimAddr, "Two-factor authentication was turned off", 1))
}

// Logout ends the login whatever organization it was switched to: the
// attacker's sequence login, switch, logout leaves no token alive.
func TestLogoutAfterSwitchOrg(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	first := e.signup("olga@example.com", "Olga", "First")
	var second struct{ ID string }
	e.expect(req{method: "POST", path: "/api/v1/organizations", token: first.AccessToken, body: map[string]string{"name": "Second"}}, 201, &second)
	refresh := func(tok string) req {
		return req{method: "POST", path: "/api/v1/auth/refresh", body: map[string]string{"refresh_token": tok}}
	}
	switchTo := func(access, org string) session {
		var sw session
		e.expect(req{method: "POST", path: "/api/v1/auth/switch-org", token: access, body: map[string]string{"organization_id": org}}, 200, &sw)
		return sw
	}

	// Logout with the switched session's token.
	sw := switchTo(first.AccessToken, second.ID)
	e.expect(req{method: "POST", path: "/api/v1/auth/logout", body: map[string]string{"refresh_token": sw.RefreshToken}}, 204, nil)
	e.problem(refresh(first.RefreshToken), 401, "invalid_refresh_token")
	e.problem(refresh(sw.RefreshToken), 401, "invalid_refresh_token")
	// The ended login's access token cannot open a new session by switching.
	e.problem(req{method: "POST", path: "/api/v1/auth/switch-org", token: first.AccessToken,
		body: map[string]string{"organization_id": second.ID}}, 401, "session_ended")

	// Logout with the token from before the switch ends the switched one too.
	s := e.login("olga@example.com", password)
	sw = switchTo(s.AccessToken, second.ID)
	back := switchTo(sw.AccessToken, s.OrganizationID)
	e.expect(req{method: "POST", path: "/api/v1/auth/logout", body: map[string]string{"refresh_token": s.RefreshToken}}, 204, nil)
	for _, rt := range []string{sw.RefreshToken, back.RefreshToken} {
		e.problem(refresh(rt), 401, "invalid_refresh_token")
	}

	// One login is one family: the switch replaced the refresh token, so
	// replaying the one it replaced is reuse and ends the login.
	s = e.login("olga@example.com", password)
	sw = switchTo(s.AccessToken, second.ID)
	e.problem(refresh(s.RefreshToken), 401, "refresh_token_reused")
	e.problem(refresh(sw.RefreshToken), 401, "invalid_refresh_token")
}

// Registering an address that has an account answers exactly as a new
// registration does, and mails the owner instead of revealing anything.
func TestRegisterExistingEmailRevealsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.signup(victimAddr, "Vic", "")
	register := func(addr string) *bytes.Buffer {
		w := e.do(req{method: "POST", path: "/api/v1/auth/register", body: map[string]any{
			"email": addr, "password": "another fine passphrase 3", "name": "Someone"}})
		if w.Code != http.StatusAccepted {
			t.Fatalf("register %s: %d %s", addr, w.Code, w.Body.String())
		}
		return w.Body
	}
	fresh := register("newcomer@example.com").String()
	taken := register(strings.ToUpper(victimAddr)).String()
	if fresh != taken {
		t.Fatalf("a new and a taken address answer differently:\n %s\n %s", fresh, taken)
	}
	e.mailToken("newcomer@example.com", "Confirm your email", 1)
	m := e.mailWith(victimAddr, "tried to use your email address", 1)
	noLink(t, m)
	if !strings.Contains(m.Text, "reset your password") {
		t.Fatalf("the owner is not told what to do:\n%s", m.Text)
	}
	// Nothing else happened to the account: no second user, the old
	// password still works, no second verification link.
	var users int
	if err := e.db.Owner.Get(&users, `SELECT count(*) FROM users WHERE email = $1`, victimAddr); err != nil || users != 1 {
		t.Fatalf("%d users with the address (%v)", users, err)
	}
	e.login(victimAddr, password)
	if n := e.mailCount(victimAddr, "Confirm your email"); n != 1 {
		t.Fatalf("%d verification emails to the owner", n)
	}

	// Changing another account's address to a taken one reveals nothing
	// either: the same answer as for a free address.
	other := e.signup("other@example.com", "Oth", "")
	e.expect(req{method: "PATCH", path: "/api/v1/me", token: other.AccessToken, body: map[string]string{
		"email": victimAddr, "current_password": password}}, 200, nil)
	e.mailWith(victimAddr, "tried to use your email address", 2)
}
