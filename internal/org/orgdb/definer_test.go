package orgdb_test

import (
	"context"
	"database/sql"
	"io"
	"net/url"
	"testing"

	"github.com/keelhq/keel/internal/auth/authdb"
	"github.com/keelhq/keel/internal/demo"
	"github.com/keelhq/keel/internal/migrate"
	"github.com/keelhq/keel/internal/org/orgdb"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/platform/postgrestest"
)

// TestDefinerLookupsWithPlainOwner migrates as a schema owner that is not a
// superuser, as production should. FORCE ROW LEVEL SECURITY binds such an
// owner too, so the SECURITY DEFINER lookups only work because of the
// migration's definer_lookup policies; the app role still sees nothing
// without a tenant.
func TestDefinerLookupsWithPlainOwner(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin, err := sql.Open(postgres.DriverName, postgrestest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	sfx := postgrestest.ID()
	dbName, owner, app := "keel_t_definer_"+sfx, "keel_t_owner_"+sfx, "keel_t_app_"+sfx
	// Cleanups run after the test function's defers, so this one owns the
	// admin handle and closes it last.
	t.Cleanup(func() {
		defer admin.Close()
		for _, s := range []string{
			"DROP DATABASE IF EXISTS " + dbName + " WITH (FORCE)",
			"DROP ROLE IF EXISTS " + app,
			"DROP ROLE IF EXISTS " + owner,
		} {
			if _, err := admin.Exec(s); err != nil {
				t.Errorf("cleanup: %s: %v", s, err)
			}
		}
	})
	for _, s := range []string{
		"CREATE ROLE " + owner + " LOGIN CREATEROLE PASSWORD 'owner'",
		"CREATE DATABASE " + dbName + " OWNER " + owner,
	} {
		if _, err := admin.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	urlFor := func(user, pw, db string) string {
		u, _ := url.Parse(postgrestest.AdminURL())
		if user != "" {
			u.User = url.UserPassword(user, pw)
		}
		u.Path = "/" + db
		return u.String()
	}
	superOnDB, err := sql.Open(postgres.DriverName, urlFor("", "", dbName))
	if err == nil {
		// PostgreSQL 15 no longer lets every role create in public.
		_, err = superOnDB.Exec("ALTER SCHEMA public OWNER TO " + postgres.QuoteIdentifier(owner))
		superOnDB.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	m, err := migrate.New(urlFor(owner, "owner", dbName))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Up(ctx, io.Discard); err != nil {
		t.Fatal(err)
	}
	appURL := urlFor(app, "app", dbName)
	if err := m.EnsureAppRole(ctx, appURL); err != nil {
		t.Fatal(err)
	}
	db, err := postgres.Open(appURL, postgres.Options{MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := demo.Seed(ctx, db, io.Discard); err != nil {
		t.Fatal(err)
	}
	u, err := authdb.Store{}.UserByEmail(ctx, db, demo.OwnerEmail)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := orgdb.Store{}.UserMemberships(ctx, db, u.ID)
	if err != nil || len(ms) != 2 || ms[0].OrgName != "Acme Demo" || ms[0].Role != "owner" {
		t.Fatalf("memberships through the definer function: %+v %v", ms, err)
	}
	var visible int
	if err := db.Get(&visible, `SELECT count(*) FROM memberships`); err != nil || visible != 0 {
		t.Fatalf("app role without a tenant sees %d memberships (%v)", visible, err)
	}
	if _, err := (orgdb.Store{}).APIKeyByPrefix(ctx, db, "000000000000"); err == nil {
		t.Fatal("an unknown API key prefix was found")
	}

	// Without the owner's policy the lookup finds nothing: FORCE binds the owner.
	ownerDB, err := sql.Open(postgres.DriverName, urlFor(owner, "owner", dbName))
	if err != nil {
		t.Fatal(err)
	}
	defer ownerDB.Close()
	if _, err := ownerDB.Exec(`DROP POLICY definer_lookup ON memberships`); err != nil {
		t.Fatal(err)
	}
	if ms, err := (orgdb.Store{}).UserMemberships(ctx, db, u.ID); err != nil || len(ms) != 0 {
		t.Fatalf("without definer_lookup: %+v %v", ms, err)
	}
}
