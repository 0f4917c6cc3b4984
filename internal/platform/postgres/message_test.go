package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
)

// onePool is a fresh database and a pool of one connection to it as the
// application role, so every call below shares that connection.
func onePool(t *testing.T, unprepared bool) (*postgrestest.DB, *sqlx.DB) {
	t.Helper()
	d := postgrestest.New(t)
	db, err := postgres.Open(d.AppURL, postgres.Options{MaxOpenConns: 1, MaxIdleConns: 1, Unprepared: unprepared})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return d, db
}

// readMessage runs set tenant + a read of app.org_id and a parameter, as a
// tenant read does, and returns the read's row.
func readMessage(ctx context.Context, db *sqlx.DB, org uuid.UUID, n int) (string, int, error) {
	m, err := postgres.QueryMessage(ctx, db,
		postgres.Stmt{Query: `SELECT set_config('app.org_id', $1, true)`, Args: []any{org.String()}},
		postgres.Stmt{Query: `SELECT current_setting('app.org_id', true), $1::int + 1`, Args: []any{n}})
	if err != nil {
		return "", 0, err
	}
	var (
		got string
		sum int
	)
	err = func() error {
		for m.Rows.Next() {
		}
		if !m.Rows.NextResultSet() || !m.Rows.Next() {
			return errors.New("no second result set")
		}
		return m.Rows.Scan(&got, &sum)
	}()
	m.Close(err)
	return got, sum, err
}

// preparedOn lists the keel_ statements prepared on the pool's one
// connection.
func preparedOn(t *testing.T, db *sqlx.DB) []string {
	t.Helper()
	var names []string
	if err := db.Select(&names, `SELECT name FROM pg_prepared_statements WHERE name LIKE 'keel\_%' ORDER BY name`); err != nil {
		t.Fatal(err)
	}
	return names
}

