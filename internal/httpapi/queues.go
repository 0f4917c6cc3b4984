package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/keelhq/keel/internal/apperr"
)

// QueuesPath is where the queue monitor (Asynqmon) is served.
const QueuesPath = "/admin/queues"

const queuesCookie = "keel_admin_queues"

// mountQueues serves ui at QueuesPath behind token. Until platform admins
// exist, a request is let in when it carries the token as
// `Authorization: Bearer TOKEN`, or the cookie that opening
// /admin/queues?token=TOKEN sets (so the UI's own XHRs work); the cookie
// holds an HMAC of the token, not the token.
func mountQueues(r *gin.Engine, ui http.Handler, token string, production bool) {
	g := r.Group(QueuesPath, queuesAuth(token, production))
	h := gin.WrapH(ui)
	g.Any("", h)
	g.Any("/*path", h)
}

func queuesAuth(token string, production bool) gin.HandlerFunc {
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte("keel asynqmon session"))
	cookieValue := hex.EncodeToString(mac.Sum(nil))
	equal := func(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	return func(c *gin.Context) {
		if bearer, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer "); ok && equal(bearer, token) {
			c.Next()
			return
		}
		if q := c.Query("token"); q != "" && equal(q, token) {
			c.SetSameSite(http.SameSiteStrictMode)
			c.SetCookie(queuesCookie, cookieValue, 8*3600, QueuesPath, "", production, true)
			u := url.URL{Path: c.Request.URL.Path}
			rest := c.Request.URL.Query()
			rest.Del("token")
			u.RawQuery = rest.Encode()
			c.Redirect(http.StatusSeeOther, u.String())
			c.Abort()
			return
		}
		if v, err := c.Cookie(queuesCookie); err == nil && equal(v, cookieValue) {
			// SameSite=Strict keeps the cookie off cross-site requests; a
			// state-changing call must also come from this origin.
			if c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead {
				if o := c.GetHeader("Origin"); o != "" && !sameOrigin(o, c.Request) {
					writeProblem(c, apperr.New(apperr.Forbidden, "cross_origin", "Queue actions must come from the queue monitor itself."))
					return
				}
			}
			c.Next()
			return
		}
		c.Header("WWW-Authenticate", `Bearer realm="keel-admin-queues"`)
		writeProblem(c, apperr.New(apperr.Unauthenticated, "admin_token_required",
			"The queue monitor needs the admin queues token: send Authorization: Bearer TOKEN, or open "+QueuesPath+"?token=TOKEN once."))
	}
}

func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}
