// Package app wires Keel's API: each capability's service to its store,
// and the services to the router. cmd/api and the HTTP tests both build the
// API here, so a test runs the object graph production runs.
package app

import (
	"errors"
	"net/http"
	"runtime"
	"time"

	"github.com/jmoiron/sqlx"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keelhq/keel/internal/admin"
	"github.com/keelhq/keel/internal/admin/admindb"
	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/auth/authdb"
	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/billing/billingdb"
	"github.com/keelhq/keel/internal/file"
	"github.com/keelhq/keel/internal/file/filedb"
	"github.com/keelhq/keel/internal/httpapi"
	"github.com/keelhq/keel/internal/idempotency"
	"github.com/keelhq/keel/internal/idempotency/idempotencydb"
	"github.com/keelhq/keel/internal/org"
	"github.com/keelhq/keel/internal/org/orgdb"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/plan/plandb"
	"github.com/keelhq/keel/internal/platform/sysmem"
	"github.com/keelhq/keel/internal/ratelimit"
	"github.com/keelhq/keel/internal/resource"
	"github.com/keelhq/keel/internal/resource/resourcedb"
)

// Keys are the API's secrets (see internal/config.Auth).
type Keys struct {
	JWTSigning         []byte
	JWTPreviousSigning []byte // optional, during rotation
	TOTPEncryption     []byte
}

// APIDeps is what NewAPI wires together.
type APIDeps struct {
	DB *sqlx.DB
	// AdminDB connects as the platform admin's role (ADMIN_DATABASE_URL,
	// BYPASSRLS). It goes to the admin service and nowhere else; nil:
	// /api/v1/admin answers 503 admin_unavailable behind its gate.
	AdminDB *sqlx.DB
	Redis   *goredis.Client
	Keys    Keys
	// BaseURL is APP_BASE_URL: links in emails start with it.
	BaseURL string
	// TokenIssuer is JWT_ISSUER, the iss of access tokens; empty means BaseURL.
	TokenIssuer string
	// Params are argon2id's; zero means auth.OWASPParams.
	Params auth.PasswordParams
	// Limits are the throttles' operator settings.
	Limits Limits
	// Plans is the plan catalog (PLANS_FILE); nil loads the embedded one.
	// Which plan an organization is on is its billing state's.
	Plans *plan.Catalog
	// Storage is the files' bucket; nil leaves file storage off (the file
	// endpoints that need an object answer 503).
	Storage file.Objects
	// FilePolicy is what uploads may be (FILES_MAX_BYTES,
	// FILES_ALLOWED_TYPES).
	FilePolicy file.Policy
	// Stripe is the Stripe client (stripeapi.New); nil leaves Checkout, the
	// Portal and plan changes answering 503 billing_unavailable.
	Stripe *client.API
	// WebhookSecrets verify Stripe webhooks, current first; empty: the
	// webhook answers 503.
	WebhookSecrets []string
	// BillingMetrics records billing's metrics; nil records nothing.
	BillingMetrics *billing.Metrics
	// AuthMetrics counts failed logins; nil counts nothing.
	AuthMetrics *auth.Metrics
	// Now is the services' clock; nil means time.Now.
	Now func() time.Time
	// TokenNow is the access tokens' clock (signing and expiry); nil means
	// time.Now. It is apart from Now because many tests move Now by days
	// and keep using a token; a test of token expiry sets both.
	TokenNow func() time.Time
	// HTTP is the router's infrastructure (logger, metrics, health, CORS,
	// body limit, cookie mode, queue UI); NewAPI adds the services.
	HTTP httpapi.Deps
}

// Limits are the operator's settings for hashing and the per-IP budgets
// (internal/config.Auth); a zero field takes auth's default.
type Limits struct {
	// HashConcurrency bounds argon2id runs at once; 0 sizes it from the
	// memory limit and cores (auth.DefaultHashConcurrency).
	HashConcurrency int
	// HashWait is the longest wait for a hashing slot before 503 server_busy.
	HashWait time.Duration
	// Per-IP budgets of anonymous requests.
	Register, PasswordReset, InvitationAccept auth.Rate
}