// A message's statements are prepared on a connection the first time it
// sees them and executed from then on, with the arguments of each call; the
// tenant it sets ends with the message.
func TestQueryMessagePreparesOncePerConnection(t *testing.T) {
	t.Parallel()
	_, db := onePool(t, false)
	ctx := context.Background()
	var pid int
	if err := db.Get(&pid, `SELECT pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		org := uuid.New()
		got, sum, err := readMessage(ctx, db, org, i)
		if err != nil || got != org.String() || sum != i+1 {
			t.Fatalf("message %d: %q, %d, %v; want %s, %d", i, got, sum, err, org, i+1)
		}
		if names := preparedOn(t, db); len(names) != 2 {
			t.Fatalf("after message %d, prepared %v; want the two statements", i, names)
		}
	}
	if v := orgSetting(t, db); v.String != "" {
		t.Errorf("the connection kept app.org_id = %q after the message", v.String)
	}
	var after int
	if err := db.Get(&after, `SELECT pg_backend_pid()`); err != nil || after != pid {
		t.Fatalf("the connection changed (%d → %d, %v): the messages should have reused it", pid, after, err)
	}
	// An argument no literal exists for is refused before anything is sent.
	if _, err := postgres.QueryMessage(ctx, db, postgres.Stmt{Query: `SELECT $1::int`, Args: []any{struct{}{}}}); err == nil {
		t.Fatal("a struct argument was sent")
	}
}

// A connection that lost its statements (DISCARD ALL, or a pooler that
// moved the session) is dropped and the message runs on a fresh one; a
// failing message that prepared statements drops its connection too,
// since what it prepared is unknown; a failing EXECUTE keeps it.
func TestQueryMessageRecoversLostStatements(t *testing.T) {
	t.Parallel()
	_, db := onePool(t, false)
	ctx := context.Background()
	pid := func() int {
		var p int
		if err := db.Get(&p, `SELECT pg_backend_pid()`); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, _, err := readMessage(ctx, db, uuid.New(), 1); err != nil {
		t.Fatal(err)
	}
	first := pid()
	if _, err := db.Exec(`DISCARD ALL`); err != nil {
		t.Fatal(err)
	}
	if _, sum, err := readMessage(ctx, db, uuid.New(), 2); err != nil || sum != 3 {
		t.Fatalf("after DISCARD ALL: %d, %v", sum, err)
	}
	second := pid()
	if second == first {
		t.Fatal("the connection that lost its statements was kept")
	}
	if names := preparedOn(t, db); len(names) != 2 {
		t.Fatalf("the fresh connection prepared %v", names)
	}

	// A failing EXECUTE: the statements stay, and so does the connection.
	if _, _, err := readMessage(ctx, db, uuid.New(), 2147483647); err == nil {
		t.Fatal("an int overflow passed")
	}
	if pid() != second {
		t.Fatal("a failed EXECUTE dropped a connection whose statements were known")
	}
	if _, sum, err := readMessage(ctx, db, uuid.New(), 4); err != nil || sum != 5 {
		t.Fatalf("after a failed EXECUTE: %d, %v", sum, err)
	}

	// A new statement that fails in the message that prepares it.
	m, err := postgres.QueryMessage(ctx, db, postgres.Stmt{Query: `SELECT 1 / $1::int`, Args: []any{0}})
	var pe *pq.Error
	if err == nil {
		m.Close(nil)
		t.Fatal("a division by zero passed")
	} else if !errors.As(err, &pe) || pe.Code != "22012" {
		t.Fatalf("division by zero: %v", err)
	}
	if pid() == second {
		t.Fatal("a failed message that prepared a statement kept its connection")
	}
	if _, sum, err := readMessage(ctx, db, uuid.New(), 6); err != nil || sum != 7 {
		t.Fatalf("after a failed PREPARE message: %d, %v", sum, err)
	}
}

// With Unprepared (a transaction-mode pooler), nothing is prepared and the
// message reads the same.
func TestQueryMessageUnprepared(t *testing.T) {
	t.Parallel()
	_, db := onePool(t, true)
	org := uuid.New()
	got, sum, err := readMessage(context.Background(), db, org, 41)
	if err != nil || got != org.String() || sum != 42 {
		t.Fatalf("unprepared: %q, %d, %v", got, sum, err)
	}
	if names := preparedOn(t, db); len(names) != 0 {
		t.Fatalf("unprepared, yet %v were prepared", names)
	}
}

// InTxWith opens its transaction with the tenant and the first statements
// in one message, prepared on the connection; fn's work commits with them,
// or rolls back when fn fails, and the tenant ends with the transaction.
func TestInTxWith(t *testing.T) {
	t.Parallel()
	db := inTxWithPool(t, false)
	run := func(org uuid.UUID, n int, fail error) error { return insertInTxWith(db, org, n, fail) }
	for i := range 3 {
		if err := run(uuid.New(), i, nil); err != nil {
			t.Fatalf("transaction %d: %v", i, err)
		}
	}
	boom := errors.New("boom")
	if err := run(uuid.New(), 99, boom); !errors.Is(err, boom) {
		t.Fatalf("failing fn: %v", err)
	}
	var ns []int
	if err := db.Select(&ns, `SELECT n FROM intxwith ORDER BY n`); err != nil || fmt.Sprint(ns) != "[0 1 2]" {
		t.Fatalf("committed %v (%v); want [0 1 2], the failed one rolled back", ns, err)
	}
	if names := preparedOn(t, db); len(names) != 2 {
		t.Fatalf("prepared %v; want the tenant's and the first statement", names)
	}
	if v := orgSetting(t, db); v.String != "" {
		t.Errorf("the connection kept app.org_id = %q", v.String)
	}
	// Its statements lost: the connection goes, and the transaction runs
	// again on a fresh one, once.
	var pid, after int
	if err := db.Get(&pid, `SELECT pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DEALLOCATE ALL`); err != nil {
		t.Fatal(err)
	}
	if err := run(uuid.New(), 7, nil); err != nil {
		t.Fatalf("after the lost statements: %v", err)
	}
	if err := db.Get(&after, `SELECT pg_backend_pid()`); err != nil || after == pid {
		t.Fatalf("the connection that lost its statements was kept (%d, %v)", after, err)
	}
	if err := db.Select(&ns, `SELECT n FROM intxwith ORDER BY n`); err != nil || fmt.Sprint(ns) != "[0 1 2 7]" {
		t.Fatalf("committed %v (%v); want [0 1 2 7], 7 once", ns, err)
	}
}

// With Unprepared the opening message inlines its values: the same
// transaction, nothing prepared.
func TestInTxWithUnprepared(t *testing.T) {
	t.Parallel()
	db := inTxWithPool(t, true)
	org := uuid.New()
	if err := insertInTxWith(db, org, 5, nil); err != nil {
		t.Fatal(err)
	}
	var ns []int
	if err := db.Select(&ns, `SELECT n FROM intxwith`); err != nil || fmt.Sprint(ns) != "[5]" {
		t.Fatalf("committed %v (%v)", ns, err)
	}
	if names := preparedOn(t, db); len(names) != 0 {
		t.Fatalf("unprepared, yet %v were prepared", names)
	}
}

// inTxWithPool is onePool with a table intxwith (n int) the application
// role may read, insert into and update.
func inTxWithPool(t *testing.T, unprepared bool) *sqlx.DB {
	t.Helper()
	d, db := onePool(t, unprepared)
	if _, err := d.Owner.Exec(`CREATE TABLE intxwith (n int)`); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Owner.Exec(`GRANT SELECT, INSERT, UPDATE ON intxwith TO ` + postgrestest.AppRole()); err != nil {
		t.Fatal(err)
	}
	return db
}

// insertInTxWith inserts n in a transaction that InTxWith opens with the
// tenant org and a statement that reads it back (checked, with its
// argument), then fails with fail, if any.
func insertInTxWith(db *sqlx.DB, org uuid.UUID, n int, fail error) error {
	first := []postgres.Stmt{{Query: `SELECT current_setting('app.org_id', true), $1::int * 2`, Args: []any{21}}}
	return postgres.InTxWith(context.Background(), db, org, first, func(rows *sqlx.Rows) error {
		for rows.Next() {
		}
		if !rows.NextResultSet() || !rows.Next() {
			return errors.New("no result of the first statement")
		}
		var got string
		var twice int
		if err := rows.Scan(&got, &twice); err != nil {
			return err
		}
		if got != org.String() || twice != 42 {
			return fmt.Errorf("first statement saw %q, %d", got, twice)
		}
		return nil
	}, func(tx *sqlx.Tx) error {
		if _, err := tx.Exec(`INSERT INTO intxwith VALUES ($1)`, n); err != nil {
			return err
		}
		return fail
	})
}
