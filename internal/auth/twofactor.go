package auth

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/tenant"
)

// TOTPSetup generates a pending TOTP secret for the user. It needs no
// password: a pending secret protects nothing and is replaced by the next
// setup; binding it (TOTPEnable) needs the password.
func (s *Service) TOTPSetup(ctx context.Context, p *tenant.Principal) (secret, otpauthURL string, err error) {
	if !p.IsUser() {
		return "", "", tenant.ErrUserOnly
	}
	err = postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		u, err := s.lockUser(ctx, tx, p)
		if err != nil {
			return err
		}
		if u.TOTPEnabledAt != nil {
			return apperr.New(apperr.Conflict, "totp_already_enabled", "Two-factor authentication is already on; disable it first.")
		}
		secret, otpauthURL, err = NewTOTPKey(s.Product, u.Email)
		if err != nil {
			return err
		}
		u.TOTPSecret = s.Box.Seal([]byte(secret), u.ID[:])
		return s.Users.UpdateUser(ctx, tx, u)
	})
	return secret, otpauthURL, err
}

// TOTPEnable turns 2FA on once the user proves the app has the secret and
// re-enters the password (so a stolen access token cannot bind the thief's
// authenticator), returns fresh recovery codes (shown once, stored hashed)
// and tells the account's address.
func (s *Service) TOTPEnable(ctx context.Context, p *tenant.Principal, code, password string, meta audit.Meta) ([]string, error) {
	if !p.IsUser() {
		return nil, tenant.ErrUserOnly
	}
	checked, err := s.reauthenticate(ctx, p.UserID, password, meta)
	if err != nil {
		return nil, err
	}
	var codes []string
	err = postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		u, err := s.lockUser(ctx, tx, p)
		if err != nil {
			return err
		}
		if err := passwordUnchanged(checked, u); err != nil {
			return err
		}
		if u.TOTPEnabledAt != nil {
			return apperr.New(apperr.Conflict, "totp_already_enabled", "Two-factor authentication is already on.")
		}
		if u.TOTPSecret == nil {
			return apperr.New(apperr.Conflict, "totp_not_set_up", "Call 2fa/setup first.")
		}
		secret, err := s.Box.Open(u.TOTPSecret, u.ID[:])
		if err != nil {
			return fmt.Errorf("open totp secret: %w", err)
		}
		step := MatchTOTP(string(secret), code, s.now())
		if step == 0 || step <= u.TOTPLastStep {
			return apperr.New(apperr.Invalid, "invalid_totp_code", "The authentication code is wrong or already used.")
		}
		now := s.now()
		u.TOTPEnabledAt, u.TOTPLastStep = &now, step
		if err := s.Users.UpdateUser(ctx, tx, u); err != nil {
			return err
		}
		var hashes [][]byte
		codes, hashes = NewRecoveryCodes(RecoveryCodeCount)
		if err := s.Users.ReplaceRecoveryCodes(ctx, tx, u.ID, hashes); err != nil {
			return err
		}
		if err := s.notify(ctx, tx, u.Email, NoticeTwoFactorChanged, u, meta, "state", "on"); err != nil {
			return err
		}
		return s.auditAllOrgs(ctx, tx, u.ID, "user.2fa_enabled", meta)
	})
	return codes, err
}

// TOTPDisable turns 2FA off; it needs the password and a current code (or a
// recovery code), so a stolen access token alone cannot remove the factor.
// The password check counts into the login throttle; the account's address
// is told.
func (s *Service) TOTPDisable(ctx context.Context, p *tenant.Principal, password, code string, meta audit.Meta) error {
	if !p.IsUser() {
		return tenant.ErrUserOnly
	}
	if u, err := s.Users.UserByID(ctx, s.DB, p.UserID, false); err != nil {
		return err
	} else if u.TOTPEnabledAt == nil {
		return errTOTPNotEnabled
	}
	checked, err := s.reauthenticate(ctx, p.UserID, password, meta)
	if err != nil {
		return err
	}
	return postgres.InTx(ctx, s.DB, uuid.Nil, func(tx *sqlx.Tx) error {
		u, err := s.lockUser(ctx, tx, p)
		if err != nil {
			return err
		}
		if u.TOTPEnabledAt == nil {
			return errTOTPNotEnabled
		}
		if err := passwordUnchanged(checked, u); err != nil {
			return err
		}
		factor, err := s.checkSecondFactor(ctx, tx, u, code)
		if err != nil {
			return err
		}
		if factor == "" {
			return apperr.New(apperr.Forbidden, "invalid_totp_code", "The authentication code is wrong or already used.")
		}
		u.TOTPSecret, u.TOTPEnabledAt = nil, nil
		if err := s.Users.UpdateUser(ctx, tx, u); err != nil {
			return err
		}
		if err := s.Users.DeleteRecoveryCodes(ctx, tx, u.ID); err != nil {
			return err
		}
		if err := s.notify(ctx, tx, u.Email, NoticeTwoFactorChanged, u, meta, "state", "off"); err != nil {
			return err
		}
		return s.auditAllOrgs(ctx, tx, u.ID, "user.2fa_disabled", meta)
	})
}

var errTOTPNotEnabled = apperr.New(apperr.Conflict, "totp_not_enabled", "Two-factor authentication is not on.")
