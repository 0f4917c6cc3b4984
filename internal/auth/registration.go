package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/rs/zerolog"
)

// RegisterInput is a new account.
type RegisterInput struct {
	Email, Password, Name, OrganizationName string
}

// Registered is what Register created.
type Registered struct {
	User  *User
	OrgID uuid.UUID
}

// Register creates a user, their first organization (as owner) and queues
// the verification email, all in one transaction.
func (s *Service) Register(ctx context.Context, in RegisterInput, meta audit.Meta) (*Registered, error) {
	email, err := NormalizeEmail("email", in.Email)
	if err != nil {
		return nil, err
	}
	if err := CheckPassword("password", in.Password); err != nil {
		return nil, err
	}
	hash, err := s.Hasher.Hash(ctx, in.Password)
	if err != nil {
		return nil, err
	}
	orgName := strings.TrimSpace(in.OrganizationName)
	if orgName == "" {
		orgName = strings.TrimSpace(in.Name) + "'s organization"
	}
	u := &User{ID: postgres.NewID(), Email: email, Name: strings.TrimSpace(in.Name), PasswordHash: hash}
	var orgID uuid.UUID
	err = postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		if err := s.Users.CreateUser(ctx, tx, u); err != nil {
			return err
		}
		if orgID, err = s.Orgs.CreateWithOwner(ctx, tx, orgName, u.ID, meta); err != nil {
			return err
		}
		return s.sendVerification(ctx, tx, u, email)
	})
	if errors.Is(err, ErrEmailTaken) {
		return nil, apperr.New(apperr.Conflict, "email_taken", "An account with this email already exists.")
	}
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	return &Registered{User: u, OrgID: orgID}, nil
}

func (s *Service) sendVerification(ctx context.Context, tx *sqlx.Tx, u *User, email string) error {
	token, hash := NewOpaqueToken()
	t := &EmailToken{ID: postgres.NewID(), UserID: u.ID, Purpose: PurposeVerifyEmail, Email: email, TokenHash: hash,
		ExpiresAt: s.now().Add(VerifyTokenTTL)}
	if err := s.Users.CreateEmailToken(ctx, tx, t); err != nil {
		return err
	}
	return QueueEmail(ctx, tx, email, "verify_email", map[string]string{
		"name": u.Name, "link": s.link("/verify-email", token), "hours": "24"})
}

// VerifyEmail consumes a verification token and marks its address verified;
// for an email change it also makes the new address the account's.
func (s *Service) VerifyEmail(ctx context.Context, token string) error {
	err := postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		t, err := s.Users.UseEmailToken(ctx, tx, PurposeVerifyEmail, HashToken(token))
		if err != nil {
			return err
		}
		u, err := s.Users.UserByID(ctx, tx, t.UserID, true)
		if err != nil {
			return err
		}
		now := s.now()
		u.Email = t.Email
		u.EmailVerifiedAt = &now
		return s.Users.UpdateUser(ctx, tx, u)
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return errBadToken
	case errors.Is(err, ErrEmailTaken):
		return apperr.New(apperr.Conflict, "email_taken", "Another account uses this email now.")
	}
	return err
}

// ResendVerification mails a new verification link when email names an
// unverified account. It says nothing about whether it did.
func (s *Service) ResendVerification(ctx context.Context, email string) error {
	return s.ifAccount(ctx, email, func(tx *sqlx.Tx, u *User) error {
		if u.EmailVerifiedAt != nil || !s.allowMail(ctx, "verify", u.Email) {
			return nil
		}
		return s.sendVerification(ctx, tx, u, u.Email)
	})
}

// allowMail applies the per-address mail limit; when Redis is unreachable
// it lets the email go (a lost limit for a while beats a lost reset link).
func (s *Service) allowMail(ctx context.Context, kind, address string) bool {
	ok, err := s.Throttle.AllowMail(ctx, kind, address)
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("mail throttle")
		return true
	}
	if !ok {
		zerolog.Ctx(ctx).Info().Str("kind", kind).Msg("mail limit reached; not sending")
	}
	return ok
}

// allowVerificationMail applies resend-verification's per-address limit
// to a verification link the caller asked for (an email change), where a
// refusal can be said: 429 too_many_emails with Retry-After. Like
// allowMail it lets the email go when Redis is unreachable.
func (s *Service) allowVerificationMail(ctx context.Context, address string) error {
	wait, err := s.Throttle.AllowMailWait(ctx, "verify", address)
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("mail throttle")
		return nil
	}
	if wait > 0 {
		return &apperr.Error{Kind: apperr.TooManyRequests, Code: "too_many_emails", RetryAfter: wait,
			Message: fmt.Sprintf("This address was sent too many links lately; try again in %d seconds.", wait)}
	}
	return nil
}

// ifAccount runs fn in a transaction when email names an account, and does
// nothing otherwise: endpoints that must not reveal which addresses have
// accounts answer the same either way.
func (s *Service) ifAccount(ctx context.Context, email string, fn func(tx *sqlx.Tx, u *User) error) error {
	email, err := NormalizeEmail("email", email)
	if err != nil {
		return err
	}
	return postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		u, err := s.Users.UserByEmail(ctx, tx, email)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn(tx, u)
	})
}
