package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"testing"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

func orgSetting(t *testing.T, q sqlx.QueryerContext) sql.NullString {
	t.Helper()
	var v sql.NullString
	if err := sqlx.GetContext(context.Background(), q, &v, `SELECT current_setting('app.org_id', true)`); err != nil {
		t.Fatal(err)
	}
	return v
}

// The tenant set by InTx is visible inside its transaction only: on a pool of
// one connection, the next transaction does not inherit it.
func TestInTxScopesTheTenantToItsTransaction(t *testing.T) {
	t.Parallel()
	_, db := onePool(t, false)
	ctx := context.Background()
	org := uuid.New()
	if err := postgres.InTx(ctx, db, org, func(tx *sqlx.Tx) error {
		if v := orgSetting(t, tx); v.String != org.String() {
			t.Errorf("inside: app.org_id = %q, want %s", v.String, org)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// PostgreSQL reports a transaction-local custom setting as '' (not NULL)
	// once the connection has seen it; policies must treat both as "no tenant".
	if v := orgSetting(t, db); v.String != "" {
		t.Errorf("after commit, the pooled connection still has app.org_id = %q", v.String)
	}
	if err := postgres.InTx(ctx, db, uuid.Nil, func(tx *sqlx.Tx) error {
		if v := orgSetting(t, tx); v.String != "" {
			t.Errorf("a transaction without a tenant sees app.org_id = %q", v.String)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestInTxRollsBack(t *testing.T) {
	t.Parallel()
	d := postgrestest.New(t)
	ctx := context.Background()
	insert := func(tx *sqlx.Tx, id string) {
		t.Helper()
		if _, err := tx.ExecContext(ctx, `INSERT INTO sent_emails (task_id, recipient, template) VALUES ($1, 'a@example.com', 'welcome')`, id); err != nil {
			t.Fatal(err)
		}
	}
	boom := errors.New("boom")
	if err := postgres.InTx(ctx, d.App, uuid.Nil, func(tx *sqlx.Tx) error { insert(tx, "err"); return boom }); !errors.Is(err, boom) {
		t.Fatalf("InTx = %v, want the callback's error", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("InTx swallowed a panic")
			}
		}()
		_ = postgres.InTx(ctx, d.App, uuid.Nil, func(tx *sqlx.Tx) error { insert(tx, "panic"); panic("boom") })
	}()
	if err := postgres.InTx(ctx, d.App, uuid.Nil, func(tx *sqlx.Tx) error { insert(tx, "ok"); return nil }); err != nil {
		t.Fatal(err)
	}
	var ids []string
	if err := d.Owner.Select(&ids, `SELECT task_id FROM sent_emails ORDER BY 1`); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != "ok" {
		t.Fatalf("rows after commit, error and panic: %v", ids)
	}
}

func TestTranslate(t *testing.T) {
	t.Parallel()
	d := postgrestest.New(t)
	ctx := context.Background()
	var s string
	err := postgres.Translate(d.App.GetContext(ctx, &s, `SELECT task_id FROM sent_emails WHERE task_id = 'none'`))
	if !errors.Is(err, postgres.ErrNotFound) || !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("no rows: %v", err)
	}
	const ins = `INSERT INTO sent_emails (task_id, recipient, template) VALUES ('dup', 'a@example.com', 'welcome')`
	d.App.MustExec(ins)
	_, err = d.App.ExecContext(ctx, ins)
	if !errors.Is(postgres.Translate(err), postgres.ErrConflict) || !postgres.IsUniqueViolation(err, "sent_emails_pkey") || postgres.IsUniqueViolation(err, "other") {
		t.Errorf("unique violation: %v", postgres.Translate(err))
	}
	other := errors.New("other")
	if postgres.Translate(other) != other || postgres.Translate(nil) != nil {
		t.Error("Translate changed an unrelated error")
	}
	if err := postgres.Ping(ctx, d.App); err != nil {
		t.Errorf("Ping: %v", err)
	}
}
