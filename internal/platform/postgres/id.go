package postgres

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
)

// NewID returns a time-ordered (v7) UUID for a new row, so inserts append to
// indexes instead of scattering.
func NewID() uuid.UUID {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.New()
	}
	return id
}

// SetTenant sets app.org_id, which Row Level Security policies compare with,
// for the rest of tx. InTx calls it; call it directly only in a transaction
// that learns its tenant from a lookup (an invitation token names its
// organization). It is transaction-local, so a pooled connection never
// carries one tenant into another's transaction.
func SetTenant(ctx context.Context, tx sqlx.ExecerContext, orgID uuid.UUID) error {
	if _, err := tx.ExecContext(ctx, setTenantQuery, orgID.String()); err != nil {
		return fmt.Errorf("set tenant: %w", err)
	}
	return nil
}
