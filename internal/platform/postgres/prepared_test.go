package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/platform/postgres"
)

const (
	preparedInsert = `INSERT INTO intxwith VALUES ($1) RETURNING n * 10`
	preparedCount  = `SELECT count(*) FROM intxwith WHERE n = $1`
)

// insertPrepared inserts n through Prepared in an InTxWith transaction,
// checks what the statements return, runs before first, and fails with
// fail, if any.
func insertPrepared(db *sqlx.DB, n int, before func(tx *sqlx.Tx) error, fail error) error {
	ctx := context.Background()
	return postgres.InTxWith(ctx, db, uuid.New(), nil, func(*sqlx.Rows) error { return nil }, func(tx *sqlx.Tx) error {
		if before != nil {
			if err := before(tx); err != nil {
				return err
			}
		}
		q := postgres.Prepared(tx)
		var tens, count int
		if err := sqlx.GetContext(ctx, q, &tens, preparedInsert, n); err != nil {
			return err
		}
		if err := sqlx.GetContext(ctx, q, &count, preparedCount, n); err != nil {
			return err
		}
		if res, err := q.ExecContext(ctx, `UPDATE intxwith SET n = n WHERE n = $1`, n); err != nil {
			return err
		} else if rows, _ := res.RowsAffected(); rows != int64(count) {
			return fmt.Errorf("update affected %d rows, want %d", rows, count)
		}
		if tens != n*10 || count < 1 {
			return fmt.Errorf("insert returned %d, count %d", tens, count)
		}
		return fail
	})
}

