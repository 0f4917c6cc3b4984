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
	case pr.User.DisabledAt != nil:
		return nil, tenant.ErrUserDisabled
	case pr.ActiveOrgGone:
		return nil, tenant.ErrOrgGone
	case pr.ActiveOrgSuspended:
		return nil, tenant.ErrSuspended
	}
	return pr, nil
}

// UpdateMeInput is a profile change; nil fields stay as they are.
// CurrentPassword is required with Email or NewPassword.
type UpdateMeInput struct {
	Name            *string
	Email           *string
	CurrentPassword *string
	NewPassword     *string
}

// UpdateMe changes the caller's name, email or password. Changing the email
// or the password needs the current password, so a stolen access token
// alone cannot take the account.
//
// A new email is only mailed a verification link and replaces the old one
// once followed; the old address is told of the request. When the new
// address belongs to another account, that address is told instead and
// the answer is the same, so the endpoint reveals no accounts.
//
// A new password ends every other login of the user, keeps the caller's,
// voids every link mailed before it, and is notified to the address.
func (s *Service) UpdateMe(ctx context.Context, p *tenant.Principal, in UpdateMeInput, meta audit.Meta) (*Profile, error) {
	if !p.IsUser() {
		return nil, tenant.ErrUserOnly
	}
	reauth := in.Email != nil || in.NewPassword != nil
	if reauth && (in.CurrentPassword == nil || *in.CurrentPassword == "") {
		return nil, apperr.Validation(apperr.FieldError{Field: "current_password", Message: "is required to change the email or the password"})
	}
	var newEmail, newHash string
	if in.Email != nil {
		e, err := NormalizeEmail("email", *in.Email)
		if err != nil {
			return nil, err
		}
		newEmail = e
	}
	if in.NewPassword != nil {
		if err := CheckPassword("new_password", *in.NewPassword); err != nil {
			return nil, err
		}
	}
	// The password is checked (and the new one hashed) before the
	// transaction: both may wait for a hashing slot, which must not hold a
	// connection or the user's row lock. The transaction then makes sure the
	// hash it checked against is still the account's.
	var checked *User
	if reauth {
		var err error
		if checked, err = s.reauthenticate(ctx, p.UserID, *in.CurrentPassword, meta); err != nil {
			return nil, err
		}
	}
	if in.NewPassword != nil {
		var err error
		if newHash, err = s.Hasher.Hash(ctx, *in.NewPassword); err != nil {
			return nil, err
		}
	}
	err := postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		u, err := s.lockUser(ctx, tx, p)
		if err != nil {
			return err
		}
		if reauth {
			if err := passwordUnchanged(checked, u); err != nil {
				return err
			}
		}
		if in.Name != nil {
			u.Name = strings.TrimSpace(*in.Name)
		}
		if newHash != "" {
			u.PasswordHash = newHash
		}
		if err := s.Users.UpdateUser(ctx, tx, u); err != nil {
			return err
		}
		if newHash != "" {
			if err := s.endOtherSessions(ctx, tx, u.ID, p.SessionID); err != nil {
				return err
			}
			if err := s.notify(ctx, tx, u.Email, NoticePasswordChanged, u, meta); err != nil {
				return err
			}
			if err := s.auditAllOrgs(ctx, tx, u.ID, "user.password_changed", meta); err != nil {
				return err
			}
		}
		if newEmail != "" && newEmail != u.Email {
			return s.requestEmailChange(ctx, tx, u, newEmail, meta)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Me(ctx, p)
}

// requestEmailChange tells u's current address that a change to newEmail
// was asked for, and mails newEmail a verification link, or, when newEmail
// has an account, a notice to its owner.
func (s *Service) requestEmailChange(ctx context.Context, tx *sqlx.Tx, u *User, newEmail string, meta audit.Meta) error {
	// Limited per new address like resend-verification, whether or not it
	// has an account, so the limit reveals nothing either.
	if err := s.allowVerificationMail(ctx, newEmail); err != nil {
		return err
	}
	if err := s.notify(ctx, tx, u.Email, NoticeEmailChangeRequested, u, meta, "new_email", newEmail); err != nil {
		return err
	}
	if err := s.auditAllOrgs(ctx, tx, u.ID, "user.email_change_requested", meta); err != nil {
		return err
	}
	other, err := s.Users.UserByEmail(ctx, tx, newEmail)
	switch {
	case err == nil:
		return s.notifyAddressInUse(ctx, tx, other, meta)
	case !errors.Is(err, ErrNotFound):
		return err
	}
	return s.sendVerification(ctx, tx, u, newEmail)
}

// RefuseDisabled answers tenant.ErrUserDisabled when a platform admin has
// disabled p's user, and 401 when the account is gone: the account routes
// that run no tenant transaction (switch-org, 2FA, profile changes,
// creating or joining an organization) call it, as tenant.InOrg checks the
// same for every tenant route. API keys pass: a disabled user's keys are
// revoked instead.
func (s *Service) RefuseDisabled(ctx context.Context, p *tenant.Principal) error {
	if !p.IsUser() {
		return nil
	}
	disabled, err := s.Users.Disabled(ctx, s.DB, p.UserID)
	switch {
	case errors.Is(err, ErrNotFound):
		return apperr.New(apperr.Unauthenticated, "unauthenticated", "The account no longer exists.")
	case err != nil:
		return err
	case disabled:
		return tenant.ErrUserDisabled
	}
	return nil
}
