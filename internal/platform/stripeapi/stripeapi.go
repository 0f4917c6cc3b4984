// Package stripeapi builds the Stripe API client every binary uses: one
// place that points stripe-go at Stripe or at stripe-mock (STRIPE_API_BASE)
// and sets its timeouts and retries. The client is a value, never
// stripe-go's package-level key, so tests can run clients side by side.
package stripeapi

import (
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

// Config is how to reach Stripe.
type Config struct {
	SecretKey string
	// APIBase is empty for Stripe itself, or a stripe-mock URL.
	APIBase string
	// MaxNetworkRetries retries a call whose connection failed or that
	// Stripe answered 409/429/5xx; a retry reuses the call's idempotency
	// key, so it cannot charge twice. 0 means 2.
	MaxNetworkRetries int64
}

// New returns a client for c; nil when c has no secret key (billing off).
func New(c Config) *client.API {
	if c.SecretKey == "" {
		return nil
	}
	retries := c.MaxNetworkRetries
	if retries == 0 {
		retries = 2
	}
	cfg := &stripe.BackendConfig{
		HTTPClient:        &http.Client{Timeout: 30 * time.Second},
		MaxNetworkRetries: stripe.Int64(retries),
		// stripe-go logs every retry and error at its level; Keel logs the
		// errors it returns, with context.
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	if c.APIBase != "" {
		cfg.URL = stripe.String(c.APIBase)
	}
	backends := &stripe.Backends{
		API:     stripe.GetBackendWithConfig(stripe.APIBackend, cfg),
		Connect: stripe.GetBackendWithConfig(stripe.ConnectBackend, cfg),
		Uploads: stripe.GetBackendWithConfig(stripe.UploadsBackend, cfg),
	}
	sc := &client.API{}
	sc.Init(c.SecretKey, backends)
	return sc
}
