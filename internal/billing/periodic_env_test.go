package billing_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/rs/zerolog"

	"github.com/keelhq/keel/internal/billing"
	"github.com/keelhq/keel/internal/billing/billingdb"
	"github.com/keelhq/keel/internal/plan"
	"github.com/keelhq/keel/internal/platform/clock/clocktest"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
)

// periodicEnv is a fresh database, the embedded plans and a billing
// service on a fake clock.
type periodicEnv struct {
	db    *postgrestest.DB
	svc   *billing.Service
	clock *clocktest.Fake
}

var t0 = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

func newPeriodicEnv(t *testing.T) *periodicEnv {
	t.Helper()
	plans, err := plan.Load("")
	if err != nil {
		t.Fatal(err)
	}
	db := postgrestest.New(t)
	clk := clocktest.New(t0)
	return &periodicEnv{db: db, clock: clk,
		svc: &billing.Service{DB: db.App, Store: billingdb.Store{}, Plans: plans, Now: clk.Now, Log: zerolog.Nop()}}
}

// org makes an organization with an owner and a member, started the way
// organization creation starts it (StartOrg, at the clock's now). It
// returns the organization and the member's user ID.
func (e *periodicEnv) org(t *testing.T, name string) (org, member uuid.UUID) {
	t.Helper()
	org, owner, member := uuid.New(), uuid.New(), uuid.New()
	_, err := e.db.Owner.Exec(fmt.Sprintf(`
		INSERT INTO organizations (id, name) VALUES ('%[1]s', '%[4]s');
		INSERT INTO users (id, email, name, password_hash) VALUES
			('%[2]s', 'owner-%[2]s@example.com', 'Owner', 'x'), ('%[3]s', 'member-%[3]s@example.com', 'Member', 'x');
		INSERT INTO memberships (org_id, user_id, role) VALUES ('%[1]s', '%[2]s', 'owner'), ('%[1]s', '%[3]s', 'member');`,
		org, owner, member, name))
	if err != nil {
		t.Fatal(err)
	}
	e.inTx(t, org, func(tx *sqlx.Tx) error { return e.svc.StartOrg(context.Background(), tx, org) })
	return org, member
}

func (e *periodicEnv) inTx(t *testing.T, org uuid.UUID, fn func(tx *sqlx.Tx) error) {
	t.Helper()
	if err := postgres.InTx(context.Background(), e.db.App, org, fn); err != nil {
		t.Fatal(err)
	}
}

func (e *periodicEnv) account(t *testing.T, org uuid.UUID) *billing.Account {
	t.Helper()
	var a *billing.Account
	e.inTx(t, org, func(tx *sqlx.Tx) (err error) {
		a, err = e.svc.Store.Account(context.Background(), tx, org, false)
		return err
	})
	return a
}

// mails counts the queued emails (email:send outbox rows) of template to
// org.
func (e *periodicEnv) mails(t *testing.T, org uuid.UUID, template string) int {
	t.Helper()
	var n int
	err := e.db.Owner.Get(&n, `SELECT count(*) FROM outbox WHERE task_type = 'email:send'
		AND headers->>'org_id' = $1 AND convert_from(payload, 'UTF8') LIKE '%' || $2 || '%'`, org.String(), `"template":"`+template+`"`)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *periodicEnv) audits(t *testing.T, org uuid.UUID, action string) int {
	t.Helper()
	var n int
	if err := e.db.Owner.Get(&n, `SELECT count(*) FROM audit_log WHERE org_id = $1 AND action = $2`, org, action); err != nil {
		t.Fatal(err)
	}
	return n
}

// apply folds snap into org's state as an event would.
func (e *periodicEnv) apply(t *testing.T, org uuid.UUID, snap billing.Snapshot) *billing.Account {
	t.Helper()
	var a *billing.Account
	e.inTx(t, org, func(tx *sqlx.Tx) (err error) {
		a, _, err = e.svc.ApplySnapshot(context.Background(), tx, org, snap)
		return err
	})
	return a
}
