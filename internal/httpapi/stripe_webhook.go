package httpapi

import (
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/keelhq/keel/internal/apperr"
)

// maxWebhookBytes caps a Stripe delivery's body. Stripe's events are a few
// kilobytes; the largest (an invoice with many lines) stay far below this.
const maxWebhookBytes = 512 << 10

// registerWebhook adds POST /stripe/webhook. It is not authenticated by
// Keel's credentials (Stripe signs each delivery instead) and takes no
// Idempotency-Key: Stripe's event ID makes a redelivery harmless.
func (h *billingHandlers) registerWebhook(v1 *gin.RouterGroup) {
	v1.POST("/stripe/webhook", H(h.webhook))
}

// webhook stores a signed Stripe event and answers 200 at once; the
// worker applies it (stripe:event). A duplicate answers 200 too, so Stripe
// stops redelivering it.
func (h *billingHandlers) webhook(c *gin.Context) error {
	if c.Request.ContentLength > maxWebhookBytes {
		return webhookTooLarge()
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxWebhookBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return webhookTooLarge()
		}
		return apperr.New(apperr.Invalid, "invalid_body", "The request body could not be read.")
	}
	duplicate, err := h.billing.Intake(c.Request.Context(), body, c.GetHeader("Stripe-Signature"))
	if err != nil {
		return err
	}
	if duplicate {
		c.JSON(http.StatusOK, gin.H{"received": true, "duplicate": true})
		return nil
	}
	c.JSON(http.StatusOK, gin.H{"received": true})
	return nil
}

func webhookTooLarge() error {
	return apperr.New(apperr.TooLarge, "body_too_large", "The request body is larger than "+strconv.Itoa(maxWebhookBytes)+" bytes.")
}
