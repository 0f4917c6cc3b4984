package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/idempotency"
	"github.com/keelhq/keel/internal/org"
	"github.com/keelhq/keel/internal/platform/logging"
	"github.com/keelhq/keel/internal/tenant"
)

// TokenVerifier checks an access token; *auth.Issuer implements it.
type TokenVerifier interface {
	Verify(token string) (*auth.Claims, error)
}

// APIKeyResolver resolves a presented API key to its principal, or an
// apperr Unauthenticated error; *org.Service implements it.
type APIKeyResolver interface {
	AuthenticateAPIKey(ctx context.Context, raw string) (*tenant.Principal, error)
}

// Authenticator is the authenticate middleware every capability's routes
// use: it resolves the bearer credential (an access token, or an API key
// starting keel_live_) to a tenant.Principal on the request context. It
// reads no database for access tokens: whether the organization is active
// and the caller's current role are checked inside the handler's own
// tenant transaction (tenant.InOrg), so a request costs one transaction.
// It runs after the body limit and before handlers that need a caller.
//
// Once a caller is known it also runs, in this order, what every
// authenticated request goes through: the organization's rate limit (so a
// refused request costs no work, and a replay spends budget like any
// request), then, for a POST, its Idempotency-Key (so a replay runs no
// handler). Anonymous requests get neither: they carry no organization to
// limit or scope a key to, and the anonymous POSTs (login, register,
// refresh) answer with tokens that must never be stored.
type Authenticator struct {
	Tokens  TokenVerifier
	APIKeys APIKeyResolver // nil: API keys are refused

	rate        *orgRateLimit        // nil: no per-organization rate limit
	idempotency *idempotency.Service // nil: Idempotency-Key is ignored
}

// authedKey marks, on the Gin context, a request that went through the
// authenticate middleware once; a route listing it twice must not spend
// its rate budget or claim its key twice.
const authedKey = "keel.authenticated"

var errUnauthenticated = apperr.New(apperr.Unauthenticated, "unauthenticated", "Send a valid access token or API key as Authorization: Bearer.")

// Required refuses requests without a valid credential (401).
func (a *Authenticator) Required() gin.HandlerFunc { return a.middleware(true) }

// Optional is Required for endpoints that also serve anonymous callers: no
// Authorization header means no principal; a bad one is still refused.
func (a *Authenticator) Optional() gin.HandlerFunc { return a.middleware(false) }

func (a *Authenticator) middleware(required bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.GetBool(authedKey) {
			c.Next()
			return
		}
		if err := a.resolve(c, required); err != nil {
			writeProblem(c, err)
			return
		}
		c.Set(authedKey, true)
		p := principal(c)
		if p == nil {
			c.Next()
			return
		}
		if a.rate != nil && !a.rate.allow(c, p) {
			return
		}
		if a.idempotency != nil && c.Request.Method == http.MethodPost {
			idempotent(a.idempotency, c, p)
			return
		}
		c.Next()
	}
}

func (a *Authenticator) resolve(c *gin.Context, required bool) error {
	hdr := c.GetHeader("Authorization")
	if hdr == "" && !required {
		return nil
	}
	scheme, cred, ok := strings.Cut(hdr, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || cred == "" {
		return errUnauthenticated
	}
	ctx := c.Request.Context()
	var p *tenant.Principal
	if org.IsAPIKey(cred) {
		if a.APIKeys == nil {
			return errUnauthenticated
		}
		var err error
		if p, err = a.APIKeys.AuthenticateAPIKey(ctx, cred); err != nil {
			return err
		}
	} else {
		if a.Tokens == nil {
			return errUnauthenticated
		}
		cl, err := a.Tokens.Verify(cred)
		if err != nil {
			return apperr.New(apperr.Unauthenticated, "invalid_token", "The access token is invalid or expired; refresh it or log in again.")
		}
		p = &tenant.Principal{UserID: uuid.MustParse(cl.Subject), Role: cl.Role, TokenID: cl.ID, SecondFactor: cl.SecondFactor()}
		if cl.Act != nil {
			p.ActorID = uuid.MustParse(cl.Act.Subject)
		}
		if cl.Org != "" {
			p.OrgID = uuid.MustParse(cl.Org)
		}
		if cl.Session != "" {
			p.SessionID = uuid.MustParse(cl.Session)
		}
	}
	// Later log lines of this request (the access log included) name the caller.
	lc := zerolog.Ctx(ctx).With().Str("org_id", p.OrgID.String())
	if p.IsUser() {
		lc = lc.Str("user_id", p.UserID.String())
		if p.SupportAccess() {
			lc = lc.Str("support_admin_id", p.ActorID.String())
		}
	} else {
		lc = lc.Str("api_key_id", p.APIKeyID.String())
	}
	l := lc.Logger()
	ctx = logging.WithRoute(l.WithContext(ctx), c.Request.Method+" "+c.FullPath())
	c.Request = c.Request.WithContext(tenant.WithPrincipal(ctx, p))
	return nil
}

// errSupportAccess refuses a support-access token where it must not reach.
var errSupportAccess = apperr.New(apperr.Forbidden, "support_access_forbidden",
	"Support access cannot do this: it never changes the user's password, email, two-factor settings, sessions or API keys, nor invites anyone or changes roles.")

// noSupportAccess refuses support-access (impersonation) tokens. It runs
// after the authenticate middleware on every route that changes the
// user's credentials or sessions (the admin gate refuses them on /admin
// itself); the OpenAPI document marks
// those operations with x-keel-support-access: false, and a test holds the
// two together.
func noSupportAccess() gin.HandlerFunc {
	return func(c *gin.Context) {
		if principal(c).SupportAccess() {
			writeProblem(c, errSupportAccess)
			return
		}
		c.Next()
	}
}

// AccountChecker refuses a disabled user on the account routes that run no
// tenant transaction; *auth.Service implements it.
type AccountChecker interface {
	RefuseDisabled(ctx context.Context, p *tenant.Principal) error
}

// activeAccount refuses, at once, the tokens of a user a platform admin
// disabled, on account routes (tenant routes check it in tenant.InOrg).
func activeAccount(a AccountChecker) gin.HandlerFunc {
	return func(c *gin.Context) {
		if p := principal(c); p != nil {
			if err := a.RefuseDisabled(c.Request.Context(), p); err != nil {
				writeProblem(c, err)
				return
			}
		}
		c.Next()
	}
}

func principal(c *gin.Context) *tenant.Principal { return tenant.PrincipalFrom(c.Request.Context()) }

func meta(c *gin.Context) audit.Meta {
	return audit.Meta{IP: c.ClientIP(), UserAgent: c.Request.UserAgent()}
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
func page(c *gin.Context) (tenant.Page, error) {
	p := tenant.Page{Limit: 20, Cursor: c.Query("cursor")}
	if v, ok := c.GetQuery("limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return p, apperr.Validation(apperr.FieldError{Field: "limit", Message: "must be a whole number from 1 to 100"})
		}
		p.Limit = n
	}
	return p, nil
}
