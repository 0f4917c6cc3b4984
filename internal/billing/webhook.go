package billing

import (
	"context"
	"errors"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/keelhq/keel/internal/apperr"
)

// ErrBadSignature answers a webhook delivery whose Stripe-Signature is
// missing, made with another secret, over another body, or older than the
// tolerance. Nothing of it is stored.
var ErrBadSignature = apperr.New(apperr.Invalid, "invalid_signature",
	"The Stripe-Signature header is missing, stale (older than 5 minutes) or does not match the body and the endpoint's signing secret.")

// errNotEvent answers a well-signed body that is not a Stripe event.
var errNotEvent = apperr.New(apperr.Invalid, "invalid_event", "The body is not a Stripe event (id, type and created are required).")

// Intake verifies a webhook delivery's signature over its raw body with
// each of WebhookSecrets (current, then previous during a rotation) and
// Stripe's default 5-minute tolerance, then accepts the event (Accept).
// duplicate is true for an event ID already stored, which changes nothing.
//
// Events of any API version are stored: refusing them would only make
// Stripe retry them for 3 days and then drop them. The worker reads only
// APIVersion's (see ApplyEvent), so the signature is checked without
// stripe-go's version check, and without decoding the whole event twice
// (Accept reads the few fields the inbox keeps).
func (s *Service) Intake(ctx context.Context, body []byte, header string) (duplicate bool, err error) {
	if len(s.WebhookSecrets) == 0 {
		s.Metrics.Delivery("unavailable")
		return false, ErrUnavailable
	}
	if !s.verify(body, header) {
		s.Metrics.Delivery("bad_signature")
		return false, ErrBadSignature
	}
	inserted, err := s.Accept(ctx, body)
	switch {
	case errors.Is(err, errNotStripeEvent):
		s.Metrics.Delivery("bad_request")
		return false, errNotEvent
	case err != nil:
		return false, err
	case !inserted:
		s.Metrics.Delivery("duplicate")
		return true, nil
	}
	s.Metrics.Delivery("stored")
	return false, nil
}

// verify reports whether header signs body with one of the secrets, within
// webhook.DefaultTolerance of now.
func (s *Service) verify(body []byte, header string) bool {
	if header == "" {
		return false
	}
	for _, secret := range s.WebhookSecrets {
		err := webhook.ValidatePayloadWithTolerance(body, header, secret, webhook.DefaultTolerance)
		if err == nil {
			return true
		}
		if errors.Is(err, webhook.ErrTooOld) || errors.Is(err, webhook.ErrInvalidHeader) || errors.Is(err, webhook.ErrNotSigned) {
			// The same for every secret.
			return false
		}
	}
	return false
}
