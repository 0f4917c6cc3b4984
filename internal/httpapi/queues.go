package httpapi

import (
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"

	"github.com/keelhq/keel/internal/admin"
	"github.com/keelhq/keel/internal/apperr"
)

// QueuesPath is where the queue monitor (Asynqmon) is served.
const QueuesPath = "/admin/queues"

const queuesCookie = "keel_admin_queues"

// mountQueues serves ui at QueuesPath to platform admins only: a request
// needs the session cookie that POST /api/v1/admin/queues/session sets for
// an admin whose login was opened with TOTP (HttpOnly, SameSite=Strict,
// Path=/admin/queues, 30 minutes). The admin is read again on every
// request, so revoking admin closes the UI at once. A state-changing call
// must also come from this origin.
func mountQueues(r *gin.Engine, ui http.Handler, svc *admin.Service) {
	g := r.Group(QueuesPath, queuesAuth(svc))
	h := gin.WrapH(ui)
	g.Any("", h)
	g.Any("/*path", h)
}

func queuesAuth(svc *admin.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		v, err := c.Cookie(queuesCookie)
		if err != nil {
			writeProblem(c, admin.ErrNoQueueSession)
			return
		}
		if _, err := svc.CheckQueueSession(c.Request.Context(), v); err != nil {
			writeProblem(c, err)
			return
		}
		// SameSite=Strict keeps the cookie off cross-site requests; a
		// state-changing call must also come from this origin.
		if c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead {
			if o := c.GetHeader("Origin"); o != "" && !sameOrigin(o, c.Request) {
				writeProblem(c, apperr.New(apperr.Forbidden, "cross_origin", "Queue actions must come from the queue monitor itself."))
				return
			}
		}
		c.Next()
	}
}

func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}
