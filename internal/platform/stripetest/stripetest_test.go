package stripetest_test

import (
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/keelhq/keel/internal/platform/stripetest"
)

// The client reaches stripe-mock, which validates the request's shape.
func TestStartServesTheStripeAPI(t *testing.T) {
	s := stripetest.Start(t)
	p := &stripe.CustomerParams{Email: stripe.String("owner@example.com")}
	p.SetIdempotencyKey("keel-test-customer")
	c, err := s.Client.Customers.New(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID == "" {
		t.Fatalf("customer without an ID: %+v", c)
	}
	got := s.RequestsTo("POST", "/v1/customers")
	if len(got) != 1 || got[0].IdempotencyKey != "keel-test-customer" || got[0].Form.Get("email") != "owner@example.com" {
		t.Fatalf("recorded %+v", got)
	}
	// A parameter Stripe does not know is refused, as Stripe refuses it.
	bad := &stripe.CustomerParams{}
	bad.AddExtra("no_such_parameter", "x")
	if _, err := s.Client.Customers.New(bad); err == nil {
		t.Fatal("stripe-mock accepted an unknown parameter")
	}
}

// Sign produces a header stripe-go's verifier accepts, and only for the
// same secret and body.
func TestSignMatchesStripesScheme(t *testing.T) {
	body := []byte(`{"id":"evt_1","object":"event","api_version":"2023-10-16","type":"invoice.paid","data":{"object":{}}}`)
	h := stripetest.Sign(body, stripetest.WebhookSecret, time.Now())
	if err := webhook.ValidatePayload(body, h, stripetest.WebhookSecret); err != nil {
		t.Fatalf("valid signature refused: %v", err)
	}
	if err := webhook.ValidatePayload(body, h, "whsec_other"); err == nil {
		t.Fatal("signature accepted with another secret")
	}
	if err := webhook.ValidatePayload(append(body, ' '), h, stripetest.WebhookSecret); err == nil {
		t.Fatal("signature accepted for a changed body")
	}
}
