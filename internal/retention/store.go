package retention

import (
	"context"
	"database/sql"
	"errors"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/platform/postgres"
)

// Store runs the purges' queries: the catalog lookups that decide whether a
// rule applies, and the deletes. Its methods take the pool or transaction
// they run on. Tables are named by the rules, never by a caller's input.
type Store struct{}

// TableExists reports whether table exists in the search path.
func (Store) TableExists(ctx context.Context, db sqlx.QueryerContext, table string) (bool, error) {
	var reg sql.NullString
	if err := sqlx.GetContext(ctx, db, &reg, `SELECT to_regclass($1)::text`, table); err != nil {
		return false, err
	}
	return reg.Valid, nil
}

// Columns lists table's columns in the current schema.
func (Store) Columns(ctx context.Context, db sqlx.QueryerContext, table string) ([]string, error) {
	var have []string
	err := sqlx.SelectContext(ctx, db, &have, `SELECT column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1`, table)
	return have, err
}

// RowSecurity reports whether table has Row Level Security enabled.
func (Store) RowSecurity(ctx context.Context, db sqlx.QueryerContext, table string) (bool, error) {
	var rls bool
	err := sqlx.GetContext(ctx, db, &rls, `SELECT relrowsecurity FROM pg_class WHERE oid = to_regclass($1)`, table)
	return rls, err
}

// OrgIDs lists every organization's ID; it fails when there is no
// organizations table.
func (s Store) OrgIDs(ctx context.Context, db sqlx.QueryerContext) ([]uuid.UUID, error) {
	exists, err := s.TableExists(ctx, db, "organizations")
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, errors.New("no organizations table")
	}
	var ids []uuid.UUID
	err = sqlx.SelectContext(ctx, db, &ids, `SELECT id FROM organizations`)
	return ids, err
}

// SoftDeletedTables lists the base tables of the current schema that have a
// deleted_at column, by name.
func (Store) SoftDeletedTables(ctx context.Context, db sqlx.QueryerContext) ([]string, error) {
	var tables []string
	err := sqlx.SelectContext(ctx, db, &tables, `SELECT c.table_name FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema = current_schema() AND c.column_name = 'deleted_at' AND t.table_type = 'BASE TABLE'
		ORDER BY 1`)
	return tables, err
}

// Delete deletes table's rows matching where, whose $1 is secs, and returns
// how many it deleted.
func (Store) Delete(ctx context.Context, db sqlx.ExtContext, table, where string, secs int64) (int64, error) {
	res, err := db.ExecContext(ctx, `DELETE FROM `+postgres.QuoteIdentifier(table)+` WHERE `+where, secs)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// DeleteInOrg is Delete restricted to organization orgID's rows, for a
// table under Row Level Security; tx must have orgID as its tenant.
func (Store) DeleteInOrg(ctx context.Context, tx sqlx.ExtContext, table, where string, secs int64, orgID uuid.UUID) (int64, error) {
	res, err := tx.ExecContext(ctx, `DELETE FROM `+postgres.QuoteIdentifier(table)+` WHERE `+where+` AND org_id = $2`, secs, orgID)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return n, nil
}
