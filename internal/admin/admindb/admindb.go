// Package admindb is the admin capability's store: hand-written SQL run on
// the platform admin's role (BYPASSRLS), which sees every organization.
// Nothing but package admin may be handed that pool.
package admindb

import (
	"context"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/admin"
	"github.com/keelhq/keel/internal/platform/postgres"
)

// Store implements admin.Store.
type Store struct{}

var _ admin.Store = Store{}

// Gate reads the facts of the admin gate.
func (Store) Gate(ctx context.Context, q sqlx.QueryerContext, userID uuid.UUID) (admin.GateFacts, error) {
	var r struct {
		Admin    bool `db:"is_platform_admin"`
		Disabled bool `db:"disabled"`
		TOTP     bool `db:"totp"`
	}
	err := sqlx.GetContext(ctx, q, &r, `SELECT is_platform_admin, disabled_at IS NOT NULL AS disabled,
		totp_enabled_at IS NOT NULL AS totp FROM users WHERE id = $1`, userID)
	if err != nil {
		return admin.GateFacts{}, postgres.Translate(err)
	}
	return admin.GateFacts{PlatformAdmin: r.Admin, Disabled: r.Disabled, TOTPEnabled: r.TOTP}, nil
}
