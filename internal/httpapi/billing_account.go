package httpapi

import "github.com/gin-gonic/gin"

// registerAccount adds the billing endpoints of an organization.
func (h *billingHandlers) registerAccount(v1 *gin.RouterGroup, authn *Authenticator) {}
