package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
	"github.com/keelhq/keel/internal/platform/redistest"
)

// doctor's PostgreSQL checks: the application role on a migrated database
// passes both; a superuser fails the Row Level Security check. Redis and
// SMTP point nowhere here, so the command fails on them.
func TestDoctorDatabaseChecks(t *testing.T) {
	db := postgrestest.New(t)
	t.Setenv("REDIS_URL", "redis://127.0.0.1:1")
	t.Setenv("SMTP_URL", "smtp://127.0.0.1:1")
	doctor := func(url string) string {
		t.Helper()
		t.Setenv("DATABASE_URL", url)
		var out bytes.Buffer
		if err := run(context.Background(), []string{"doctor"}, &out); err == nil || !strings.Contains(err.Error(), "check(s) failed") {
			t.Fatalf("doctor with Redis and SMTP down: %v\n%s", err, out.String())
		}
		return out.String()
	}
	out := doctor(db.AppURL)
	for _, want := range []string{"ok   postgres     PostgreSQL ", "ok   migrations   at version ", "FAIL redis", "FAIL smtp"} {
		if !strings.Contains(out, want) {
			t.Errorf("as the application role, no %q in:\n%s", want, out)
		}
	}
	if out := doctor(db.OwnerURL); !strings.Contains(out, "FAIL postgres") || !strings.Contains(out, "bypasses Row Level Security") {
		t.Errorf("as a superuser:\n%s", out)
	}
}

// seed-demo creates accounts whose password is printed (and in the docs):
// run against production by mistake, it would open a door. It refuses with a
// plain message and writes nothing; elsewhere it seeds.
func TestSeedDemoRefusesProduction(t *testing.T) {
	db := postgrestest.New(t)
	t.Setenv("DATABASE_URL", db.AppURL)
	t.Setenv("ENV", "production")
	var out bytes.Buffer
	err := run(context.Background(), []string{"seed-demo"}, &out)
	if !errors.Is(err, errSeedInProduction) || !strings.Contains(err.Error(), "ENV=production") {
		t.Fatalf("seed-demo in production: %v\n%s", err, out.String())
	}
	var users int
	if err := db.Owner.Get(&users, `SELECT count(*) FROM users`); err != nil || users != 0 {
		t.Fatalf("%d users after a refused seed (%v)", users, err)
	}

	t.Setenv("ENV", "staging")
	out.Reset()
	if err := run(context.Background(), []string{"seed-demo"}, &out); err != nil || !strings.Contains(out.String(), "owner@demo.keel.localhost") {
		t.Fatalf("seed-demo in staging: %v\n%s", err, out.String())
	}
}

// keelctl doctor fails the postgres check when the application role could
// SET ROLE to the owner (and so past Row Level Security).
func TestDoctorRefusesAnAppRoleThatCanBecomeTheOwner(t *testing.T) {
	ctx := context.Background()
	e := postgrestest.NewEmpty(t)
	t.Setenv("DATABASE_OWNER_URL", e.OwnerURL)
	t.Setenv("DATABASE_URL", e.AppURL)
	t.Setenv("REDIS_URL", redistest.Start(t).URL)
	var out bytes.Buffer
	if err := run(ctx, []string{"migrate", "up"}, &out); err != nil {
		t.Fatalf("migrate up: %v\n%s", err, out.String())
	}
	postgresLine := func() string {
		out.Reset()
		_ = run(ctx, []string{"doctor"}, &out) // SMTP is down: only PostgreSQL matters here
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.Contains(l, " postgres ") {
				return l
			}
		}
		t.Fatalf("no postgres line:\n%s", out.String())
		return ""
	}
	if l := postgresLine(); !strings.HasPrefix(l, "ok ") {
		t.Fatalf("doctor before: %s", l)
	}
	owner, err := sql.Open(postgres.DriverName, e.OwnerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	var current string
	if err := owner.QueryRow(`SELECT current_user`).Scan(&current); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Exec("GRANT " + postgres.QuoteIdentifier(current) + " TO " + postgres.QuoteIdentifier(e.AppRole)); err != nil {
		t.Fatal(err)
	}
	if l := postgresLine(); !strings.HasPrefix(l, "FAIL") || !strings.Contains(l, "is a member of") {
		t.Fatalf("doctor with the app role in the owner role: %s", l)
	}
	if err := run(ctx, []string{"migrate", "up"}, &out); err == nil || !strings.Contains(err.Error(), "SET ROLE") {
		t.Fatalf("migrate up with the app role in the owner role: %v", err)
	}
}
