package doctor

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/migrate"
)

// Postgres checks that db answers and that its role cannot bypass Row
// Level Security (neither BYPASSRLS nor a superuser, nor a member of a role
// that is or that owns tables, and no SECURITY DEFINER function open to
// every role: migrate.CheckAppRole), and reports the server version and the
// role.
func Postgres(db sqlx.QueryerContext) Check {
	return Check{Name: "postgres", Probe: func(ctx context.Context) (string, error) {
		var v, role string
		if err := db.QueryRowxContext(ctx, `SELECT current_setting('server_version'), current_user`).Scan(&v, &role); err != nil {
			return "", err
		}
		var bypass, super bool
		if err := db.QueryRowxContext(ctx, `SELECT rolbypassrls, rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&bypass, &super); err != nil {
			return "", err
		}
		if bypass || super {
			return "", fmt.Errorf("DATABASE_URL connects as %q, which bypasses Row Level Security; use the application role", role)
		}
		if err := migrate.CheckAppRole(ctx, db, role); err != nil {
			return "", err
		}
		return fmt.Sprintf("PostgreSQL %s as %s", v, role), nil
	}}
}

// Migrations checks that db's schema is at the latest migration the
// binaries embed, reading goose's ledger (which the application role may
// read).
func Migrations(db sqlx.QueryerContext) Check {
	return Check{Name: "migrations", Probe: func(ctx context.Context) (string, error) {
		var cur int64
		if err := db.QueryRowxContext(ctx, `SELECT COALESCE(max(version_id), 0) FROM goose_db_version WHERE is_applied`).Scan(&cur); err != nil {
			return "", fmt.Errorf("cannot read goose_db_version (run keelctl migrate up): %w", err)
		}
		target, err := migrate.Latest()
		if err != nil {
			return "", err
		}
		if cur != target {
			return "", fmt.Errorf("database at version %d, binaries expect %d: run keelctl migrate up", cur, target)
		}
		return fmt.Sprintf("at version %d", cur), nil
	}}
}
