package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/demo"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
)

// keelctl admin grant and revoke flip the account's flag as the platform
// admin's role and leave a platform audit row (no organization) naming the
// operator; grant reminds that /admin needs a 2FA login.
func TestAdminGrantRevoke(t *testing.T) {
	db := postgrestest.New(t)
	t.Setenv("ADMIN_DATABASE_URL", db.PlatformURL)
	t.Setenv("USER", "ops")
	id := uuid.New()
	db.Owner.MustExec(`INSERT INTO users (id, email, name, password_hash) VALUES ($1, 'ada@example.com', 'Ada', 'x')`, id)
	isAdmin := func() bool {
		t.Helper()
		var b bool
		if err := db.Owner.Get(&b, `SELECT is_platform_admin FROM users WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
		return b
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"admin", "grant", "Ada@Example.com"}, &out); err != nil {
		t.Fatalf("grant: %v\n%s", err, out.String())
	}
	for _, want := range []string{"granted platform admin to Ada@Example.com (user " + id.String() + ")", "enable 2FA", "TOTP", "recovery-code login is not enough"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("grant output lacks %q:\n%s", want, out.String())
		}
	}
	if !isAdmin() {
		t.Fatal("not an admin after grant")
	}
	out.Reset()
	if err := run(context.Background(), []string{"admin", "revoke", "ada@example.com"}, &out); err != nil || !strings.Contains(out.String(), "revoked platform admin from ada@example.com") {
		t.Fatalf("revoke: %v\n%s", err, out.String())
	}
	if isAdmin() {
		t.Fatal("still an admin after revoke")
	}

	var rows []struct {
		Action   string  `db:"action"`
		OrgID    *string `db:"org_id"`
		Target   string  `db:"target_id"`
		Operator string  `db:"operator"`
		Via      string  `db:"via"`
	}
	if err := db.Owner.Select(&rows, `SELECT action, org_id::text, target_id, details->>'operator' AS operator, details->>'via' AS via
		FROM audit_log ORDER BY created_at, action DESC`); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Action != "admin.granted" || rows[1].Action != "admin.revoked" {
		t.Fatalf("audit rows %+v", rows)
	}
	for _, r := range rows {
		if r.OrgID != nil || r.Target != id.String() || !strings.HasPrefix(r.Operator, "ops@") || len(r.Operator) <= len("ops@") || r.Via != "keelctl" {
			t.Errorf("audit row %+v: want a platform row on the user naming ops@host", r)
		}
	}
}

// An address no account has is a plain message and a failed exit, and
// nothing is written.
func TestAdminGrantUnknownEmail(t *testing.T) {
	db := postgrestest.New(t)
	t.Setenv("ADMIN_DATABASE_URL", db.PlatformURL)
	for _, cmd := range []string{"grant", "revoke"} {
		var out bytes.Buffer
		err := run(context.Background(), []string{"admin", cmd, "nobody@example.com"}, &out)
		if err == nil || errors.Is(err, errUsage) || err.Error() != "no account has the email address nobody@example.com: the user must sign up first" {
			t.Fatalf("%s of an unknown email: %v\n%s", cmd, err, out.String())
		}
	}
	var n int
	if err := db.Owner.Get(&n, `SELECT count(*) FROM audit_log`); err != nil || n != 0 {
		t.Fatalf("%d audit rows after refused commands (%v)", n, err)
	}
}

// Without ADMIN_DATABASE_URL the command names the variable; without an
// email it is a usage error.
func TestAdminNeedsItsDatabaseURL(t *testing.T) {
	t.Setenv("ADMIN_DATABASE_URL", "")
	t.Setenv("DATABASE_URL", "postgres://keel_app@127.0.0.1:1/keel")
	err := run(context.Background(), []string{"admin", "grant", "ada@example.com"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "ADMIN_DATABASE_URL is required") {
		t.Fatalf("grant without ADMIN_DATABASE_URL: %v", err)
	}
	for _, args := range [][]string{{"admin"}, {"admin", "grant"}, {"admin", "promote", "ada@example.com"}, {"admin", "grant", "a@example.com", "b@example.com"}} {
		if err := run(context.Background(), args, &bytes.Buffer{}); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

// seed-demo, given ADMIN_DATABASE_URL and TOTP_ENCRYPTION_KEY, adds a
// platform admin with 2FA on and prints its TOTP secret (the one sealed in
// the database); a second run prints the same secret and grants nothing
// again.
func TestSeedDemoPlatformAdmin(t *testing.T) {
	db := postgrestest.New(t)
	key := bytes.Repeat([]byte{7}, 32)
	t.Setenv("DATABASE_URL", db.AppURL)
	t.Setenv("ADMIN_DATABASE_URL", db.PlatformURL)
	t.Setenv("TOTP_ENCRYPTION_KEY", base64.StdEncoding.EncodeToString(key))
	secretRE := regexp.MustCompile(`Platform admin: ` + regexp.QuoteMeta(demo.PlatformAdminEmail) + `, password \S+, TOTP secret ([A-Z2-7]+)\n`)
	seed := func() string {
		t.Helper()
		var out bytes.Buffer
		if err := run(context.Background(), []string{"seed-demo"}, &out); err != nil {
			t.Fatalf("seed-demo: %v\n%s", err, out.String())
		}
		m := secretRE.FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("no platform admin line:\n%s", out.String())
		}
		return m[1]
	}
	secret := seed()
	var u struct {
		ID     uuid.UUID `db:"id"`
		Admin  bool      `db:"is_platform_admin"`
		Sealed []byte    `db:"totp_secret"`
		On     bool      `db:"on"`
	}
	if err := db.Owner.Get(&u, `SELECT id, is_platform_admin, totp_secret, totp_enabled_at IS NOT NULL AS on FROM users WHERE email = $1`,
		demo.PlatformAdminEmail); err != nil {
		t.Fatal(err)
	}
	box, err := auth.NewSecretBox(key)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := box.Open(u.Sealed, u.ID[:])
	if err != nil || string(opened) != secret || !u.Admin || !u.On {
		t.Fatalf("seeded admin %+v, sealed secret %q (%v), printed %q", u, opened, err, secret)
	}
	if again := seed(); again != secret {
		t.Fatalf("second run printed %q, first %q", again, secret)
	}
	var grants int
	if err := db.Owner.Get(&grants, `SELECT count(*) FROM audit_log WHERE action = 'admin.granted' AND target_id = $1`, u.ID.String()); err != nil || grants != 1 {
		t.Fatalf("%d grants (%v)", grants, err)
	}
}

// The operator's path on a new database: migrate up with
// ADMIN_DATABASE_URL creates the admin role (make dev's and compose's
// setting), and keelctl admin grant then works as that role.
func TestMigrateCreatesTheAdminRoleForGrant(t *testing.T) {
	role := "keel_e_padmin_" + postgrestest.ID() // a name scripts/sweep-test-db.sh drops if a killed run leaves it
	t.Cleanup(func() {                           // registered first: runs after the database is dropped
		owner, err := sql.Open(postgres.DriverName, postgrestest.URL("postgres", "", ""))
		if err != nil {
			t.Error(err)
			return
		}
		defer owner.Close()
		if _, err := owner.Exec("DROP ROLE IF EXISTS " + postgres.QuoteIdentifier(role)); err != nil {
			t.Errorf("drop %s: %v", role, err)
		}
	})
	e := postgrestest.NewEmpty(t)
	t.Setenv("DATABASE_OWNER_URL", e.OwnerURL)
	t.Setenv("DATABASE_URL", e.AppURL)
	t.Setenv("ADMIN_DATABASE_URL", postgrestest.URL(e.Name, role, "admin-pw-test"))
	var out bytes.Buffer
	if err := run(context.Background(), []string{"migrate", "up"}, &out); err != nil || !strings.Contains(out.String(), "platform admin role ready") {
		t.Fatalf("migrate up: %v\n%s", err, out.String())
	}
	owner, err := sql.Open(postgres.DriverName, e.OwnerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	var bypass bool
	if err := owner.QueryRow(`SELECT rolbypassrls FROM pg_roles WHERE rolname = $1`, role).Scan(&bypass); err != nil || !bypass {
		t.Fatalf("role %s: bypassrls %v (%v)", role, bypass, err)
	}
	if _, err := owner.Exec(`INSERT INTO users (id, email, name, password_hash) VALUES ($1, 'ops@example.com', 'Ops', 'x')`, uuid.New()); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"admin", "grant", "ops@example.com"}, &out); err != nil || !strings.Contains(out.String(), "granted platform admin") {
		t.Fatalf("grant after migrate: %v\n%s", err, out.String())
	}
	// The application role cannot do the same: it may not write the flag.
	t.Setenv("ADMIN_DATABASE_URL", e.AppURL)
	if err := run(context.Background(), []string{"admin", "revoke", "ops@example.com"}, &out); err == nil || !strings.Contains(err.Error(), "must connect as its own role") {
		t.Fatalf("revoke as the app role: %v", err)
	}
}
