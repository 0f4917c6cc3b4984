package auth

import (
	"context"
	"net/mail"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/platform/postgres"
)

// Lifetimes of the tokens the service hands out.
const (
	RefreshTokenTTL   = 30 * 24 * time.Hour
	VerifyTokenTTL    = 24 * time.Hour
	ResetTokenTTL     = time.Hour
	InvitationTTL     = 7 * 24 * time.Hour
	RecoveryCodeCount = 10
)

// Service runs accounts and sessions: registration, verification, login,
// refresh-token rotation, password reset, 2FA, the caller's profile and
// invitation acceptance (which may create an account).
type Service struct {
	DB       *sqlx.DB
	Users    UserStore
	Orgs     Orgs
	Tokens   *Issuer
	Box      *SecretBox
	Throttle *Throttle
	// Hasher runs every argon2id hash and verification, bounded.
	Hasher *Hasher
	// BaseURL is APP_BASE_URL; links in emails start with it.
	BaseURL string
	// Product names the TOTP issuer shown in authenticator apps.
	Product string
	Now     func() time.Time
	// Metrics counts failed logins; nil counts nothing.
	Metrics *Metrics

	registerCost costMedian
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Session is a token pair.
type Session struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    int
	OrgID        uuid.UUID
	Role         string
	UserID       uuid.UUID
}

var (
	errInvalidCredentials = apperr.New(apperr.Unauthenticated, "invalid_credentials", "The email or password is wrong.")
	errInvalidRefresh     = apperr.New(apperr.Unauthenticated, "invalid_refresh_token", "The refresh token is invalid or expired; log in again.")
	errBadToken           = apperr.New(apperr.Invalid, "invalid_token", "The link is invalid, expired or already used.")
)

// NormalizeEmail trims and lower-cases an address and checks its form.
func NormalizeEmail(field, email string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || len(e) > 254 || !strings.Contains(e[strings.LastIndexByte(e, '@')+1:], ".") {
		return "", apperr.Validation(apperr.FieldError{Field: field, Message: "must be an email address"})
	}
	return e, nil
}

// auditAllOrgs writes action about the user into each organization they
// belong to; account-wide events concern every one of them.
func (s *Service) auditAllOrgs(ctx context.Context, tx *sqlx.Tx, userID uuid.UUID, action string, meta audit.Meta) error {
	ms, err := s.Orgs.Memberships(ctx, tx, userID)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := postgres.SetTenant(ctx, tx, m.OrgID); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, audit.Entry{OrgID: m.OrgID, ActorUserID: &userID, Action: action,
			TargetType: "user", TargetID: userID.String(), IP: meta.IP, UserAgent: meta.UserAgent}); err != nil {
			return err
		}
	}
	return nil
}

// endOtherSessions is what a new password does to the account: every link
// mailed before it (verification, email change, reset) stops working, and
// every login but keep (the one that made the change; uuid.Nil for none)
// is signed out. Access tokens already issued live on until they expire
// (15 minutes); they cannot refresh.
func (s *Service) endOtherSessions(ctx context.Context, tx *sqlx.Tx, userID, keep uuid.UUID) error {
	if err := s.Users.VoidEmailTokens(ctx, tx, userID); err != nil {
		return err
	}
	return s.Users.RevokeUserSessions(ctx, tx, userID, keep)
}
