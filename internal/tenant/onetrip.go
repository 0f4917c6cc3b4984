package tenant

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/platform/postgres"
)

// Querier runs a read. A list's fetch gets one: a *sqlx.Tx satisfies it,
// and so does the one-trip reader that List and ListSorted pass.
type Querier interface {
	QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error)
}

// oneTrip runs a tenant read as one simple-protocol message of three
// statements: set app.org_id, the caller check of InOrg (organization
// exists and is not suspended, caller's role), and the read.
// PostgreSQL runs a multi-statement message as one implicit transaction, so
// the transaction-local tenant setting covers the read and ends with it, as
// in InOrg; but the request costs one round trip instead of five (BEGIN,
// set_config, check, read, COMMIT), and each statement runs prepared on its
// connection (postgres.QueryMessage), planned once per connection instead
// of on every request: on a busy API those two are most of a short read's
// cost (docs/benchmarks.md). When the check refuses, the read's rows are
// discarded unread. close must be called once the fetch returns.
type oneTrip struct {
	db  *sqlx.DB
	p   *Principal
	min string
	msg *postgres.Message
}

// QueryxContext implements Querier; a oneTrip runs one read.
func (o *oneTrip) QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	if o.msg != nil {
		return nil, fmt.Errorf("one-trip read: a second statement (%.40q): a fetch of List or ListSorted runs one", query)
	}
	msg, err := postgres.QueryMessage(ctx, o.db,
		postgres.TenantStmt(o.p.OrgID),
		postgres.Stmt{Query: callerRoleQuery, Args: []any{o.p.OrgID, o.p.UserID}},
		postgres.Stmt{Query: query, Args: args})
	if err != nil {
		return nil, err
	}
	o.msg = msg
	if err := o.check(msg.Rows); err != nil {
		return nil, err
	}
	return msg.Rows, nil
}

// close gives the read's connection back; err is the fetch's.
func (o *oneTrip) close(err error) { o.msg.Close(err) }

// check reads the first two result sets and leaves rows at the read's.
func (o *oneTrip) check(rows *sqlx.Rows) error {
	r, err := readCaller(rows, o.p)
	if err != nil {
		return err
	}
	if !RoleAtLeast(r, o.min) {
		return ErrForbidden
	}
	if !rows.NextResultSet() {
		return fmt.Errorf("one-trip read: no read result: %w", rowsErr(rows))
	}
	return nil
}

// rowsErr is why a result set is missing: the statement's error, or, when
// there is none, sql.ErrNoRows.
func rowsErr(rows *sqlx.Rows) error {
	if err := rows.Err(); err != nil {
		return err
	}
	return sql.ErrNoRows
}

// Select runs a list's query on q and scans every row into dest (a pointer
// to a slice of structs with db tags), as sqlx.SelectContext does for a
// transaction.
func Select(ctx context.Context, q Querier, dest any, query string, args ...any) error {
	rows, err := q.QueryxContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return sqlx.StructScan(rows, dest)
}
