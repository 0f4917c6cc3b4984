package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/admin"
	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/auth/authdb"
	"github.com/keelhq/keel/internal/platform/postgres"
)

// PlatformAdminEmail is the demo platform admin's login.
const PlatformAdminEmail = "platform@demo.keel.localhost"

// SeedPlatformAdmin creates a demo platform admin (no organization) with
// the demo password and TOTP enabled, and prints its TOTP secret, so the
// admin API and the queue UI can be tried at once: log in with a code
// from that secret. app is the application pool (the account is written
// as signup writes it), adminDB the platform admin's role (only it may set
// the flag: admin.SetPlatformAdmin, as keelctl admin grant), box seals the
// secret as 2fa/setup does. Run again, it prints the same secret. The
// secret is printed, like the password: keelctl refuses seed-demo with
// ENV=production.
func SeedPlatformAdmin(ctx context.Context, app, adminDB *sqlx.DB, box *auth.SecretBox, w io.Writer) error {
	u, err := authdb.Store{}.UserByEmail(ctx, app, PlatformAdminEmail)
	if errors.Is(err, auth.ErrNotFound) {
		u, err = createTOTPUser(ctx, app, box)
	}
	if err != nil {
		return fmt.Errorf("seed platform admin: %w", err)
	}
	if u.TOTPSecret == nil || u.TOTPEnabledAt == nil {
		return fmt.Errorf("seed platform admin: %s exists without 2FA; enable it through the API", PlatformAdminEmail)
	}
	secret, err := box.Open(u.TOTPSecret, u.ID[:])
	if err != nil {
		return fmt.Errorf("seed platform admin: open the TOTP secret (was TOTP_ENCRYPTION_KEY changed?): %w", err)
	}
	if !u.IsPlatformAdmin {
		if _, err := admin.SetPlatformAdmin(ctx, adminDB, PlatformAdminEmail, true, "keelctl seed-demo"); err != nil {
			return fmt.Errorf("seed platform admin: %w", err)
		}
	}
	fmt.Fprintf(w, "Platform admin: %s, password %s, TOTP secret %s\n", PlatformAdminEmail, Password, secret)
	fmt.Fprintln(w, "  (add the secret to an authenticator app; log in with its code for /api/v1/admin and /admin/queues: docs/admin.md)")
	return nil
}

func createTOTPUser(ctx context.Context, app *sqlx.DB, box *auth.SecretBox) (*auth.User, error) {
	hash, err := auth.HashPassword(Password, auth.OWASPParams)
	if err != nil {
		return nil, err
	}
	secret, _, err := auth.NewTOTPKey("Keel", PlatformAdminEmail)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	u := &auth.User{ID: postgres.NewID(), Email: PlatformAdminEmail, Name: "Pat Platform", PasswordHash: hash, EmailVerifiedAt: &now}
	u.TOTPSecret, u.TOTPEnabledAt = box.Seal([]byte(secret), u.ID[:]), &now
	err = postgres.InTx(ctx, app, uuid.Nil, func(tx *sqlx.Tx) error {
		var users authdb.Store
		if err := users.CreateUser(ctx, tx, u); err != nil {
			return err
		}
		return users.UpdateUser(ctx, tx, u)
	})
	return u, err
}
