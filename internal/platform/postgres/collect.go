package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"

	"github.com/lib/pq"
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

// AssumeQuery is the statement that checks one assumption of a one-message
// write: $1 is whether it holds, $2 names it. When $1 is not true it raises
// SQLSTATE KL409 (IsAssumptionFailed), which rolls the message's implicit
// transaction back whole (migration 00760).
const AssumeQuery = `SELECT keel_assume($1, $2)`

// IsAssumptionFailed reports keel_assume's error: a one-message write ran
// on an assumption that no longer held, and nothing of it was kept.
func IsAssumptionFailed(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code == "KL409"
}
