package httpapi_test

import (
	"net/http"
	"testing"
	"time"
)

// Logout with everywhere ends every login of the user (the web app's "log
// out everywhere"), but only for a live refresh token.
func TestLogoutEverywhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{tokenClock: true})
	s := e.signup("everywhere@example.com", "Every", "")
	laptop := e.login("everywhere@example.com", password)
	bystander := e.signup("bystander@example.com", "By", "")
	refresh := func(tok string) req {
		return req{method: "POST", path: "/api/v1/auth/refresh", body: map[string]string{"refresh_token": tok}}
	}
	everywhere := func(tok string) req {
		return req{method: "POST", path: "/api/v1/auth/logout", body: map[string]any{"refresh_token": tok, "everywhere": true}}
	}
	var phone session
	e.expect(refresh(s.RefreshToken), 200, &phone)

	// A replaced or unknown token cannot sign the user out everywhere, and
	// nothing changes.
	e.problem(everywhere(s.RefreshToken), 401, "invalid_refresh_token")
	e.problem(everywhere("no-such-token"), 401, "invalid_refresh_token")
	e.problem(req{method: "POST", path: "/api/v1/auth/logout", body: map[string]any{"refresh_token": laptop.RefreshToken, "everywhere": "yes"}},
		400, "validation_failed")
	var laptop2 session
	e.expect(refresh(laptop.RefreshToken), 200, &laptop2)

	e.expect(everywhere(laptop2.RefreshToken), 204, nil)
	e.problem(refresh(phone.RefreshToken), 401, "invalid_refresh_token")
	e.problem(refresh(laptop2.RefreshToken), 401, "invalid_refresh_token")
	assertAudit(t, e, s.OrganizationID, "user.sessions_revoked")
	// An access token already issued keeps working until it expires, as
	// docs/web.md and docs/identity.md say (a signed JWT, checked without a
	// session lookup): at most the access TTL, 15 minutes.
	e.expect(req{method: "GET", path: "/api/v1/me", token: phone.AccessToken}, 200, nil)
	e.clock.Advance(15*time.Minute + 10*time.Second) // past exp and the 5 s leeway
	e.problem(req{method: "GET", path: "/api/v1/me", token: phone.AccessToken}, 401, "invalid_token")
	// Another user's login is untouched.
	e.expect(refresh(bystander.RefreshToken), 200, nil)
}

func TestLogoutEverywhereCookieMode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{cookie: true})
	e.expect(req{method: "POST", path: "/api/v1/auth/register", body: map[string]any{
		"email": "spa-all@example.com", "password": password, "name": "Spa"}}, 202, nil)
	tok := e.mailToken("spa-all@example.com", "Confirm your email", 1)
	e.expect(req{method: "POST", path: "/api/v1/auth/verify-email", body: map[string]string{"token": tok}}, 204, nil)
	login := req{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": "spa-all@example.com", "password": password}}
	tab := refreshCookie(t, e.expect(login, 200, nil))
	other := refreshCookie(t, e.expect(login, 200, nil))
	spa := map[string]string{"X-Requested-With": "keel"}
	out := req{method: "POST", path: "/api/v1/auth/logout", body: map[string]any{"everywhere": true}, cookies: []*http.Cookie{tab}}
	e.problem(out, 403, "csrf_check_failed")
	out.header = spa
	if c := refreshCookie(t, e.expect(out, 204, nil)); c.MaxAge >= 0 {
		t.Fatalf("logout everywhere did not clear the cookie: %+v", c)
	}
	for _, ck := range []*http.Cookie{tab, other} {
		e.problem(req{method: "POST", path: "/api/v1/auth/refresh", body: `{}`, cookies: []*http.Cookie{ck}, header: spa}, 401, "invalid_refresh_token")
	}
}