// API is the wired API: its handler and the services behind it.
type API struct {
	Handler http.Handler
	Auth    *auth.Service
	Orgs    *org.Service
	Files   *file.Service
	// Resources serves resources (counted by the plan limiter).
	Resources *resource.Service
	// Idempotency serves Idempotency-Key on authenticated POSTs.
	Idempotency *idempotency.Service
	// Billing serves billing and the Stripe webhook.
	Billing *billing.Service
	// Admin serves /api/v1/admin.
	Admin *admin.Service
}

// NewAPI builds the services and the router.
func NewAPI(d APIDeps) (*API, error) {
	if d.DB == nil || d.Redis == nil {
		return nil, errors.New("app: NewAPI needs DB and Redis")
	}
	name := d.TokenIssuer
	if name == "" {
		name = d.BaseURL
	}
	issuer, err := auth.NewIssuer(d.Keys.JWTSigning, d.Keys.JWTPreviousSigning, name)
	if err != nil {
		return nil, err
	}
	if d.TokenNow != nil {
		issuer.SetClock(d.TokenNow)
	}
	box, err := auth.NewSecretBox(d.Keys.TOTPEncryption)
	if err != nil {
		return nil, err
	}
	params := d.Params
	if params == (auth.PasswordParams{}) {
		params = auth.OWASPParams
	}
	conc := d.Limits.HashConcurrency
	if conc <= 0 {
		conc = auth.DefaultHashConcurrency(sysmem.Limit(), runtime.GOMAXPROCS(0), params)
	}
	plans := d.Plans
	if plans == nil {
		if plans, err = plan.Load(""); err != nil {
			return nil, err
		}
	}
	limiter := plandb.NewLimiter(plans)
	throttle := auth.NewThrottle(d.Redis)
	setRate(&throttle.Register, d.Limits.Register)
	setRate(&throttle.PasswordReset, d.Limits.PasswordReset)
	setRate(&throttle.InvitationAccept, d.Limits.InvitationAccept)
	bill := &billing.Service{DB: d.DB, Store: billingdb.Store{}, Plans: plans, Stripe: d.Stripe, Limits: limiter, Seats: orgdb.Store{},
		WebhookSecrets: d.WebhookSecrets, BaseURL: d.BaseURL, Now: d.Now, Metrics: d.BillingMetrics, Log: d.HTTP.Log}
	orgs := &org.Service{DB: d.DB, Store: orgdb.Store{}, BaseURL: d.BaseURL, Now: d.Now, Limits: limiter, Billing: bill}
	keys := &idempotency.Service{DB: d.DB, Store: idempotencydb.Store{}, Now: d.Now}
	accounts := &auth.Service{DB: d.DB, Users: authdb.Store{}, Orgs: orgs, Tokens: issuer, Box: box,
		Throttle: throttle, Hasher: auth.NewHasher(params, conc, d.Limits.HashWait),
		BaseURL: d.BaseURL, Product: "Keel", Now: d.Now, Metrics: d.AuthMetrics}
	resources := &resource.Service{DB: d.DB, Store: resourcedb.Store{}, Limits: limiter, Now: d.Now}
	files := &file.Service{DB: d.DB, Store: filedb.Store{}, Objects: d.Storage, Limiter: limiter, Policy: d.FilePolicy, Now: d.Now}
	h := d.HTTP
	h.Auth, h.Orgs, h.Files = accounts, orgs, files
	h.Resources = resources
	h.Idempotency = keys
	h.Billing = bill
	// The per-minute budget may lag a plan change by a minute; limits on
	// writes never do (they read the plan in the writing transaction).
	h.RateLimit = ratelimit.New(d.Redis, billing.NewCached(limiter.Plans, 10000, time.Minute), d.DB)
	h.Admin = &admin.Service{DB: d.AdminDB, App: d.DB, Store: admindb.Store{}, Tokens: issuer, Plans: plans,
		SessionKey: admin.DeriveKey(d.Keys.JWTSigning, "keel admin queue session"), Now: d.Now}
	handler, err := httpapi.New(h)
	if err != nil {
		return nil, err
	}
	return &API{Handler: handler, Auth: accounts, Orgs: orgs, Files: files, Resources: resources, Idempotency: keys, Billing: bill, Admin: h.Admin}, nil
}

// setRate overrides a default budget with a configured one.
func setRate(to *auth.Rate, r auth.Rate) {
	if r.N > 0 && r.Window > 0 {
		*to = r
	}
}
