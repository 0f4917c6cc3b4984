package httpapi

import (
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/keelhq/keel/internal/apperr"
)

// RefreshCookieName is the SPA's refresh-token cookie, scoped to the auth
// endpoints so no other request carries it.
const (
	RefreshCookieName = "keel_refresh"
	refreshCookiePath = "/api/v1/auth"
)

// setRefreshCookie hands the SPA its refresh token as an HttpOnly, Secure,
// SameSite=Strict cookie that only the auth endpoints receive.
func (h *authHandlers) setRefreshCookie(c *gin.Context, token string, maxAge time.Duration) {
	http.SetCookie(c.Writer, &http.Cookie{Name: RefreshCookieName, Value: token, Path: refreshCookiePath,
		MaxAge: int(maxAge.Seconds()), HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// cookieToken returns the refresh cookie when cookie mode is on and the
// request proves it is not cross-site: a custom header (which a plain form
// post or image cannot send) and, when the browser says where it comes from,
// an allowed or same origin.
func (h *authHandlers) cookieToken(c *gin.Context) (string, error) {
	if !h.cookie {
		return "", nil
	}
	ck, err := c.Request.Cookie(RefreshCookieName)
	if err != nil || ck.Value == "" {
		return "", nil
	}
	if c.GetHeader("X-Requested-With") == "" {
		return "", apperr.New(apperr.Forbidden, "csrf_check_failed", "Requests that use the refresh cookie must send an X-Requested-With header.")
	}
	if o := c.GetHeader("Origin"); o != "" && !slices.Contains(h.origins, o) {
		u, err := url.Parse(o)
		if err != nil || u.Host != c.Request.Host {
			return "", apperr.New(apperr.Forbidden, "csrf_check_failed", "This origin may not use the refresh cookie.")
		}
	}
	return ck.Value, nil
}
