package migrate_test

import (
	"bytes"
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/keelhq/keel/internal/migrate"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
)

// adminFixture is a migrated empty database with its app role, and the
// name of an admin role (random, dropped when the test ends).
type adminFixture struct {
	e     *postgrestest.Empty
	m     *migrate.Migrator
	owner *sql.DB
	role  string
}

func newAdminFixture(t *testing.T) adminFixture {
	t.Helper()
	e, m, owner := mustProvisioned(t)
	f := adminFixture{e: e, m: m, owner: owner, role: e.AppRole + "_adm"}
	// Runs before the database is dropped: the role's privileges there
	// (and on the database) go with DROP OWNED, then the role.
	t.Cleanup(func() {
		for _, r := range []string{f.role, f.role + "_super"} {
			var exists bool
			if err := owner.QueryRow(`SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, r).Scan(&exists); err != nil || !exists {
				continue
			}
			q := postgres.QuoteIdentifier(r)
			if _, err := owner.Exec(`DROP OWNED BY ` + q); err != nil {
				t.Errorf("drop owned by %s: %v", r, err)
			}
			if _, err := owner.Exec(`DROP ROLE ` + q); err != nil {
				t.Errorf("drop role %s: %v", r, err)
			}
		}
	})
	return f
}

func (f adminFixture) url(role string) string { return postgrestest.URL(f.e.Name, role, "admin-pw") }

func TestEnsureAdminRole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newAdminFixture(t)
	for run := 1; run <= 2; run++ {
		if err := f.m.EnsureAdminRole(ctx, f.url(f.role), f.e.AppRole); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if a := attrs(t, f.owner, f.role); a != (roleAttrs{bypass: true, canLogin: true}) {
			t.Errorf("run %d: role attributes %+v, want LOGIN BYPASSRLS only", run, a)
		}
		// Table-wide privileges: none but INSERT on audit_log (reads and
		// updates are granted column by column).
		privs := privileges(t, f.owner, f.role)
		if len(privs) != 1 || privs["audit_log"] != "INSERT" {
			t.Errorf("run %d: table privileges %v, want only INSERT on audit_log", run, privs)
		}
		for _, c := range []struct {
			table, column, priv string
			want                bool
		}{
			{"users", "email", "SELECT", true},
			{"users", "password_hash", "SELECT", false},
			{"users", "totp_secret", "SELECT", false},
			{"refresh_tokens", "token_hash", "SELECT", false},
			{"api_keys", "secret_hash", "SELECT", false},
			{"api_keys", "prefix", "SELECT", true},
			{"organizations", "name", "SELECT", true},
			{"users", "disabled_at", "UPDATE", true},
			{"users", "email", "UPDATE", false},
			{"organizations", "suspended_at", "UPDATE", true},
			{"organizations", "name", "UPDATE", false},
			{"subscriptions", "status", "UPDATE", false},
		} {
			var got bool
			if err := f.owner.QueryRow(`SELECT has_column_privilege($1, $2, $3, $4)`, f.role, c.table, c.column, c.priv).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("run %d: %s on %s.%s = %v, want %v", run, c.priv, c.table, c.column, got, c.want)
			}
		}
	}
	// It logs in with the URL's password and reads across tenants.
	adm := mustOpen(t, f.url(f.role))
	var n int
	if err := adm.QueryRow(`SELECT count(*) FROM organizations`).Scan(&n); err != nil {
		t.Fatalf("read as the admin role: %v", err)
	}
	if _, err := adm.Exec(`DELETE FROM outbox`); err == nil {
		t.Error("the admin role may delete")
	}
}

func TestEnsureAdminRoleRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newAdminFixture(t)
	exec := func(q string) {
		t.Helper()
		if _, err := f.owner.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	refuse := func(name, url, appRole, want string) {
		t.Helper()
		err := f.m.EnsureAdminRole(ctx, url, appRole)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", name, err, want)
		}
	}
	refuse("the app role's name", f.url(f.e.AppRole), f.e.AppRole, "must be its own role")
	refuse("no role in the URL", "postgres://127.0.0.1/"+f.e.Name, f.e.AppRole, "must name the platform admin role")

	super := f.role + "_super"
	exec(`CREATE ROLE ` + postgres.QuoteIdentifier(super) + ` LOGIN SUPERUSER`)
	refuse("a superuser", f.url(super), f.e.AppRole, "is a superuser")
	if a := attrs(t, f.owner, super); !a.super {
		t.Error("the refused superuser was changed")
	}

	// A member of the admin role could SET ROLE to it: refused, and the
	// role is left without any privilege on the data.
	exec(`CREATE ROLE ` + postgres.QuoteIdentifier(f.role) + ` LOGIN`)
	exec(`GRANT ` + postgres.QuoteIdentifier(f.role) + ` TO ` + postgres.QuoteIdentifier(f.e.AppRole))
	refuse("the app role is a member", f.url(f.role), f.e.AppRole, "is a member of the admin role")
	if p := privileges(t, f.owner, f.role); len(p) != 0 {
		t.Errorf("a refused admin role holds privileges: %v", p)
	}
	var col bool
	if err := f.owner.QueryRow(`SELECT has_column_privilege($1, 'users', 'email', 'SELECT')`, f.role).Scan(&col); err != nil || col {
		t.Errorf("a refused admin role may read users.email (%v)", err)
	}

	// Once the membership is revoked it is accepted.
	exec(`REVOKE ` + postgres.QuoteIdentifier(f.role) + ` FROM ` + postgres.QuoteIdentifier(f.e.AppRole))
	if err := f.m.EnsureAdminRole(ctx, f.url(f.role), f.e.AppRole); err != nil {
		t.Fatalf("after the revoke: %v", err)
	}
}

// migrate up with ADMIN_DATABASE_URL set makes both roles (EnsureRoles).
func TestEnsureRolesMakesTheAdminRole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newAdminFixture(t)
	if err := f.m.Up(ctx, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if err := f.m.EnsureRoles(ctx, f.e.AppURL, f.url(f.role)); err != nil {
		t.Fatal(err)
	}
	if a := attrs(t, f.owner, f.role); !a.bypass || a.super {
		t.Fatalf("admin role attributes %+v", a)
	}
	if err := f.m.EnsureRoles(ctx, f.e.AppURL, f.url(f.e.AppRole)); err == nil {
		t.Fatal("EnsureRoles accepted the app role as the admin role")
	}
}
