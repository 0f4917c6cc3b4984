package auth

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Why a login failed: the values of keel_auth_login_failures_total's
// reason label. The set is fixed, so the series count is too, whatever
// emails or addresses the attempts name.
const (
	LoginUnknownEmail = "unknown_email" // no account has that email
	LoginBadPassword  = "bad_password"  // an account, the wrong password
	LoginTOTPRequired = "totp_required" // right password, 2FA on, no code sent
	LoginBadTOTP      = "bad_totp"      // right password, wrong or reused code
	LoginUnverified   = "unverified"    // right password, email not verified
	LoginDisabled     = "disabled"      // right password, account disabled
	LoginThrottled    = "throttled"     // refused unchecked: the account or the IP is over its limit
	LoginUnavailable  = "unavailable"   // refused unchecked: the throttle's Redis is unreachable
)

// LoginFailureReasons lists every reason label value.
var LoginFailureReasons = []string{LoginUnknownEmail, LoginBadPassword, LoginTOTPRequired, LoginBadTOTP,
	LoginUnverified, LoginDisabled, LoginThrottled, LoginUnavailable}

// Metrics are auth's Prometheus collectors. A nil *Metrics records nothing
// (tests, keelctl).
type Metrics struct {
	loginFailures *prometheus.CounterVec
}

// NewMetrics registers auth's collectors on r, every reason's series at
// zero, so a rate or an alert on login failures works before the first one.
func NewMetrics(r prometheus.Registerer) *Metrics {
	m := &Metrics{
		loginFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_auth_login_failures_total", Help: "Failed logins by reason (" + strings.Join(LoginFailureReasons, ", ") + ").",
		}, []string{"reason"}),
	}
	for _, reason := range LoginFailureReasons {
		m.loginFailures.WithLabelValues(reason)
	}
	r.MustRegister(m.loginFailures)
	return m
}

// LoginFailed counts a failed login; reason is one of LoginFailureReasons.
func (m *Metrics) LoginFailed(reason string) {
	if m != nil {
		m.loginFailures.WithLabelValues(reason).Inc()
	}
}
