package orgdb_test

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

// TestRowLevelSecurityCatalog finds every tenant table (a table in public
// with an org_id column) in the catalog, so a table added later without RLS
// fails here. Each must have RLS enabled and forced with a policy on
// app.org_id; as the application role with app.org_id = A a SELECT returns
// only A's rows, and with no org set it returns none.
func TestRowLevelSecurityCatalog(t *testing.T) {
	t.Parallel()
	db := postgrestest.New(t)
	ctx := context.Background()
	var tables []string
	if err := db.Owner.Select(&tables, `SELECT c.table_name FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema = 'public' AND c.column_name = 'org_id' AND t.table_type = 'BASE TABLE'
		ORDER BY 1`); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"api_keys", "audit_log", "invitations", "memberships",
		"subscriptions", "invoices", "billing_notices", "billing_customers"} {
		if !contains(tables, want) {
			t.Fatalf("tenant tables %v lack %s", tables, want)
		}
	}
	for _, notTenant := range []string{"outbox", "sent_emails", "users", "organizations", "refresh_tokens", "stripe_events"} {
		if contains(tables, notTenant) {
			t.Fatalf("%s has an org_id column but is meant to be a platform table", notTenant)
		}
	}

	orgA, orgB := seedTwoOrgs(t, db.Owner)
	for _, table := range tables {
		t.Run(table, func(t *testing.T) {
			var enabled, forced bool
			if err := db.Owner.QueryRow(`SELECT relrowsecurity, relforcerowsecurity FROM pg_class
				WHERE oid = ('public.' || quote_ident($1))::regclass`, table).Scan(&enabled, &forced); err != nil {
				t.Fatal(err)
			}
			if !enabled || !forced {
				t.Fatalf("RLS enabled=%v forced=%v; want ENABLE and FORCE ROW LEVEL SECURITY", enabled, forced)
			}
			var policies []string
			if err := db.Owner.Select(&policies, `SELECT coalesce(qual, '') FROM pg_policies
				WHERE schemaname = 'public' AND tablename = $1 AND 'public' = ANY(roles)`, table); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, q := range policies {
				found = found || strings.Contains(q, "app.org_id")
			}
			if !found {
				t.Fatalf("no policy for every role on current_setting('app.org_id'): %v", policies)
			}
			q := `SELECT count(*) AS total, count(*) FILTER (WHERE org_id = $1) AS mine FROM ` + postgres.QuoteIdentifier(table)
			count := func(tenant uuid.UUID) (total, mine int, err error) {
				err = postgres.InTx(ctx, db.App, tenant, func(tx *sqlx.Tx) error {
					return tx.QueryRowContext(ctx, q, orgA).Scan(&total, &mine)
				})
				return total, mine, err
			}
			total, mine, err := count(orgA)
			if err != nil {
				t.Fatalf("select as app role with app.org_id = A: %v", err)
			}
			if total != mine {
				t.Fatalf("with app.org_id = A the app role sees %d rows, %d of them A's", total, mine)
			}
			// No tenant: no rows, or an error (a policy that casts an unset
			// setting fails closed, which is as safe).
			if total, _, err := count(uuid.Nil); err == nil && total != 0 {
				t.Fatalf("with no app.org_id the app role sees %d rows", total)
			}
			var all, ofB int
			if err := db.Owner.QueryRow(`SELECT count(*), count(*) FILTER (WHERE org_id = $1) FROM `+postgres.QuoteIdentifier(table), orgB).Scan(&all, &ofB); err != nil {
				t.Fatal(err)
			}
			if seeded[table] && (mine == 0 || ofB == 0) {
				t.Fatalf("seed missing: A sees %d, B has %d", mine, ofB)
			}
			// With the application's own filter turned against it (B's org_id
			// named outright), RLS alone keeps a transaction scoped to A off B's rows.
			var touched int64
			err = postgres.InTx(ctx, db.App, orgA, func(tx *sqlx.Tx) error {
				res, err := tx.ExecContext(ctx, `DELETE FROM `+postgres.QuoteIdentifier(table)+` WHERE org_id = $1`, orgB)
				if err != nil {
					return err
				}
				touched, err = res.RowsAffected()
				return err
			})
			if err != nil || touched != 0 {
				t.Fatalf("delete of B's rows scoped to A: %d rows, %v", touched, err)
			}
			var ofBAfter int
			_ = db.Owner.Get(&ofBAfter, `SELECT count(*) FROM `+postgres.QuoteIdentifier(table)+` WHERE org_id = $1`, orgB)
			if ofBAfter != ofB {
				t.Fatalf("B had %d rows, now %d", ofB, ofBAfter)
			}
			// Writing a row of B while scoped to A is refused by WITH CHECK.
			if table == "memberships" {
				err = postgres.InTx(ctx, db.App, orgA, func(tx *sqlx.Tx) error {
					_, err := tx.ExecContext(ctx, `UPDATE memberships SET role = 'member' WHERE org_id = $1`, orgB)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				var owners int
				_ = db.Owner.Get(&owners, `SELECT count(*) FROM memberships WHERE org_id = $1 AND role = 'owner'`, orgB)
				if owners != 1 {
					t.Fatal("an update scoped to A changed B's memberships")
				}
				err = postgres.InTx(ctx, db.App, orgA, func(tx *sqlx.Tx) error {
					_, err := tx.ExecContext(ctx, `INSERT INTO memberships (org_id, user_id, role)
						SELECT $1, id, 'member' FROM users LIMIT 1`, orgB)
					return err
				})
				if err == nil || !strings.Contains(err.Error(), "row-level security") {
					t.Fatalf("insert into B scoped to A: %v", err)
				}
			}
		})
	}
}

var seeded = map[string]bool{"memberships": true, "invitations": true, "api_keys": true, "audit_log": true,
	"subscriptions": true, "invoices": true, "billing_notices": true, "billing_customers": true}

// seedTwoOrgs writes a row of each identity and billing tenant table for
// two organizations, as the owner.
func seedTwoOrgs(t *testing.T, owner *sqlx.DB) (uuid.UUID, uuid.UUID) {
	t.Helper()
	ids := [2]uuid.UUID{uuid.New(), uuid.New()}
	for i, org := range ids {
		user := uuid.New()
		// Literal UUIDs the test made itself: nothing to inject.
		r := strings.NewReplacer("ORG", "'"+org.String()+"'", "USER", "'"+user.String()+"'")
		stmts := []string{
			`INSERT INTO organizations (id, name) VALUES (ORG, 'org')`,
			`INSERT INTO users (id, email, name, password_hash) VALUES (USER, USER || '@example.com', 'u', 'x')`,
			`INSERT INTO memberships (org_id, user_id, role) VALUES (ORG, USER, 'owner')`,
			`INSERT INTO invitations (id, org_id, email, role, token_hash, expires_at) VALUES (gen_random_uuid(), ORG, USER || '-i@example.com', 'member', decode(md5(USER), 'hex'), now() + interval '1 day')`,
			`INSERT INTO api_keys (id, org_id, name, role, prefix, secret_hash) VALUES (gen_random_uuid(), ORG, 'k', 'member', substr(md5(USER), 1, 12), '\x00')`,
			`INSERT INTO audit_log (id, org_id, action) VALUES (gen_random_uuid(), ORG, 'test')`,
			`INSERT INTO subscriptions (org_id, plan_id, status, stripe_customer_id) VALUES (ORG, 'pro', 'active', 'cus_' || md5(ORG::text))`,
			`INSERT INTO invoices (org_id, stripe_invoice_id, status, stripe_created) VALUES (ORG, 'in_' || md5(ORG::text), 'open', now())`,
			`INSERT INTO billing_notices (org_id, key) VALUES (ORG, 'paid:in_' || md5(ORG::text))`,
			`INSERT INTO billing_customers (stripe_customer_id, org_id) VALUES ('cus_' || md5(ORG::text), ORG)`,
		}
		for _, s := range stmts {
			if _, err := owner.Exec(r.Replace(s)); err != nil {
				t.Fatalf("seed org %d: %s: %v", i, s, err)
			}
		}
	}
	return ids[0], ids[1]
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
