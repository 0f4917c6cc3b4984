package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/keelhq/keel/internal/admin"
)

// registerQueueSession adds POST /admin/queues/session: it sets the queue
// UI's session cookie for the admin calling it, so a browser can then open
// /admin/queues, whose own XHRs carry no Authorization header.
func (h *adminHandlers) registerQueueSession(g *gin.RouterGroup) {
	// secret: the answer sets a session cookie an Idempotency-Key must
	// never store and replay.
	g.POST("/queues/session", secret(H(func(c *gin.Context) error {
		v, exp, err := h.admin.OpenQueueSession(c.Request.Context(), caller(c), meta(c))
		if err != nil {
			return err
		}
		c.SetSameSite(http.SameSiteStrictMode)
		c.SetCookie(queuesCookie, v, int(admin.QueueSessionTTL.Seconds()), QueuesPath, "", h.production, true)
		c.JSON(http.StatusOK, gin.H{"queues_url": QueuesPath, "expires_at": exp.UTC()})
		return nil
	})))
}
