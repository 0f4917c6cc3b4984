package admin

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/apperr"
	"github.com/keelhq/keel/internal/audit"
	"github.com/keelhq/keel/internal/platform/postgres"
)

// ErrNoSuchUser answers a grant for an address no account has.
var ErrNoSuchUser = apperr.New(apperr.NotFound, "user_not_found", "No account has that email address.")

// SetPlatformAdmin grants (grant true) or revokes platform admin for the
// account with email, on db (the admin role's pool), and audits it as a
// platform row naming operator (who ran keelctl, and where). It is what
// keelctl admin grant|revoke runs; the API has no route that changes the
// flag. A revoke takes effect on the admin's next request: the gate reads
// the flag every time.
func SetPlatformAdmin(ctx context.Context, db *sqlx.DB, email string, grant bool, operator string) (uuid.UUID, error) {
	var id uuid.UUID
	err := postgres.InTx(ctx, db, uuid.Nil, func(tx *sqlx.Tx) error {
		err := tx.QueryRowxContext(ctx, `UPDATE users SET is_platform_admin = $2, updated_at = now()
			WHERE email = lower($1) RETURNING id`, email, grant).Scan(&id)
		if errors.Is(postgres.Translate(err), postgres.ErrNotFound) {
			return ErrNoSuchUser
		}
		if err != nil {
			return fmt.Errorf("set platform admin: %w", err)
		}
		action := "admin.granted"
		if !grant {
			action = "admin.revoked"
		}
		return audit.Record(ctx, tx, audit.Entry{Action: action, TargetType: "user", TargetID: id.String()}.
			WithDetails(map[string]string{"operator": operator, "via": "keelctl"}))
	})
	return id, err
}
