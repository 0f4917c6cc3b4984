package httpapi

import (
	"github.com/gin-gonic/gin"

	"github.com/keelhq/keel/internal/billing"
)

// billingHandlers serve billing (billing_account.go: plans, state,
// invoices, Checkout, the Portal) and the Stripe webhook
// (stripe_webhook.go), documented in openapi/50-billing.yaml.
type billingHandlers struct {
	billing *billing.Service
}

func (h *billingHandlers) register(v1 *gin.RouterGroup, authn *Authenticator) {
	h.registerWebhook(v1)
	h.registerAccount(v1, authn)
}
