package httpapi

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/org"
)

// RefreshCookieName is the SPA's refresh-token cookie, scoped to the auth
// endpoints so no other request carries it.
const (
	RefreshCookieName = "keel_refresh"
	refreshCookiePath = "/api/v1/auth"
)

// registerIdentity adds the auth, me, organization and invitation routes.
func registerIdentity(v1 *gin.RouterGroup, d Deps) {
	h := &identityHandlers{auth: d.Auth, orgs: d.Orgs, cookie: d.RefreshCookie, origins: d.CORSAllowedOrigins}
	authn := h.authenticate(true)

	a := v1.Group("/auth")
	a.POST("/register", H(h.register))
	a.POST("/verify-email", H(h.verifyEmail))
	a.POST("/resend-verification", H(h.resendVerification))
	a.POST("/login", H(h.login))
	a.POST("/refresh", H(h.refresh))
	a.POST("/logout", H(h.logout))
	a.POST("/password/forgot", H(h.forgotPassword))
	a.POST("/password/reset", H(h.resetPassword))
	// Switching away is how a member of a suspended organization reaches
	// their other ones, so it skips the suspension check (the target is checked).
	a.POST("/switch-org", h.authenticate(false), H(h.switchOrg))
	a.POST("/2fa/setup", authn, H(h.totpSetup))
	a.POST("/2fa/enable", authn, H(h.totpEnable))
	a.POST("/2fa/disable", authn, H(h.totpDisable))

	v1.GET("/me", authn, H(h.me))
	v1.PATCH("/me", authn, H(h.updateMe))

	v1.POST("/organizations", authn, H(h.createOrg))
	v1.GET("/organizations", authn, H(h.listOrgs))
	cur := v1.Group("/organizations/current", authn)
	cur.GET("", H(h.currentOrg))
	cur.PATCH("", H(h.updateOrg))
	cur.GET("/members", H(h.listMembers))
	cur.PATCH("/members/:user_id", H(h.updateMember))
	cur.DELETE("/members/:user_id", H(h.removeMember))
	cur.POST("/invitations", H(h.invite))
	cur.GET("/invitations", H(h.listInvitations))
	cur.DELETE("/invitations/:id", H(h.revokeInvitation))
	cur.POST("/invitations/:id/resend", H(h.resendInvitation))
	cur.POST("/api-keys", H(h.createAPIKey))
	cur.GET("/api-keys", H(h.listAPIKeys))
	cur.DELETE("/api-keys/:id", H(h.revokeAPIKey))
	cur.GET("/audit-log", H(h.auditLog))

	v1.POST("/invitations/accept", h.optionalAuthenticate(), H(h.acceptInvitation))
}

type identityHandlers struct {
	auth    *auth.Service
	orgs    *org.Service
	cookie  bool
	origins []string
}

var errUnauthenticated = apperr.New(apperr.Unauthenticated, "unauthenticated", "Send a valid access token or API key as Authorization: Bearer.")

// authenticate resolves the bearer credential (an access token, or an API
// key starting keel_live_) to a Principal on the request context, then
// refuses requests for a suspended organization. It runs before handlers
// that need a caller and after the body limit.
func (h *identityHandlers) authenticate(checkSuspended bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := h.resolve(c, true, checkSuspended); err != nil {
			writeProblem(c, err)
			return
		}
		c.Next()
	}
}

// optionalAuthenticate is authenticate for endpoints that also serve
// anonymous callers: no Authorization header means no principal.
func (h *identityHandlers) optionalAuthenticate() gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := h.resolve(c, false, true); err != nil {
			writeProblem(c, err)
			return
		}
		c.Next()
	}
}

func (h *identityHandlers) resolve(c *gin.Context, required, checkSuspended bool) error {
	hdr := c.GetHeader("Authorization")
	if hdr == "" && !required {
		return nil
	}
	scheme, cred, ok := strings.Cut(hdr, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || cred == "" {
		return errUnauthenticated
	}
	ctx := c.Request.Context()
	var p *auth.Principal
	if org.IsAPIKey(cred) {
		var err error
		if p, err = h.orgs.AuthenticateAPIKey(ctx, cred); err != nil {
			return err
		}
	} else {
		cl, err := h.auth.Tokens.Verify(cred)
		if err != nil {
			return apperr.New(apperr.Unauthenticated, "invalid_token", "The access token is invalid or expired; refresh it or log in again.")
		}
		p = &auth.Principal{UserID: uuid.MustParse(cl.Subject), Role: cl.Role, TokenID: cl.ID}
		if cl.Org != "" {
			p.OrgID = uuid.MustParse(cl.Org)
		}
	}
	if checkSuspended {
		if err := h.orgs.CheckActive(ctx, p.OrgID); err != nil {
			return err
		}
	}
	// Later log lines of this request (the access log included) name the caller.
	lc := zerolog.Ctx(ctx).With().Str("org_id", p.OrgID.String())
	if p.IsUser() {
		lc = lc.Str("user_id", p.UserID.String())
	} else {
		lc = lc.Str("api_key_id", p.APIKeyID.String())
	}
	l := lc.Logger()
	c.Request = c.Request.WithContext(auth.WithPrincipal(l.WithContext(ctx), p))
	return nil
}

func principal(c *gin.Context) *auth.Principal { return auth.PrincipalFrom(c.Request.Context()) }

func meta(c *gin.Context) auth.Meta {
	return auth.Meta{IP: c.ClientIP(), UserAgent: c.Request.UserAgent()}
}

// pathID parses a UUID path parameter; a malformed ID names nothing, so it
// is a 404 like any other unknown ID.
func pathID(c *gin.Context, name string) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Param(name))
	if err != nil {
		return uuid.Nil, apperr.New(apperr.NotFound, "not_found", "No such "+strings.ReplaceAll(name, "_", " ")+".")
	}
	return id, nil
}

// page reads ?limit= (default 20, 1..100) and ?cursor=.
func page(c *gin.Context) (org.Page, error) {
	p := org.Page{Limit: 20, Cursor: c.Query("cursor")}
	if v, ok := c.GetQuery("limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return p, apperr.Validation(apperr.FieldError{Field: "limit", Message: "must be a whole number from 1 to 100"})
		}
		p.Limit = n
	}
	return p, nil
}

// setRefreshCookie hands the SPA its refresh token as an HttpOnly, Secure,
// SameSite=Strict cookie that only the auth endpoints receive.
func (h *identityHandlers) setRefreshCookie(c *gin.Context, token string, maxAge time.Duration) {
	http.SetCookie(c.Writer, &http.Cookie{Name: RefreshCookieName, Value: token, Path: refreshCookiePath,
		MaxAge: int(maxAge.Seconds()), HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// cookieToken returns the refresh cookie when cookie mode is on and the
// request proves it is not cross-site: a custom header (which a plain form
// post or image cannot send) and, when the browser says where it comes from,
// an allowed or same origin.
func (h *identityHandlers) cookieToken(c *gin.Context) (string, error) {
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
