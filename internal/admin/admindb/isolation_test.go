package admindb_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
)

func TestMain(m *testing.M) { os.Exit(postgrestest.Main(m)) }

// tenantTables are the tenant tables the isolation test reads, each with
// rows of both organizations.
var tenantTables = []string{"memberships", "resources", "audit_log", "subscriptions", "api_keys"}

// seedTwoOrgs makes organizations A and B, each with a user, membership,
// resource, audit entry, subscription, API key and session, plus one
// platform audit row (org_id NULL); as the superuser.
func seedTwoOrgs(t *testing.T, db *postgrestest.DB) (a, b uuid.UUID) {
	t.Helper()
	a, b = uuid.New(), uuid.New()
	for i, org := range []uuid.UUID{a, b} {
		user := uuid.New()
		name := string(rune('a' + i))
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO organizations (id, name) VALUES ($1, $2)`, []any{org, "Org " + name}},
			{`INSERT INTO users (id, email, name, password_hash, totp_secret) VALUES ($1, $2, 'U', 'argon2id$hash', '\xdead')`, []any{user, name + "@iso.test"}},
			{`INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, 'owner')`, []any{org, user}},
			{`INSERT INTO subscriptions (org_id, plan_id, status) VALUES ($1, 'pro', 'active')`, []any{org}},
			{`INSERT INTO resources (org_id, id, name) VALUES ($1, $2, 'r')`, []any{org, uuid.New()}},
			{`INSERT INTO audit_log (id, org_id, action) VALUES ($1, $2, 'test.seeded')`, []any{uuid.New(), org}},
			{`INSERT INTO api_keys (id, org_id, name, role, prefix, secret_hash) VALUES ($1, $2, 'k', 'member', $3, '\x01')`, []any{uuid.New(), org, "p" + uuid.NewString()[:8]}},
			{`INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, expires_at) VALUES ($1, $1, $2, $3, now() + interval '1 day')`, []any{uuid.New(), user, []byte(uuid.NewString())}},
		} {
			if _, err := db.Owner.Exec(q.sql, q.args...); err != nil {
				t.Fatalf("seed %q: %v", q.sql, err)
			}
		}
	}
	if _, err := db.Owner.Exec(`INSERT INTO audit_log (id, org_id, action) VALUES ($1, NULL, 'admin.test_platform')`, uuid.New()); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// orgsIn returns the org_id of every row of table that q sees.
func orgsIn(t *testing.T, q sqlx.QueryerContext, table string) []string {
	t.Helper()
	var out []string
	if err := sqlx.SelectContext(context.Background(), q, &out, `SELECT COALESCE(org_id::text, 'NULL') FROM `+table); err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	return out
}

func denied(t *testing.T, db *sqlx.DB, q string) {
	t.Helper()
	_, err := db.Exec(q)
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("%s: %v, want permission denied", q, err)
	}
}

// TestOnlyTheAdminRoleCrossesTenants: the API's ordinary role sees one
// organization (the one its transaction sets) and no platform row, has no
// BYPASSRLS and cannot become the admin role; the admin role sees every
// organization but no secret column, and can neither change accounts
// beyond AdminRoleUpdates nor delete anything.
func TestOnlyTheAdminRoleCrossesTenants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := postgrestest.New(t)
	a, b := seedTwoOrgs(t, db)

	t.Run("app role sees its tenant only", func(t *testing.T) {
		err := postgres.InTx(ctx, db.App, a, func(tx *sqlx.Tx) error {
			for _, table := range tenantTables {
				got := orgsIn(t, tx, table)
				if len(got) == 0 {
					t.Errorf("%s: tenant A sees none of its rows", table)
				}
				for _, org := range got {
					if org != a.String() {
						t.Errorf("%s: tenant A sees a row of %s", table, org)
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("app role without a tenant sees nothing", func(t *testing.T) {
		for _, table := range tenantTables {
			if got := orgsIn(t, db.App, table); len(got) != 0 {
				t.Errorf("%s without a tenant: %v", table, got)
			}
		}
		// A connection that once had a tenant reads '' afterwards.
		err := postgres.InTx(ctx, db.App, uuid.Nil, func(tx *sqlx.Tx) error {
			if _, err := tx.Exec(`SELECT set_config('app.org_id', '', true)`); err != nil {
				return err
			}
			for _, table := range tenantTables {
				if got := orgsIn(t, tx, table); len(got) != 0 {
					t.Errorf("%s with an empty tenant: %v", table, got)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("app role cannot write a platform row", func(t *testing.T) {
		err := postgres.InTx(ctx, db.App, a, func(tx *sqlx.Tx) error {
			_, err := tx.Exec(`INSERT INTO audit_log (id, org_id, action) VALUES ($1, NULL, 'x')`, uuid.New())
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "row-level security") {
			t.Fatalf("app role inserted a platform audit row: %v", err)
		}
	})
	t.Run("app role has no way to the admin role", func(t *testing.T) {
		var bypass, super, member bool
		if err := db.App.QueryRow(`SELECT rolbypassrls, rolsuper, pg_has_role(current_user, $1, 'MEMBER') FROM pg_roles WHERE rolname = current_user`,
			postgrestest.PlatformRole()).Scan(&bypass, &super, &member); err != nil {
			t.Fatal(err)
		}
		if bypass || super || member {
			t.Fatalf("app role: bypassrls %v, superuser %v, member of the admin role %v", bypass, super, member)
		}
		conn, err := db.App.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, `SET ROLE `+postgres.QuoteIdentifier(postgrestest.PlatformRole())); err == nil ||
			!strings.Contains(err.Error(), "permission denied") {
			t.Fatalf("SET ROLE to the admin role: %v", err)
		}
	})
	t.Run("admin role sees every organization", func(t *testing.T) {
		var bypass, super bool
		if err := db.Platform.QueryRow(`SELECT rolbypassrls, rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&bypass, &super); err != nil {
			t.Fatal(err)
		}
		if !bypass || super {
			t.Fatalf("admin role: bypassrls %v, superuser %v", bypass, super)
		}
		for _, table := range tenantTables {
			seen := map[string]bool{}
			for _, org := range orgsIn(t, db.Platform, table) {
				seen[org] = true
			}
			if !seen[a.String()] || !seen[b.String()] {
				t.Errorf("%s: the admin role sees %v, want both organizations", table, seen)
			}
			if table == "audit_log" && !seen["NULL"] {
				t.Errorf("audit_log: the admin role does not see the platform row")
			}
		}
	})
	t.Run("admin role reads no secret", func(t *testing.T) {
		for _, q := range []string{
			`SELECT password_hash FROM users`, `SELECT totp_secret FROM users`, `SELECT * FROM users`,
			`SELECT token_hash FROM refresh_tokens`, `SELECT secret_hash FROM api_keys`,
			`SELECT token_hash FROM email_tokens`, `SELECT token_hash FROM invitations`, `SELECT code_hash FROM totp_recovery_codes`,
		} {
			denied(t, db.Platform, q)
		}
	})
	t.Run("admin role changes only what it must", func(t *testing.T) {
		denied(t, db.Platform, `UPDATE users SET email = 'x@evil.test'`)
		denied(t, db.Platform, `UPDATE organizations SET name = 'x'`)
		denied(t, db.Platform, `UPDATE subscriptions SET status = 'active'`)
		denied(t, db.Platform, `INSERT INTO memberships (org_id, user_id, role) SELECT org_id, user_id, 'owner' FROM memberships`)
		var tables []string
		if err := db.Owner.Select(&tables, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`); err != nil {
			t.Fatal(err)
		}
		if len(tables) < 20 {
			t.Fatalf("only %d tables", len(tables))
		}
		for _, table := range tables {
			denied(t, db.Platform, `DELETE FROM `+postgres.QuoteIdentifier(table))
			denied(t, db.Platform, `TRUNCATE `+postgres.QuoteIdentifier(table))
		}
		// What it may do: suspend, and audit it.
		if _, err := db.Platform.Exec(`UPDATE organizations SET suspended_at = now(), suspended_reason = 'test', updated_at = now() WHERE id = $1`, a); err != nil {
			t.Fatalf("suspend as the admin role: %v", err)
		}
		if _, err := db.Platform.Exec(`INSERT INTO audit_log (id, org_id, action) VALUES ($1, NULL, 'admin.test')`, uuid.New()); err != nil {
			t.Fatalf("platform audit row as the admin role: %v", err)
		}
	})
}
