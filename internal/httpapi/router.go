// Package httpapi is Keel's REST API: the Gin router, the middleware chain
// every route runs through, the error-to-problem+json mapping and the
// OpenAPI document.
package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/admin"
	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/file"
	"github.com/keelhq/keel/internal/health"
	"github.com/keelhq/keel/internal/idempotency"
	"github.com/keelhq/keel/internal/org"
	"github.com/keelhq/keel/internal/platform/metrics"
	"github.com/keelhq/keel/internal/ratelimit"
	"github.com/keelhq/keel/internal/resource"
)

// Deps is what the router needs. Later capabilities add their services here.
type Deps struct {
	Log zerolog.Logger
	// Metrics records every request; cmd/api serves them on METRICS_ADDR,
	// a listener of their own, never through this router.
	Metrics            *metrics.HTTP
	Health             *health.Checker
	CORSAllowedOrigins []string
	MaxBodyBytes       int64
	Production         bool
	// TrustedProxies (TRUSTED_PROXIES) are the addresses or CIDRs of the
	// proxies in front of the API. Only a request from one of them has its
	// X-Forwarded-For read, right to left past the trusted hops, for the
	// client IP that per-IP limits and the audit log use; otherwise the
	// client IP is the socket peer. Empty: no proxy is trusted.
	TrustedProxies []string
	// Mounts add handlers outside Gin's routing (e.g. the queue UI) under a prefix.
	Mounts map[string]http.Handler
	// The capabilities' services; a nil service leaves its routes out.
	// Auth serves accounts and sessions (and its Tokens verify access
	// tokens), Orgs serves organizations (and resolves API keys).
	Auth *auth.Service
	Orgs *org.Service
	// Resources serves resources.
	Resources *resource.Service
	// Files serves the files of resources.
	Files *file.Service
	// Billing serves billing and the Stripe webhook.
	Billing *billing.Service
	// RefreshCookie hands refresh tokens to the SPA as an HttpOnly cookie
	// instead of in JSON (AUTH_REFRESH_COOKIE).
	RefreshCookie bool
	// QueuesUI is the queue monitor (Asynqmon), served at /admin/queues
	// when Admin is set too, only to a platform admin's queue session.
	QueuesUI http.Handler
	// Admin serves /api/v1/admin (and gates the queue UI); nil leaves both out.
	Admin *admin.Service
	// RateLimit limits each organization's authenticated requests to its
	// plan's api_requests_per_minute; nil: no limit.
	RateLimit *ratelimit.Limiter
	// Idempotency serves Idempotency-Key on authenticated POSTs; nil: the
	// header is ignored.
	Idempotency *idempotency.Service
	// WebDir (WEB_DIR) is the built single-page app (web/dist), served at
	// every path no route takes; empty: those paths answer 404.
	WebDir string
	// FilesOrigin is the origin of the file bucket's presigned URLs
	// ((s3.Bucket).Origin), which the app's Content-Security-Policy lets
	// pages upload to and show thumbnails from; empty with storage off.
	FilesOrigin string
}

// New builds the API handler. The middleware order matters: the request ID
// comes first so every later step logs it; the access log wraps recovery so
// a panic's 500 is logged and counted; CORS answers preflights before the
// body limit and handlers run.
func New(d Deps) (http.Handler, error) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = false
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.ContextWithFallback = true
	// X-Forwarded-For only: X-Real-IP is not appended to but replaced, and
	// a proxy that does not set it passes on what the client sent.
	r.ForwardedByClientIP = true
	r.RemoteIPHeaders = []string{"X-Forwarded-For"}
	r.TrustedPlatform = ""
	if err := r.SetTrustedProxies(d.TrustedProxies); err != nil {
		return nil, err
	}
	if d.MaxBodyBytes <= 0 {
		d.MaxBodyBytes = 1 << 20
	}
	doc, err := Document()
	if err != nil {
		return nil, err
	}
	r.Use(requestID(d.Log), accessLog(d.Metrics), recovery(), securityHeaders(d.Production),
		cors(d.CORSAllowedOrigins), bodyLimit(d.MaxBodyBytes))
	r.NoRoute(webApp(d.WebDir, d.FilesOrigin))

	r.GET("/healthz", gin.WrapF(health.Live))
	r.GET("/readyz", gin.WrapF(d.Health.Ready))
	r.GET("/api/v1/openapi.json", serveDocument(doc))
	r.GET("/api/docs", serveDocsPage(doc))
	v1 := r.Group("/api/v1")
	authn := authenticator(d)
	for _, c := range capabilities(d) {
		c.register(v1, authn)
	}
	if d.QueuesUI != nil && d.Admin != nil {
		mountQueues(r, d.QueuesUI, d.Admin)
	}
	for prefix, h := range d.Mounts {
		r.Any(prefix+"/*path", gin.WrapH(h))
	}
	return r, nil
}

// capability is one area of the API: it adds its routes under /api/v1,
// guarded by the shared authenticate middleware, and documents them in its
// own fragment under openapi/.
type capability interface {
	register(v1 *gin.RouterGroup, authn *Authenticator)
}

// capabilities lists the areas this router serves; a new capability adds
// its line here (see docs/adding-a-capability.md).
func capabilities(d Deps) []capability {
	var out []capability
	if d.Auth != nil {
		out = append(out, &authHandlers{auth: d.Auth, cookie: d.RefreshCookie, origins: d.CORSAllowedOrigins})
	}
	if d.Orgs != nil {
		oh := &orgHandlers{orgs: d.Orgs}
		if d.Auth != nil {
			oh.accounts = d.Auth
		}
		out = append(out, oh)
	}
	if d.Resources != nil {
		out = append(out, &resourceHandlers{resources: d.Resources})
	}
	if d.Files != nil {
		out = append(out, &fileHandlers{files: d.Files})
	}
	if d.Billing != nil {
		out = append(out, &billingHandlers{billing: d.Billing})
	}
	if d.Admin != nil {
		out = append(out, &adminHandlers{admin: d.Admin, production: d.Production})
	}
	return out
}

// authenticator builds the authenticate middleware from the services that
// verify credentials: access tokens need Auth, API keys need Orgs.
func authenticator(d Deps) *Authenticator {
	a := &Authenticator{idempotency: d.Idempotency}
	if d.RateLimit != nil {
		a.rate = &orgRateLimit{limiter: d.RateLimit, metrics: d.Metrics}
	}
	if d.Auth != nil {
		a.Tokens = d.Auth.Tokens
	}
	if d.Orgs != nil {
		a.APIKeys = d.Orgs
	}
	return a
}
