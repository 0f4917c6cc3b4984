// Package admin is the platform admin's capability: the SaaS owner's view
// of every tenant (users, organizations, the audit log, jobs, business
// stats), suspending and disabling, and support access (impersonation).
//
// It is the only package that reads across tenants. It does so through DB,
// a pool that connects as the platform admin's role (ADMIN_DATABASE_URL,
// created by keelctl migrate with BYPASSRLS, reading no secret column and
// writing only what AdminRoleUpdates lists); cmd/api hands that pool to
// this service alone, so an ordinary handler has no way to reach it. Every
// call writes an audit row with the admin as actor: in the organization
// whose data it read or changed, else a platform row (org_id NULL) that
// only this role can read.
package admin

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/tenant"
)

// Errors of the admin gate, in the order Authorize checks.
var (
	ErrSupportAccess = apperr.New(apperr.Forbidden, "support_access_forbidden",
		"A support-access token cannot reach /admin; use your own admin login.")
	ErrNotAdmin = apperr.New(apperr.Forbidden, "platform_admin_required",
		"This needs a platform admin; an operator grants it with keelctl admin grant EMAIL.")
	ErrNeeds2FAEnrolment = apperr.New(apperr.Forbidden, "admin_requires_2fa",
		"Platform admins must use two-factor authentication: enable it with POST /api/v1/auth/2fa/setup and /api/v1/auth/2fa/enable, then log in again with your authenticator code.")
	ErrNeeds2FALogin = apperr.New(apperr.Forbidden, "admin_requires_2fa",
		"This login was not opened with an authenticator code: log in again with your TOTP code (a recovery code is not enough for /admin).")
	// ErrUnavailable answers while ADMIN_DATABASE_URL is not set.
	ErrUnavailable = apperr.New(apperr.Unavailable, "admin_unavailable",
		"The admin API is not configured on this server: set ADMIN_DATABASE_URL (docs/operations.md).")
	errNotFound = apperr.New(apperr.NotFound, "not_found", "No such record.")
)

// TokenIssuer signs access tokens and reads them back; *auth.Issuer
// implements it.
type TokenIssuer interface {
	IssueToken(t auth.Token) (string, error)
	Verify(token string) (*auth.Claims, error)
}

// Service serves /api/v1/admin.
type Service struct {
	// DB connects as the platform admin's role (BYPASSRLS); nil leaves
	// every admin route answering 503 admin_unavailable after the gate.
	DB *sqlx.DB
	// App is the application pool: the gate reads the caller's account
	// through it (users is a platform table), so a non-admin is refused the
	// same way whether or not DB is configured; dead-task replays run on it.
	App    *sqlx.DB
	Store  Store
	Tokens TokenIssuer
	Plans  *plan.Catalog
	// SessionKey signs the queue UI's session cookie (derived from the JWT
	// signing key).
	SessionKey []byte
	Now        func() time.Time
}

// Store is what the admin capability reads and writes through the admin
// role; admindb implements it. Each area declares its part.
type Store interface {
	GateStore
	UserStore
	OrgStore
	AuditStore
	JobStore
	StatsStore
}

// GateStore reads what Authorize decides on.
type GateStore interface {
	// Gate returns the account's admin flag, disabled state and whether
	// TOTP is enabled; ErrNotFound (postgres) when the account is gone.
	Gate(ctx context.Context, q sqlx.QueryerContext, userID uuid.UUID) (GateFacts, error)
}

// GateFacts are the account facts the admin gate needs.
type GateFacts struct {
	PlatformAdmin bool
	Disabled      bool
	TOTPEnabled   bool
}

// Admin is a platform admin who passed Authorize.
type Admin struct {
	UserID uuid.UUID
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Authorize lets p through to /admin only when it is a user's own access
// token (not support access, not an API key), the user is a platform admin
// who is not disabled and has TOTP enabled, and the token's login was
// opened with a TOTP code. The account is read on every call, so revoking
// admin (keelctl admin revoke), disabling the user or turning 2FA off
// takes effect on the next request.
func (s *Service) Authorize(ctx context.Context, p *tenant.Principal) (*Admin, error) {
	switch {
	case p == nil:
		return nil, apperr.New(apperr.Unauthenticated, "unauthenticated", "Send a valid access token as Authorization: Bearer.")
	case p.SupportAccess():
		return nil, ErrSupportAccess
	case !p.IsUser():
		return nil, ErrNotAdmin
	}
	f, err := s.Store.Gate(ctx, s.App, p.UserID)
	if errors.Is(err, postgres.ErrNotFound) {
		return nil, ErrNotAdmin
	}
	if err != nil {
		return nil, err
	}
	switch {
	case f.Disabled:
		return nil, tenant.ErrUserDisabled
	case !f.PlatformAdmin:
		return nil, ErrNotAdmin
	case !f.TOTPEnabled:
		return nil, ErrNeeds2FAEnrolment
	case p.SecondFactor != auth.SecondFactorTOTP:
		return nil, ErrNeeds2FALogin
	}
	return &Admin{UserID: p.UserID}, nil
}

// inTx runs fn in one transaction on the admin role's pool.
func (s *Service) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	if s.DB == nil {
		return ErrUnavailable
	}
	return postgres.InTx(ctx, s.DB, uuid.Nil, fn)
}

// record writes the audit row of an admin's read or action, inside the
// transaction that did it: in orgID's log (uuid.Nil: a platform row).
func record(ctx context.Context, tx sqlx.ExecerContext, a *Admin, meta audit.Meta, orgID uuid.UUID, action, targetType, targetID string, details any) error {
	id := a.UserID
	e := audit.Entry{OrgID: orgID, ActorUserID: &id, Action: action, TargetType: targetType, TargetID: targetID,
		IP: meta.IP, UserAgent: meta.UserAgent}
	return audit.Record(ctx, tx, e.WithDetails(details))
}

// DeriveKey returns a key for purpose derived from secret (HMAC-SHA256), so
// one configured secret can sign several kinds of token without one kind
// ever verifying as another.
func DeriveKey(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// maxReason bounds the free-text reason of a disable, a suspension or a
// support access.
const maxReason = 500

// checkReason cleans a reason kept in the audit log: one line of at most
// maxReason characters, which required forbids to be empty.
func checkReason(reason string, required bool) (string, error) {
	r := strings.TrimSpace(reason)
	switch {
	case r == "" && required:
		return "", apperr.Validation(apperr.FieldError{Field: "reason", Message: "is required: say why, it is kept in the audit log"})
	case utf8.RuneCountInString(r) > maxReason:
		return "", apperr.Validation(apperr.FieldError{Field: "reason", Message: fmt.Sprintf("must be at most %d characters", maxReason)})
	case !utf8.ValidString(r) || strings.ContainsAny(r, "\x00\r\n"):
		return "", apperr.Validation(apperr.FieldError{Field: "reason", Message: "must be one line of text"})
	}
	return r, nil
}
