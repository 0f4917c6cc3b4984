package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/admin"
	"github.com/keelhq/keel/internal/auth"
)

// platformAdmin is a platform admin's login opened with a TOTP code, as
// /api/v1/admin requires.
type platformAdmin struct {
	session
	UserID uuid.UUID
	Email  string
	// Secret is the admin's TOTP secret, for later codes (e.totp).
	Secret string
}

// newPlatformAdmin signs emailAddr up (with an organization of its own),
// grants platform admin as keelctl admin grant does, enables TOTP and logs
// in with a code.
func (e *env) newPlatformAdmin(emailAddr string) platformAdmin {
	e.t.Helper()
	s := e.signup(emailAddr, "Admin "+emailAddr, "")
	id, err := admin.SetPlatformAdmin(context.Background(), e.db.Platform, emailAddr, true, "test")
	if err != nil {
		e.t.Fatal(err)
	}
	secret := e.enableTOTP(s)
	a := platformAdmin{UserID: id, Email: emailAddr, Secret: secret}
	a.session = e.loginTOTP(emailAddr, secret)
	return a
}

// enableTOTP turns 2FA on for s's user and returns the TOTP secret.
func (e *env) enableTOTP(s session) string {
	e.t.Helper()
	var setup struct {
		Secret string `json:"secret"`
	}
	e.expect(req{method: "POST", path: "/api/v1/auth/2fa/setup", token: s.AccessToken}, 200, &setup)
	e.expect(req{method: "POST", path: "/api/v1/auth/2fa/enable", token: s.AccessToken,
		body: map[string]string{"code": e.totp(setup.Secret), "password": password}}, 200, nil)
	return setup.Secret
}

// totp moves the clock to the next 30-second step (a code works once per
// step) and returns the code for it.
func (e *env) totp(secret string) string {
	e.t.Helper()
	e.clock.Advance(30 * time.Second)
	c, err := auth.TOTPCode(secret, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// loginTOTP logs in with the password and a fresh TOTP code.
func (e *env) loginTOTP(emailAddr, secret string) session {
	e.t.Helper()
	var s session
	e.expect(req{method: "POST", path: "/api/v1/auth/login", body: map[string]string{
		"email": emailAddr, "password": password, "totp_code": e.totp(secret)}}, 200, &s)
	return s
}

// queueSession opens the queue UI as a: the cookie POST
// /api/v1/admin/queues/session sets.
func (e *env) queueSession(a platformAdmin) *http.Cookie {
	e.t.Helper()
	w := e.expect(req{method: "POST", path: "/api/v1/admin/queues/session", token: a.AccessToken}, 200, nil)
	for _, c := range w.Result().Cookies() {
		if c.Name == "keel_admin_queues" {
			return c
		}
	}
	e.t.Fatalf("no queue session cookie: %v", w.Header())
	return nil
}

// doQueues sends a request to the queue UI with the given headers and
// cookies.
func doQueues(h http.Handler, method, path string, hdr map[string]string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	for _, c := range cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}
