package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/platform/logging"
	"github.com/keelhq/keel/internal/platform/sentry"
	"github.com/keelhq/keel/internal/tenant"
)

// statusOf is the one table from error kinds to HTTP statuses.
var statusOf = map[apperr.Kind]int{
	apperr.Internal:             http.StatusInternalServerError,
	apperr.Invalid:              http.StatusBadRequest,
	apperr.Unauthenticated:      http.StatusUnauthorized,
	apperr.Forbidden:            http.StatusForbidden,
	apperr.NotFound:             http.StatusNotFound,
	apperr.Conflict:             http.StatusConflict,
	apperr.PreconditionFailed:   http.StatusPreconditionFailed,
	apperr.PaymentRequired:      http.StatusPaymentRequired,
	apperr.TooManyRequests:      http.StatusTooManyRequests,
	apperr.TooLarge:             http.StatusRequestEntityTooLarge,
	apperr.UnsupportedMedia:     http.StatusUnsupportedMediaType,
	apperr.Unavailable:          http.StatusServiceUnavailable,
	apperr.PreconditionRequired: http.StatusPreconditionRequired,
	apperr.Unprocessable:        http.StatusUnprocessableEntity,
}

// Problem is an RFC 9457 problem document with Keel's extensions.
type Problem struct {
	Type      string              `json:"type"`
	Title     string              `json:"title"`
	Status    int                 `json:"status"`
	Detail    string              `json:"detail,omitempty"`
	Instance  string              `json:"instance,omitempty"`
	Code      string              `json:"code"`
	RequestID string              `json:"request_id,omitempty"`
	Errors    []apperr.FieldError `json:"errors,omitempty"`
	// Metric, Limit, Usage and Plan explain a plan_limit_reached.
	Metric string `json:"metric,omitempty"`
	Limit  *int64 `json:"limit,omitempty"`
	Usage  *int64 `json:"usage,omitempty"`
	Plan   string `json:"plan,omitempty"`
}

// ProblemTypeBase prefixes each code to form the problem's type URI.
const ProblemTypeBase = "https://keel.dev/problems/"

// problemFor converts err into the document the client sees. Anything that
// is not an *apperr.Error becomes a bare 500: its text may hold SQL or
// internals and goes to the logs only.
func problemFor(err error) Problem {
	e, ok := apperr.As(err)
	if !ok {
		e = apperr.New(apperr.Internal, "internal_error", "Something went wrong on our side. It has been reported; please try again.")
	}
	status := statusOf[e.Kind]
	p := Problem{
		Type:   ProblemTypeBase + e.Code,
		Title:  http.StatusText(status),
		Status: status,
		Detail: e.Message,
		Code:   e.Code,
		Errors: e.Fields,
	}
	if l := e.Limit; l != nil {
		p.Metric, p.Limit, p.Usage, p.Plan = l.Metric, &l.Limit, &l.Usage, l.Plan
	}
	return p
}

// writeProblem answers with err as problem+json, logging and reporting 5xx
// (except an Unavailable error without a cause: load the service shed on
// purpose, which would otherwise flood Sentry exactly when it is busiest).
func writeProblem(c *gin.Context, err error) {
	p := problemFor(err)
	p.Instance = c.Request.URL.Path
	p.RequestID = logging.RequestID(c.Request.Context())
	if e, ok := apperr.As(err); ok && e.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	if e, ok := apperr.As(err); ok && e.Kind == apperr.Unavailable && e.Err == nil {
		// Load shed on purpose (server_busy): a warning, not an incident.
		zerolog.Ctx(c.Request.Context()).Warn().Str("code", e.Code).Msg("request shed")
	} else if p.Status >= 500 {
		zerolog.Ctx(c.Request.Context()).Error().Err(err).Msg("request failed")
		sentry.Capture(c.Request.Context(), err, errorTags(c))
	}
	_ = c.Error(err)
	body, _ := json.Marshal(p)
	c.Data(p.Status, "application/problem+json", body)
	c.Abort()
}

// HandlerFunc is a handler that returns its error instead of writing it.
type HandlerFunc func(c *gin.Context) error

// H adapts a HandlerFunc to Gin, mapping a returned error to problem+json.
func H(fn HandlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := fn(c); err != nil {
			writeProblem(c, err)
		}
	}
}

// errorTags are what a Sentry event of a failed request says about it: the
// route template (never the raw path), the method, the request ID, and who
// called (organization, user or API key, and the platform admin during
// support access). Never a header, a body or a token.
func errorTags(c *gin.Context) map[string]string {
	tags := map[string]string{"route": c.FullPath(), "method": c.Request.Method}
	if id := logging.RequestID(c.Request.Context()); id != "" {
		tags["request_id"] = id
	}
	p := tenant.PrincipalFrom(c.Request.Context())
	if p == nil {
		return tags
	}
	if p.OrgID != uuid.Nil {
		tags["org_id"] = p.OrgID.String()
	}
	if p.IsUser() {
		tags["user_id"] = p.UserID.String()
	} else if p.APIKeyID != uuid.Nil {
		tags["api_key_id"] = p.APIKeyID.String()
	}
	if p.SupportAccess() {
		tags["support_admin_id"] = p.ActorID.String()
	}
	return tags
}
