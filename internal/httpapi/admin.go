package httpapi

import (
	"github.com/gin-gonic/gin"

	"github.com/keelhq/keel/internal/admin"
)

// adminHandlers serve /api/v1/admin: the platform admin's routes
// (documented in openapi/6x-admin-*.yaml).
type adminHandlers struct {
	admin *admin.Service
	// production marks cookies Secure.
	production bool
}

// adminKey holds, on the Gin context, the *admin.Admin the gate let in.
const adminKey = "keel.admin"

// register adds every admin route behind the gate: a valid access token
// (authenticate), then admin.Authorize (not support access, a platform
// admin, not disabled, whose login was opened with TOTP). A route added
// under g cannot skip the gate, and a test drives every /admin operation
// of the OpenAPI document as a non-admin.
func (h *adminHandlers) register(v1 *gin.RouterGroup, authn *Authenticator) {
	g := v1.Group("/admin", authn.Required(), h.gate)
	h.registerUsers(g)
	h.registerOrgs(g)
	h.registerAudit(g)
	h.registerJobs(g)
	h.registerStats(g)
	h.registerQueueSession(g)
}

func (h *adminHandlers) gate(c *gin.Context) {
	a, err := h.admin.Authorize(c.Request.Context(), principal(c))
	if err != nil {
		writeProblem(c, err)
		return
	}
	c.Set(adminKey, a)
	c.Next()
}

// caller returns the admin the gate let in.
func caller(c *gin.Context) *admin.Admin {
	a, _ := c.Get(adminKey)
	return a.(*admin.Admin)
}
