package migrate_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/keelhq/keel/internal/migrate"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
)

func mustNew(t *testing.T, ownerURL string) *migrate.Migrator {
	t.Helper()
	m, err := migrate.New(ownerURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func mustOpen(t *testing.T, u string) *sql.DB {
	t.Helper()
	db, err := sql.Open(postgres.DriverName, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// schema fingerprints everything the migrations create in public, so a
// down-and-up that loses or changes anything shows as a difference.
func schema(t *testing.T, db *sql.DB) string {
	t.Helper()
	const q = `
	SELECT 'col ' || c.table_name || '.' || c.column_name || ' ' || c.data_type || ' ' || c.is_nullable || ' ' || COALESCE(c.column_default, '')
	  FROM information_schema.columns c WHERE c.table_schema = 'public' AND c.table_name <> 'goose_db_version'
	UNION ALL
	SELECT 'idx ' || indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> 'goose_db_version'
	UNION ALL
	SELECT 'con ' || conrelid::regclass || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
	  WHERE connamespace = 'public'::regnamespace AND conrelid <> 0 AND conrelid::regclass::text <> 'goose_db_version'
	UNION ALL
	SELECT 'pol ' || tablename || ' ' || policyname || ' ' || COALESCE(qual, '') || ' ' || COALESCE(with_check, '') FROM pg_policies WHERE schemaname = 'public'
	UNION ALL
	SELECT 'rls ' || relname || ' ' || relrowsecurity || ' ' || relforcerowsecurity FROM pg_class
	  WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relname <> 'goose_db_version'
	UNION ALL
	SELECT 'fn ' || p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
	UNION ALL
	SELECT 'type ' || typname FROM pg_type WHERE typnamespace = 'public'::regnamespace AND typtype IN ('e', 'd', 'c') AND typrelid = 0
	ORDER BY 1`
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		b.WriteString(s + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// leftovers lists what remains in public besides goose's own ledger.
func leftovers(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`
	SELECT relkind::text || ' ' || relname FROM pg_class WHERE relnamespace = 'public'::regnamespace
	   AND relname NOT LIKE 'goose_db_version%'
	UNION ALL SELECT 'fn ' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace
	UNION ALL SELECT 'type ' || typname FROM pg_type WHERE typnamespace = 'public'::regnamespace
	   AND typtype IN ('e', 'd', 'c') AND typrelid = 0
	ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		out = append(out, s)
	}
	return out
}

func versions(t *testing.T, m *migrate.Migrator) (int64, int64) {
	t.Helper()
	cur, target, err := m.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cur, target
}

func TestUpDownUpRedo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := postgrestest.NewEmpty(t)
	m := mustNew(t, e.OwnerURL)
	db := mustOpen(t, e.OwnerURL)

	latest, err := migrate.Latest()
	if err != nil || latest < 1 {
		t.Fatalf("Latest = %d, %v", latest, err)
	}

	var out bytes.Buffer
	if err := m.Up(ctx, &out); err != nil {
		t.Fatalf("up from empty: %v\n%s", err, out.String())
	}
	if cur, target := versions(t, m); cur != latest || target != latest {
		t.Fatalf("after up: at %d of %d, want %d", cur, target, latest)
	}
	if !strings.Contains(out.String(), "OK   up") {
		t.Errorf("up output: %q", out.String())
	}
	first := schema(t, db)
	for _, want := range []string{"col outbox.id uuid", "col sent_emails.task_id text"} {
		if !strings.Contains(first, want) {
			t.Errorf("schema lacks %q:\n%s", want, first)
		}
	}

	out.Reset()
	if err := m.Up(ctx, &out); err != nil || !strings.Contains(out.String(), "no pending migrations") {
		t.Fatalf("second up: %v %q", err, out.String())
	}

	out.Reset()
	if err := m.Status(ctx, &out); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(out.String(), "\n"); lines != int(countSources(t)) || strings.Contains(out.String(), "pending") {
		t.Errorf("status after up (%d lines):\n%s", lines, out.String())
	}

	out.Reset()
	if err := m.DownAll(ctx, &out); err != nil {
		t.Fatalf("down all: %v\n%s", err, out.String())
	}
	if cur, _ := versions(t, m); cur != 0 {
		t.Fatalf("after down all: at %d", cur)
	}
	if left := leftovers(t, db); len(left) != 0 {
		t.Fatalf("down all left %v behind", left)
	}
	out.Reset()
	if err := m.Status(ctx, &out); err != nil || strings.Contains(out.String(), "applied") {
		t.Errorf("status after down all: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := m.Down(ctx, &out); err != nil || !strings.Contains(out.String(), "nothing to roll back") {
		t.Errorf("down at 0: %v %q", err, out.String())
	}
	if err := m.Redo(ctx, &out); err == nil {
		t.Error("redo at 0: want an error")
	}

	if err := m.Up(ctx, &out); err != nil {
		t.Fatalf("up again: %v", err)
	}
	if again := schema(t, db); again != first {
		t.Fatalf("schema after down and up differs:\nfirst:\n%s\nagain:\n%s", first, again)
	}

	out.Reset()
	if err := m.Redo(ctx, &out); err != nil {
		t.Fatalf("redo: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "OK   down") || !strings.Contains(out.String(), "OK   up") {
		t.Errorf("redo output: %q", out.String())
	}
	if cur, _ := versions(t, m); cur != latest {
		t.Fatalf("after redo: at %d, want %d", cur, latest)
	}
	if again := schema(t, db); again != first {
		t.Fatalf("schema after redo differs:\n%s", again)
	}
}

// Each migration steps down on its own, so `keelctl migrate down` works at
// every version, not only all at once.
func TestEveryMigrationStepsDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := postgrestest.NewEmpty(t)
	m := mustNew(t, e.OwnerURL)
	if err := m.Up(ctx, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	n := countSources(t)
	for i := int64(0); i < n; i++ {
		var out bytes.Buffer
		if err := m.Down(ctx, &out); err != nil {
			t.Fatalf("down step %d: %v\n%s", i+1, err, out.String())
		}
	}
	if cur, _ := versions(t, m); cur != 0 {
		t.Fatalf("after %d downs: at %d", n, cur)
	}
}

func countSources(t *testing.T) int64 {
	t.Helper()
	e := postgrestest.NewEmpty(t)
	m := mustNew(t, e.OwnerURL)
	var out bytes.Buffer
	if err := m.Status(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	return int64(strings.Count(out.String(), "\n"))
}

type roleAttrs struct {
	super, bypass, createDB, createRole, canLogin bool
}

func attrs(t *testing.T, db *sql.DB, role string) roleAttrs {
	t.Helper()
	var a roleAttrs
	err := db.QueryRow(`SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = $1`, role).
		Scan(&a.super, &a.bypass, &a.createDB, &a.createRole, &a.canLogin)
	if err != nil {
		t.Fatalf("role %s: %v", role, err)
	}
	return a
}

// privileges lists, per public table, which privileges role holds.
func privileges(t *testing.T, db *sql.DB, role string) map[string]string {
	t.Helper()
	rows, err := db.Query(`
	SELECT c.relname, string_agg(p, ',' ORDER BY p)
	  FROM pg_class c
	 CROSS JOIN unnest(ARRAY['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER']) p
	 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND has_table_privilege($1, c.oid, p)
	 GROUP BY c.relname`, role)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var rel, p string
		_ = rows.Scan(&rel, &p)
		out[rel] = p
	}
	return out
}

func tables(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		out = append(out, s)
	}
	return out
}

func TestEnsureAppRole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := postgrestest.NewEmpty(t)
	m := mustNew(t, e.OwnerURL)
	owner := mustOpen(t, e.OwnerURL)
	if err := m.Up(ctx, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for run := 1; run <= 2; run++ {
		if err := m.EnsureAppRole(ctx, e.AppURL); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if a := attrs(t, owner, e.AppRole); a != (roleAttrs{canLogin: true}) {
			t.Errorf("run %d: role attributes %+v, want only LOGIN", run, a)
		}
		privs := privileges(t, owner, e.AppRole)
		for _, tbl := range tables(t, owner) {
			want := "DELETE,INSERT,SELECT,UPDATE"
			if tbl == "goose_db_version" {
				want = "SELECT"
			}
			if privs[tbl] != want {
				t.Errorf("run %d: %s privileges on %s = %q, want %q", run, e.AppRole, tbl, privs[tbl], want)
			}
		}
		var owns int
		if err := owner.QueryRow(`SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = $1)`, e.AppRole).Scan(&owns); err != nil || owns != 0 {
			t.Errorf("run %d: role owns %d relations (%v)", run, owns, err)
		}
		var createInPublic bool
		_ = owner.QueryRow(`SELECT has_schema_privilege($1, 'public', 'CREATE')`, e.AppRole).Scan(&createInPublic)
		if createInPublic {
			t.Errorf("run %d: role may create objects in public", run)
		}
	}

	// The role works with the URL's password, and the data grants are real.
	app := mustOpen(t, e.AppURL)
	var who string
	if err := app.QueryRow(`SELECT current_user`).Scan(&who); err != nil || who != e.AppRole {
		t.Fatalf("connect as app role: %q, %v", who, err)
	}
	if _, err := app.Exec(`INSERT INTO outbox (id, task_type, payload) VALUES (gen_random_uuid(), 't', '\x00')`); err != nil {
		t.Errorf("app role insert: %v", err)
	}
	if _, err := app.Exec(`DELETE FROM outbox`); err != nil {
		t.Errorf("app role delete: %v", err)
	}
	for _, ddl := range []string{`CREATE TABLE mine (x int)`, `DROP TABLE outbox`, `TRUNCATE outbox`, `DELETE FROM goose_db_version`} {
		if _, err := app.Exec(ddl); err == nil {
			t.Errorf("app role could run %q", ddl)
		}
	}

	// A changed password in DATABASE_URL is applied on the next run.
	u, _ := url.Parse(e.AppURL)
	u.User = url.UserPassword(e.AppRole, "rotated-"+e.AppPassword)
	if err := m.EnsureAppRole(ctx, u.String()); err != nil {
		t.Fatalf("rotate password: %v", err)
	}
	var hash string
	if err := owner.QueryRow(`SELECT rolpassword FROM pg_authid WHERE rolname = $1`, e.AppRole).Scan(&hash); err != nil || hash == "" {
		t.Fatalf("password not set: %q %v", hash, err)
	}
}

// Grants made by one `migrate up` cover tables a later migration adds only
// when up runs EnsureAppRole again; redo loses nothing either.
func TestEnsureAppRoleAfterDownAndUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, m, owner := mustProvisioned(t)
	if err := m.DownAll(ctx, &bytes.Buffer{}); err != nil {
		t.Fatalf("down all with the app role granted: %v", err)
	}
	if err := m.Up(ctx, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if err := m.EnsureAppRole(ctx, e.AppURL); err != nil {
		t.Fatal(err)
	}
	if p := privileges(t, owner, e.AppRole)["outbox"]; p != "DELETE,INSERT,SELECT,UPDATE" {
		t.Errorf("outbox privileges after down/up = %q", p)
	}
}

// A pre-existing role with powers the app does not need is restricted,
// not refused: operators often create the role by hand first.
func TestEnsureAppRoleRestrictsExistingRole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := postgrestest.NewEmpty(t)
	m := mustNew(t, e.OwnerURL)
	owner := mustOpen(t, e.OwnerURL)
	if _, err := owner.Exec("CREATE ROLE " + postgres.QuoteIdentifier(e.AppRole) + " NOLOGIN CREATEDB CREATEROLE"); err != nil {
		t.Fatal(err)
	}
	if err := m.Up(ctx, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if err := m.EnsureAppRole(ctx, e.AppURL); err != nil {
		t.Fatal(err)
	}
	if a := attrs(t, owner, e.AppRole); a != (roleAttrs{canLogin: true}) {
		t.Errorf("role attributes %+v, want only LOGIN", a)
	}
}

func TestEnsureAppRoleRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := postgrestest.NewEmpty(t)
	m := mustNew(t, e.OwnerURL)
	owner := mustOpen(t, e.OwnerURL)
	if err := m.Up(ctx, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var current string
	if err := owner.QueryRow(`SELECT current_user`).Scan(&current); err != nil {
		t.Fatal(err)
	}

	t.Run("the owner itself", func(t *testing.T) {
		err := m.EnsureAppRole(ctx, postgrestest.URL(e.Name, current, "x"))
		if err == nil || !strings.Contains(err.Error(), "separate, non-owner role") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("no role in the URL", func(t *testing.T) {
		if err := m.EnsureAppRole(ctx, "postgres://127.0.0.1/"+e.Name); err == nil {
			t.Fatal("want an error")
		}
	})

	exec := func(t *testing.T, q string) {
		t.Helper()
		if _, err := owner.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	// Each case makes the role unfit in one way; EnsureAppRole must refuse
	// rather than hand the binaries a role that RLS does not bind. A member
	// of a role may SET ROLE to it, so membership counts as being it.
	// Formats get the role (%[1]s) and two helper roles (%[2]s, %[3]s).
	cases := []struct {
		name, setup, want string
	}{
		{"superuser", "CREATE ROLE %[1]s LOGIN SUPERUSER", "superuser or has BYPASSRLS"},
		{"bypassrls", "CREATE ROLE %[1]s LOGIN BYPASSRLS", "superuser or has BYPASSRLS"},
		{"owns a table", "CREATE ROLE %[1]s LOGIN; ALTER TABLE sent_emails OWNER TO %[1]s", "owns 1 tables, views or sequences"},
		{"member of the owner", "CREATE ROLE %[1]s LOGIN IN ROLE " + postgres.QuoteIdentifier(current), "is a member of " + current + " (the migration owner"},
		{"member of a BYPASSRLS role", "CREATE ROLE %[2]s NOLOGIN BYPASSRLS; CREATE ROLE %[1]s LOGIN NOINHERIT IN ROLE %[2]s", "(BYPASSRLS)"},
		{"member of a table owner, through another role", "CREATE ROLE %[2]s NOLOGIN; ALTER TABLE sent_emails OWNER TO %[2]s; " +
			"CREATE ROLE %[3]s NOLOGIN IN ROLE %[2]s; CREATE ROLE %[1]s LOGIN IN ROLE %[3]s", "(owns 1 tables, views or sequences)"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			role := fmt.Sprintf("%s_r%d", e.AppRole, i)
			names := []string{role, role + "_h1", role + "_h2"}
			var q []any
			for _, n := range names {
				q = append(q, postgres.QuoteIdentifier(n))
			}
			exec(t, fmt.Sprintf(tc.setup, q...))
			t.Cleanup(func() {
				_, _ = owner.Exec("ALTER TABLE sent_emails OWNER TO " + postgres.QuoteIdentifier(current))
				for _, n := range names {
					_, _ = owner.Exec("DROP OWNED BY " + postgres.QuoteIdentifier(n))
					_, _ = owner.Exec("DROP ROLE IF EXISTS " + postgres.QuoteIdentifier(n))
				}
			})
			err := m.EnsureAppRole(ctx, postgrestest.URL(e.Name, role, "pw"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// SECURITY DEFINER functions run as the owner, past Row Level Security.
// PostgreSQL lets every role execute a new function, and every role may
// connect to a database by default: without the revoke, any login role on
// the server could read memberships or API key hashes through them.
func TestDefinerFunctionsOnlyForTheAppRole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, m, owner := mustProvisioned(t)
	intruder := e.AppRole + "_x"
	if _, err := owner.Exec("CREATE ROLE " + postgres.QuoteIdentifier(intruder) + " LOGIN PASSWORD 'pw'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = owner.Exec("DROP ROLE IF EXISTS " + postgres.QuoteIdentifier(intruder)) })

	calls := map[string]string{
		"identity_user_memberships(uuid)":     `SELECT count(*) FROM identity_user_memberships(gen_random_uuid())`,
		"identity_api_key_by_prefix(text)":    `SELECT count(*) FROM identity_api_key_by_prefix('000000000000')`,
		"identity_invitation_by_token(bytea)": `SELECT count(*) FROM identity_invitation_by_token('\x00')`,
		"billing_plan_of(uuid)":               `SELECT count(*) FROM billing_plan_of(gen_random_uuid())`,
		"billing_orgs_with_status(text[])":    `SELECT count(*) FROM billing_orgs_with_status('{free}')`,
		"billing_org_of_customer(text)":       `SELECT count(*) FROM billing_org_of_customer('cus_x')`,
		"billing_customers_all()":             `SELECT count(*) FROM billing_customers_all()`,
	}
	if len(calls) != len(migrate.AppFunctions) {
		t.Fatalf("AppFunctions %v: add a call here", migrate.AppFunctions)
	}
	app, other := mustOpen(t, e.AppURL), mustOpen(t, postgrestest.URL(e.Name, intruder, "pw"))
	for _, fn := range migrate.AppFunctions {
		var n int
		if err := app.QueryRow(calls[fn]).Scan(&n); err != nil {
			t.Errorf("app role cannot call %s: %v", fn, err)
		}
		if err := other.QueryRow(calls[fn]).Scan(&n); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("another role called %s: %v", fn, err)
		}
	}
	// No SECURITY DEFINER function in public, lookups or trigger helpers,
	// is executable by PUBLIC or by a role other than the app role.
	rows, err := owner.Query(`SELECT p.oid::regprocedure::text, has_function_privilege($1, p.oid, 'EXECUTE'), has_function_privilege($2, p.oid, 'EXECUTE')
		FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef`, e.AppRole, intruder)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var fn string
		var byApp, byOther bool
		if err := rows.Scan(&fn, &byApp, &byOther); err != nil {
			t.Fatal(err)
		}
		n++
		want := false
		for _, a := range migrate.AppFunctions {
			want = want || strings.HasPrefix(a, strings.SplitN(fn, "(", 2)[0]+"(")
		}
		if byApp != want || byOther {
			t.Errorf("%s: app role may execute %v (want %v), another role %v", fn, byApp, want, byOther)
		}
	}
	if n < 6 {
		t.Errorf("found %d SECURITY DEFINER functions, want at least 6", n)
	}
	if err := migrate.CheckAppRole(ctx, app, e.AppRole); err != nil {
		t.Errorf("CheckAppRole after migrate up: %v", err)
	}

	// What keelctl doctor reports: a function re-opened to everyone, then
	// the app role made a member of the owner.
	if _, err := owner.Exec(`GRANT EXECUTE ON FUNCTION identity_api_key_by_prefix(text) TO PUBLIC`); err != nil {
		t.Fatal(err)
	}
	if err := migrate.CheckAppRole(ctx, app, e.AppRole); err == nil || !strings.Contains(err.Error(), "identity_api_key_by_prefix(text)") {
		t.Errorf("CheckAppRole with a public definer function: %v", err)
	}
	if err := m.EnsureAppRole(ctx, e.AppURL); err != nil {
		t.Fatal(err)
	}
	if err := migrate.CheckAppRole(ctx, app, e.AppRole); err != nil {
		t.Errorf("CheckAppRole after migrate up again: %v", err)
	}
	var current string
	_ = owner.QueryRow(`SELECT current_user`).Scan(&current)
	if _, err := owner.Exec("GRANT " + postgres.QuoteIdentifier(current) + " TO " + postgres.QuoteIdentifier(e.AppRole)); err != nil {
		t.Fatal(err)
	}
	if err := migrate.CheckAppRole(ctx, app, e.AppRole); err == nil || !strings.Contains(err.Error(), "is a member of "+current) {
		t.Errorf("CheckAppRole as a member of the owner: %v", err)
	}
}

// Two `keelctl migrate up` at once (two deploys racing) both succeed.
func TestConcurrentUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := postgrestest.NewEmpty(t)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			m, err := migrate.New(e.OwnerURL)
			if err != nil {
				errs <- err
				return
			}
			defer m.Close()
			if err := m.Up(ctx, &bytes.Buffer{}); err != nil {
				errs <- err
				return
			}
			errs <- m.EnsureAppRole(ctx, e.AppURL)
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// Every tenant-owned table (one with org_id) is under Row Level Security
// that the owner cannot skip either, with a policy on app.org_id. A later
// migration that forgets one fails here, not in production.
func TestTenantTablesAreUnderRLS(t *testing.T) {
	t.Parallel()
	e := postgrestest.NewEmpty(t)
	m := mustNew(t, e.OwnerURL)
	if err := m.Up(context.Background(), &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	db := mustOpen(t, e.OwnerURL)
	rows, err := db.Query(`
	SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
	       EXISTS (SELECT 1 FROM pg_policies p WHERE p.schemaname = 'public' AND p.tablename = c.relname
	                 AND (p.qual LIKE '%app.org_id%' OR p.with_check LIKE '%app.org_id%'))
	  FROM pg_class c
	  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped
	 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
	 ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var name string
		var enabled, forced, policy bool
		if err := rows.Scan(&name, &enabled, &forced, &policy); err != nil {
			t.Fatal(err)
		}
		n++
		if !enabled || !forced || !policy {
			t.Errorf("tenant table %s: RLS enabled=%v forced=%v, policy on app.org_id=%v; want all true", name, enabled, forced, policy)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d tenant tables checked", n)
}

// mustProvisioned is an empty database migrated up, with its application
// role provisioned, and the owner's connection to it.
func mustProvisioned(t *testing.T) (*postgrestest.Empty, *migrate.Migrator, *sql.DB) {
	t.Helper()
	ctx := context.Background()
	e := postgrestest.NewEmpty(t)
	m := mustNew(t, e.OwnerURL)
	owner := mustOpen(t, e.OwnerURL)
	if err := m.Up(ctx, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if err := m.EnsureAppRole(ctx, e.AppURL); err != nil {
		t.Fatal(err)
	}
	return e, m, owner
}

// Stepping down past usage_deltas folds the pending deltas into the
// counters, so going back loses no usage.
func TestUsageDeltasDownKeepsUsage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := postgrestest.NewEmpty(t)
	m := mustNew(t, e.OwnerURL)
	db := mustOpen(t, e.OwnerURL)
	if err := m.Up(ctx, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	const org = "01a221e8-ae6d-7e69-9f4a-cf953fd7c357"
	// One message, so no parameters: the organization's id is written in.
	seed := strings.ReplaceAll(`INSERT INTO organizations (id, name) VALUES ('ORG', 'A');
		INSERT INTO usage_counters (org_id, metric, value) VALUES ('ORG', 'resources', 10);
		INSERT INTO usage_deltas (org_id, metric, delta) VALUES ('ORG', 'resources', 5), ('ORG', 'resources', -3), ('ORG', 'storage_bytes', 7)`, "ORG", org)
	if _, err := db.Exec(seed); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		var exists bool
		if err := db.QueryRow(`SELECT to_regclass('usage_deltas') IS NOT NULL`).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if !exists {
			break
		}
		if i == 100 {
			t.Fatal("usage_deltas still there after 100 steps down")
		}
		if err := m.Down(ctx, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]int64{}
	rows, err := db.Query(`SELECT metric, value FROM usage_counters WHERE org_id = $1`, org)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var m string
		var v int64
		if err := rows.Scan(&m, &v); err != nil {
			t.Fatal(err)
		}
		got[m] = v
	}
	if got["resources"] != 12 || got["storage_bytes"] != 7 || len(got) != 2 {
		t.Fatalf("counters after stepping down: %v, want resources 12 and storage_bytes 7", got)
	}
}
