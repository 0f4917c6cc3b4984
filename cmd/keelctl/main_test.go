package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/keelhq/keel/internal/platform/postgrestest"
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
