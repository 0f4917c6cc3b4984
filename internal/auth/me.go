package auth

import (
	"context"
	"errors"
	"strings"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/tenant"
)

// Profile is the caller's account and memberships. ActiveOrgSuspended and
// ActiveOrgGone describe the organization the caller's token is for.
type Profile struct {
	User               *User
	Memberships        []Membership
	ActiveOrgSuspended bool
	ActiveOrgGone      bool
}

// Me returns the caller's profile: one statement, no transaction, since GET
// /me is what every client calls first and often.
func (s *Service) Me(ctx context.Context, p *tenant.Principal) (*Profile, error) {
	if !p.IsUser() {
		return nil, tenant.ErrUserOnly
	}
	pr, err := s.Users.Profile(ctx, s.DB, p.UserID, p.OrgID)
	if errors.Is(err, ErrNotFound) {
		return nil, apperr.New(apperr.Unauthenticated, "unauthenticated", "The account no longer exists.")
	}
	if err != nil {
		return nil, err
	}
	switch {
	case pr.ActiveOrgGone:
		return nil, tenant.ErrOrgGone
	case pr.ActiveOrgSuspended:
		return nil, tenant.ErrSuspended
	}
	return pr, nil
}

// UpdateMeInput is a profile change; nil fields stay as they are.
type UpdateMeInput struct {
	Name            *string
	Email           *string
	CurrentPassword *string
	NewPassword     *string
}

// UpdateMe changes the caller's name, email or password. A new email is
// only mailed a verification link; it replaces the old one once verified.
// A new password needs the current one.
func (s *Service) UpdateMe(ctx context.Context, p *tenant.Principal, in UpdateMeInput, meta audit.Meta) (*Profile, error) {
	if !p.IsUser() {
		return nil, tenant.ErrUserOnly
	}
	var newEmail, newHash string
	if in.Email != nil {
		e, err := NormalizeEmail("email", *in.Email)
		if err != nil {
			return nil, err
		}
		newEmail = e
	}
	var checked *User
	if in.NewPassword != nil {
		if in.CurrentPassword == nil {
			return nil, apperr.Validation(apperr.FieldError{Field: "current_password", Message: "is required to change the password"})
		}
		if err := CheckPassword("new_password", *in.NewPassword); err != nil {
			return nil, err
		}
		var err error
		if checked, err = s.Users.UserByID(ctx, s.DB, p.UserID, false); err != nil {
			return nil, err
		}
		if err := s.verifyPassword(ctx, checked, *in.CurrentPassword, meta); err != nil {
			return nil, err
		}
		if newHash, err = s.Hasher.Hash(ctx, *in.NewPassword); err != nil {
			return nil, err
		}
	}
	err := postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		if err := tenant.CheckActive(ctx, tx, p.OrgID); err != nil {
			return err
		}
		u, err := s.Users.UserByID(ctx, tx, p.UserID, true)
		if err != nil {
			return err
		}
		if in.Name != nil {
			u.Name = strings.TrimSpace(*in.Name)
		}
		if newHash != "" {
			if err := passwordUnchanged(checked, u); err != nil {
				return err
			}
			u.PasswordHash = newHash
		}
		if err := s.Users.UpdateUser(ctx, tx, u); err != nil {
			return err
		}
		if newHash != "" {
			if err := s.auditAllOrgs(ctx, tx, u.ID, "user.password_changed", meta); err != nil {
				return err
			}
		}
		if newEmail != "" && newEmail != u.Email {
			other, err := s.Users.UserByEmail(ctx, tx, newEmail)
			if err == nil && other.ID != u.ID {
				return apperr.New(apperr.Conflict, "email_taken", "An account with this email already exists.")
			}
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			if err := s.allowVerificationMail(ctx, newEmail); err != nil {
				return err
			}
			return s.sendVerification(ctx, tx, u, newEmail)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Me(ctx, p)
}