func backendPID(t *testing.T, db *sqlx.DB) int {
	t.Helper()
	var pid int
	if err := db.Get(&pid, `SELECT pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	return pid
}

func committed(t *testing.T, db *sqlx.DB) string {
	t.Helper()
	var ns []int
	if err := db.Select(&ns, `SELECT n FROM intxwith ORDER BY n`); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(ns)
}

// Prepared runs a transaction's statements as EXECUTEs of statements
// prepared once per connection, with each call's arguments; a transaction
// that prepared something and failed gives its connection up, and one
// that found a statement missing runs again, once, on a fresh connection.
func TestPrepared(t *testing.T) {
	t.Parallel()
	db := inTxWithPool(t, false)
	for i := 1; i <= 3; i++ {
		if err := insertPrepared(db, i, nil, nil); err != nil {
			t.Fatalf("transaction %d: %v", i, err)
		}
	}
	names := preparedOn(t, db)
	if len(names) != 4 { // the tenant's and the three statements
		t.Fatalf("prepared %v; want 4, each once", names)
	}
	if got := committed(t, db); got != "[1 2 3]" {
		t.Fatalf("committed %s", got)
	}

	// Failing after its statements, with nothing new prepared, the
	// transaction rolls back and the connection stays.
	pid := backendPID(t, db)
	boom := errors.New("boom")
	if err := insertPrepared(db, 4, nil, boom); !errors.Is(err, boom) {
		t.Fatalf("failing transaction: %v", err)
	}
	if backendPID(t, db) != pid {
		t.Fatal("a failed transaction that prepared nothing dropped its connection")
	}

	// The first on a fresh connection prepares, then fails: the
	// connection, whose statements are unknown, goes.
	if _, err := db.Exec(`DEALLOCATE ALL`); err != nil {
		t.Fatal(err)
	}
	if err := insertInTxWith(db, uuid.New(), 0, nil); err != nil { // replaced, re-prepared opening statements
		t.Fatal(err)
	}
	pid = backendPID(t, db)
	if err := insertPrepared(db, 5, nil, boom); !errors.Is(err, boom) {
		t.Fatalf("failing transaction: %v", err)
	}
	if backendPID(t, db) == pid {
		t.Fatal("a failed transaction that prepared statements kept its connection")
	}

	// A statement lost in the middle of a transaction (DEALLOCATE on the
	// connection): the transaction fails whole and runs again on another
	// connection, committing once.
	if err := insertPrepared(db, 7, nil, nil); err != nil {
		t.Fatal(err)
	}
	pid = backendPID(t, db)
	var insertName string
	if err := db.Get(&insertName, `SELECT name FROM pg_prepared_statements WHERE statement LIKE '%INSERT INTO intxwith%'`); err != nil {
		t.Fatal(err)
	}
	runs := 0
	err := insertPrepared(db, 8, func(tx *sqlx.Tx) error {
		runs++
		if runs == 1 {
			_, err := tx.Exec(`DEALLOCATE ` + insertName)
			return err
		}
		return nil
	}, nil)
	if err != nil || runs != 2 {
		t.Fatalf("after the lost statement: %v, %d runs; want one retry", err, runs)
	}
	if backendPID(t, db) == pid {
		t.Fatal("the connection that lost a statement was kept")
	}
	if got := committed(t, db); got != "[0 1 2 3 7 8]" {
		t.Fatalf("committed %s; want 8 once", got)
	}
	// The same when fn replaces the error with its own (as a service
	// hiding a driver error might): the lost statement is seen where it
	// failed.
	pid = backendPID(t, db)
	runs = 0
	err = postgres.InTxWith(context.Background(), db, uuid.New(), nil, func(*sqlx.Rows) error { return nil }, func(tx *sqlx.Tx) error {
		runs++
		if runs == 1 {
			if _, err := tx.Exec(`DEALLOCATE ` + insertName); err != nil {
				return err
			}
		}
		var tens int
		if err := sqlx.GetContext(context.Background(), postgres.Prepared(tx), &tens, preparedInsert, 9); err != nil {
			return errors.New("something went wrong")
		}
		return nil
	})
	if err != nil || runs != 2 {
		t.Fatalf("after a lost statement whose error fn replaced: %v, %d runs; want one retry", err, runs)
	}
	if backendPID(t, db) == pid {
		t.Fatal("the connection that lost a statement was kept")
	}
	if got := committed(t, db); got != "[0 1 2 3 7 8 9]" {
		t.Fatalf("committed %s; want 9 once", got)
	}

	// Bytes, whose type only the server knows, go through lib/pq as they
	// are, prepared nowhere.
	before := len(preparedOn(t, db))
	err = postgres.InTxWith(context.Background(), db, uuid.New(), nil, func(*sqlx.Rows) error { return nil }, func(tx *sqlx.Tx) error {
		var s string
		return sqlx.GetContext(context.Background(), postgres.Prepared(tx), &s, `SELECT encode($1::bytea, 'hex')`, []byte{0xca, 0xfe})
	})
	if err != nil {
		t.Fatal(err)
	}
	if after := len(preparedOn(t, db)); after != before {
		t.Fatalf("a statement with bytes was prepared: %d statements, were %d", after, before)
	}
}

// Outside InTxWith, or with Unprepared, Prepared is the transaction itself.
func TestPreparedPassesThrough(t *testing.T) {
	t.Parallel()
	db := inTxWithPool(t, false)
	tx, err := db.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if q, ok := postgres.Prepared(tx).(*sqlx.Tx); !ok || q != tx {
		t.Fatalf("a plain transaction got %T", postgres.Prepared(tx))
	}
	_ = tx.Rollback()

	un := inTxWithPool(t, true)
	if err := insertPrepared(un, 1, nil, nil); err != nil {
		t.Fatal(err)
	}
	if names := preparedOn(t, un); len(names) != 0 {
		t.Fatalf("unprepared, yet %v were prepared", names)
	}
	if got := committed(t, un); got != "[1]" {
		t.Fatalf("committed %s", got)
	}
}

// ExecAll runs its statements in order, prepared on a Prepared
// transaction (one message) and one by one elsewhere; either way an error
// stops the rest and fails the transaction.
func TestExecAll(t *testing.T) {
	t.Parallel()
	for _, unprepared := range []bool{false, true} {
		db := inTxWithPool(t, unprepared)
		ctx := context.Background()
		run := func(stmts ...postgres.Stmt) error {
			return postgres.InTxWith(ctx, db, uuid.New(), nil, func(*sqlx.Rows) error { return nil }, func(tx *sqlx.Tx) error {
				return postgres.ExecAll(ctx, postgres.Prepared(tx), stmts...)
			})
		}
		ins := func(n int) postgres.Stmt {
			return postgres.Stmt{Query: `INSERT INTO intxwith VALUES ($1)`, Args: []any{n}}
		}
		if err := run(ins(1), postgres.Stmt{Query: `SELECT pg_advisory_xact_lock_shared($1)`, Args: []any{int64(7)}}, ins(2)); err != nil {
			t.Fatal(err)
		}
		if names := preparedOn(t, db); unprepared != (len(names) == 0) {
			t.Fatalf("unprepared=%v: prepared %v", unprepared, names)
		}
		// The second statement fails (1 / 0): neither the first nor the
		// third is committed.
		err := run(ins(3), postgres.Stmt{Query: `INSERT INTO intxwith VALUES (1 / $1)`, Args: []any{0}}, ins(4))
		if err == nil || !strings.Contains(err.Error(), "division by zero") {
			t.Fatalf("unprepared=%v: failing statement: %v", unprepared, err)
		}
		if got := committed(t, db); got != "[1 2]" {
			t.Fatalf("unprepared=%v: committed %s, want [1 2]", unprepared, got)
		}
	}
}
