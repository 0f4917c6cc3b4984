// Package postgres opens the PostgreSQL pool, runs tenant-scoped transactions
// and translates driver errors into the application's error kinds. It is the
// only package that names the driver, so lib/pq can be swapped for pgx here:
// the others quote names, bind arrays and LISTEN through it, and
// deps_test.go fails when another package imports lib/pq.
package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/keelhq/keel/internal/apperr"
)

// DriverName is the database/sql driver in use. Importing this package
// registers it, so sql.Open(postgres.DriverName, url) works in any package
// that names the constant.
const DriverName = "postgres"

// Errors the stores return, whatever the driver said.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// Options tunes the pool.
type Options struct {
	MaxOpenConns    int
	MaxIdleConns    int
	ConnMaxLifetime time.Duration
	// Unprepared makes QueryMessage and InTxWith inline their statements,
	// and Prepared hand its transaction's to lib/pq, instead of preparing
	// them on each connection: for a pooler that does not keep a session's
	// prepared statements (PgBouncer in transaction mode).
	Unprepared bool
}

// Open connects to url and returns a pool. It does not wait for the server:
// binaries start and answer /readyz 503 until the database is reachable.
func Open(url string, o Options) (*sqlx.DB, error) {
	db, err := sqlx.Open(DriverName, url)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if o.MaxOpenConns > 0 {
		db.SetMaxOpenConns(o.MaxOpenConns)
		gates.Store(db, newGate(o.MaxOpenConns))
	}
	db.SetMaxIdleConns(o.MaxIdleConns)
	if o.ConnMaxLifetime > 0 {
		db.SetConnMaxLifetime(o.ConnMaxLifetime)
	}
	db.SetConnMaxIdleTime(5 * time.Minute)
	if o.Unprepared {
		unprepared.Store(db, struct{}{})
	}
	return db, nil
}

// InTx runs fn in one transaction and commits when fn returns nil. When orgID
// is not uuid.Nil, the transaction first sets app.org_id for Row Level
// Security; set_config(..., true) is transaction-local, so a pooled connection
// never carries one tenant into another's request.
func InTx(ctx context.Context, db *sqlx.DB, orgID uuid.UUID, fn func(tx *sqlx.Tx) error) (err error) {
	release, err := wait(ctx, db)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer release() // after the rollback deferred below
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer rollbackUnlessDone(tx, &err)
	if orgID != uuid.Nil {
		if err = SetTenant(ctx, tx, orgID); err != nil {
			return err
		}
	}
	err = runAndCommit(tx, fn)
	return err
}

// runAndCommit runs fn in tx and commits; a write refused as read-only
// (the billing trigger) answers ErrPaymentRequired, whichever did it.
func runAndCommit(tx *sqlx.Tx, fn func(tx *sqlx.Tx) error) error {
	if err := fn(tx); err != nil {
		return readOnly(err)
	}
	if err := tx.Commit(); err != nil {
		return readOnly(fmt.Errorf("commit: %w", err))
	}
	return nil
}

// rollbackUnlessDone, deferred by a function that opened tx and returns
// *err, rolls tx back when that function failed or panicked (and panics
// on).
func rollbackUnlessDone(tx *sqlx.Tx, err *error) {
	if p := recover(); p != nil {
		_ = tx.Rollback()
		panic(p)
	}
	if *err != nil {
		_ = tx.Rollback()
	}
}

// ErrPaymentRequired is what a write to a read-only organization's data
// answers (the billing_assert_writable trigger raises SQLSTATE KL402): 402
// payment_required, whoever wrote, in whatever transaction.
var ErrPaymentRequired = apperr.New(apperr.PaymentRequired, "payment_required",
	"This organization's payment is overdue, so it is read-only until the invoice is paid. An owner can pay it or update the card under Billing.")

// ReadOnly is, for a write that ends outside InTx (tenant.WriteOnce), what
// every transaction here does to its error: the read-only trigger's
// becomes ErrPaymentRequired.
func ReadOnly(err error) error { return readOnly(err) }

// readOnly turns the read-only trigger's error into ErrPaymentRequired,
// keeping the original for logs.
func readOnly(err error) error {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "KL402" {
		e := *ErrPaymentRequired
		e.Err = err
		return &e
	}
	return err
}

// Translate maps driver errors to ErrNotFound and ErrConflict, keeping the
// original for logs. Other errors pass through.
func Translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "23505" {
		return fmt.Errorf("%w: %s: %w", ErrConflict, pqErr.Constraint, err)
	}
	return err
}

// IsUniqueViolation reports whether err is a unique-constraint violation on
// the named constraint (any constraint when name is empty).
func IsUniqueViolation(err error, name string) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code == "23505" && (name == "" || pqErr.Constraint == name)
}

// Ping checks the database answers within ctx.
func Ping(ctx context.Context, db *sqlx.DB) error {
	var one int
	if err := db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// QuoteIdentifier quotes name as an SQL identifier (a database, role, table
// or column) for statements that take no parameters there, such as
// CREATE DATABASE or GRANT. Embedded double quotes are doubled and a zero
// byte ends the name; the result is case-sensitive.
func QuoteIdentifier(name string) string { return pq.QuoteIdentifier(name) }

// QuoteLiteral quotes s as an SQL string literal for statements that take no
// parameters, such as CREATE ROLE … PASSWORD. Single quotes are doubled, and
// a string with backslashes becomes an escape string (E'…') with them
// doubled, so the result means s whatever standard_conforming_strings is.
func QuoteLiteral(s string) string { return pq.QuoteLiteral(s) }

// Array adapts a Go slice to a PostgreSQL array parameter or scan target.
func Array(a any) interface {
	driver.Valuer
	sql.Scanner
} {
	return pq.Array(a)
}
