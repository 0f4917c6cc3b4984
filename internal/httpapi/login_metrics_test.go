package httpapi_test

import (
	"maps"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keelhq/keel/internal/auth"
)

// loginFailures reads keel_auth_login_failures_total by reason from reg.
func loginFailures(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "keel_auth_login_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					got[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return got
}

// TestLoginFailureMetrics: every way a login fails counts once under its
// own reason, every reason exists at zero before the first failure, and a
// successful login counts nothing.
func TestLoginFailureMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	reg := prometheus.NewRegistry()
	e.auth.Metrics = auth.NewMetrics(reg)
	want := map[string]float64{}
	for _, r := range auth.LoginFailureReasons {
		want[r] = 0
	}
	check := func(step string) {
		t.Helper()
		if got := loginFailures(t, reg); !maps.Equal(got, want) {
			t.Fatalf("%s: login failures %v, want %v", step, got, want)
		}
	}
	check("at start")

	login := func(emailAddr, pw, code string) req {
		return req{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": emailAddr, "password": pw, "totp_code": code}}
	}
	ada := e.signup("ada@example.com", "Ada", "")
	check("after a successful login")

	e.problem(login("nobody@example.com", password, ""), 401, "invalid_credentials")
	want[auth.LoginUnknownEmail]++
	e.problem(login("ada@example.com", "wrong password 123", ""), 401, "invalid_credentials")
	want[auth.LoginBadPassword]++
	check("wrong email and wrong password")

	e.expect(req{method: "POST", path: "/api/v1/auth/register", body: map[string]any{
		"email": "bob@example.com", "password": password, "name": "Bob"}}, 202, nil)
	e.problem(login("bob@example.com", password, ""), 403, "email_not_verified")
	want[auth.LoginUnverified]++

	e.signup("carol@example.com", "Carol", "")
	e.db.Owner.MustExec(`UPDATE users SET disabled_at = now() WHERE email = 'carol@example.com'`)
	e.problem(login("carol@example.com", password, ""), 403, "account_disabled")
	want[auth.LoginDisabled]++
	check("unverified and disabled")

	e.enableTOTP(ada)
	e.problem(login("ada@example.com", password, ""), 401, "totp_required")
	want[auth.LoginTOTPRequired]++
	e.problem(login("ada@example.com", password, "not-a-recovery-code"), 401, "invalid_totp_code")
	want[auth.LoginBadTOTP]++
	check("second factor")

	e.auth.Throttle.AccountLimit = 1
	e.problem(login("dave@example.com", "wrong password 123", ""), 401, "invalid_credentials")
	want[auth.LoginUnknownEmail]++
	e.problem(login("dave@example.com", "wrong password 123", ""), 429, "too_many_attempts")
	want[auth.LoginThrottled]++
	check("throttled")

	e.redis.Stop()
	e.problem(login("ada@example.com", password, ""), 503, "login_unavailable")
	want[auth.LoginUnavailable]++
	check("throttle unreachable")
}
