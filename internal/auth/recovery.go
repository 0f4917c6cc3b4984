package auth

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/rs/zerolog"
)

// ForgotPassword mails a one-hour reset link when email names an account.
// It says nothing about whether it did.
func (s *Service) ForgotPassword(ctx context.Context, email string) error {
	return s.ifAccount(ctx, email, func(tx *sqlx.Tx, u *User) error {
		if !s.allowMail(ctx, "reset", u.Email) {
			return nil
		}
		return s.queueLink(ctx, tx, &EmailToken{ID: postgres.NewID(), UserID: u.ID, Purpose: PurposeResetPassword,
			Email: u.Email, ExpiresAt: s.now().Add(ResetTokenTTL)}, map[string]string{"name": u.Name, "minutes": "60"})
	})
}

// ResetPassword consumes a reset token, sets the password, signs the user
// out everywhere, voids every other link mailed to them (a pending email
// change included) and tells their address.
func (s *Service) ResetPassword(ctx context.Context, token, password string, meta audit.Meta) error {
	if err := CheckPassword("password", password); err != nil {
		return err
	}
	hash, err := s.Hasher.Hash(ctx, password)
	if err != nil {
		return err
	}
	var email string
	err = postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		t, err := s.Users.UseEmailToken(ctx, tx, PurposeResetPassword, HashToken(token))
		if err != nil {
			return err
		}
		u, err := s.Users.UserByID(ctx, tx, t.UserID, true)
		if err != nil {
			return err
		}
		u.PasswordHash = hash
		// Following the link proved the mailbox is theirs.
		if u.EmailVerifiedAt == nil && t.Email == u.Email {
			now := s.now()
			u.EmailVerifiedAt = &now
		}
		email = u.Email
		if err := s.Users.UpdateUser(ctx, tx, u); err != nil {
			return err
		}
		if err := s.endOtherSessions(ctx, tx, u.ID, uuid.Nil); err != nil {
			return err
		}
		if err := s.notify(ctx, tx, u.Email, NoticePasswordChanged, u, meta); err != nil {
			return err
		}
		return s.auditAllOrgs(ctx, tx, u.ID, "user.password_reset", meta)
	})
	if errors.Is(err, ErrNotFound) {
		return errBadToken
	}
	if err == nil {
		if rerr := s.Throttle.Reset(ctx, email); rerr != nil {
			zerolog.Ctx(ctx).Warn().Err(rerr).Msg("reset login throttle")
		}
	}
	return err
}
