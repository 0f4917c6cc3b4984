package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
)

// Collect records the statements executed on it instead of running them,
// so a helper written for a transaction (audit.Record) can give its
// statement to a one-message write (tenant.WriteOnce). Each ExecContext
// answers one row affected.
type Collect struct{ Stmts []Stmt }

// ExecContext implements sqlx.ExecerContext.
func (c *Collect) ExecContext(_ context.Context, query string, args ...any) (sql.Result, error) {
	c.Stmts = append(c.Stmts, Stmt{Query: query, Args: args})
	return driver.RowsAffected(1), nil
}
