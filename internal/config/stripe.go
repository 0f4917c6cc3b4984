package config

import "strings"

// Stripe is how to reach Stripe and verify its webhooks.
type Stripe struct {
	// SecretKey is STRIPE_SECRET_KEY (sk_... or a restricted rk_...);
	// empty leaves billing's Stripe calls off (503 billing_unavailable).
	SecretKey string
	// WebhookSecret is STRIPE_WEBHOOK_SECRET (whsec_...), the endpoint's
	// signing secret; PreviousWebhookSecret (STRIPE_WEBHOOK_SECRET_PREVIOUS)
	// is also accepted while a rotation is under way.
	WebhookSecret         string
	PreviousWebhookSecret string
	// APIBase is STRIPE_API_BASE: empty is Stripe itself; a stripe-mock URL
	// in development and tests.
	APIBase string
}

// WebhookSecrets lists the secrets a signature may be made with, current
// first.
func (s Stripe) WebhookSecrets() []string {
	var out []string
	for _, v := range []string{s.WebhookSecret, s.PreviousWebhookSecret} {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

func loadStripe(l *Loader) Stripe {
	s := Stripe{
		SecretKey:             l.String("STRIPE_SECRET_KEY", ""),
		WebhookSecret:         l.String("STRIPE_WEBHOOK_SECRET", ""),
		PreviousWebhookSecret: l.String("STRIPE_WEBHOOK_SECRET_PREVIOUS", ""),
		APIBase:               l.URL("STRIPE_API_BASE", "", false, "https", "http"),
	}
	if s.SecretKey != "" && !strings.HasPrefix(s.SecretKey, "sk_") && !strings.HasPrefix(s.SecretKey, "rk_") {
		l.fail("STRIPE_SECRET_KEY", "must be a Stripe secret key (sk_live_..., sk_test_... or a restricted rk_...)")
	}
	for _, k := range []struct{ key, v string }{
		{"STRIPE_WEBHOOK_SECRET", s.WebhookSecret}, {"STRIPE_WEBHOOK_SECRET_PREVIOUS", s.PreviousWebhookSecret},
	} {
		if k.v != "" && !strings.HasPrefix(k.v, "whsec_") {
			l.fail(k.key, "must be a webhook signing secret (whsec_...), from the endpoint's page or `stripe listen`")
		}
	}
	if s.PreviousWebhookSecret != "" && s.WebhookSecret == "" {
		l.fail("STRIPE_WEBHOOK_SECRET_PREVIOUS", "is only for a rotation: set STRIPE_WEBHOOK_SECRET too")
	}
	return s
}

// Stripe reads the Stripe settings (keelctl stripe).
func (c *Ctl) Stripe() (Stripe, Postgres, Plans, App, error) {
	l := NewLoader(c.l.get)
	s, p, pl, a := loadStripe(l), loadPostgres(l), loadPlans(l), loadApp(l)
	return s, p, pl, a, l.Err()
}
