// Package postgrestest gives each test its own PostgreSQL database, cloned
// from a template migrated once per test binary, and an application role of
// its own, so tests run in parallel and leave the server as they found it.
//
// A package that uses it calls Main from TestMain so the template and the
// role are dropped after the last test. The processes a test binary starts
// for `go test -fuzz` (its workers) inherit the template instead of making
// their own: the coordinator drops it, and whatever a worker killed at the
// end of fuzzing left, when they all have stopped.
package postgrestest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/migrate"
	"github.com/keelhq/keel/internal/platform/postgres"
)

// EnvAdminURL names the variable holding a superuser URL of the test server.
const EnvAdminURL = "KEEL_TEST_DATABASE_URL"

// EnvRun names the variable holding a run's tag: up to 8 hex digits that
// start every random part of the database and role names the helpers make,
// so scripts/test.sh can find what its own run left behind on a server that
// other runs use at the same time. Other values are ignored.
const EnvRun = "KEEL_TEST_RUN"

// envTemplate hands the template's suffix from the process that made it to
// the processes it starts (go test -fuzz's workers, which run TestMain too
// and are stopped with SIGINT, then SIGKILL, a second after fuzzing ends:
// too soon for a cleanup of their own).
const envTemplate = "KEEL_TEST_TEMPLATE"

// DefaultAdminURL works with trust auth and with the password the project's
// setup script gives the postgres role on a fresh install.
const DefaultAdminURL = "postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable"

var (
	once     sync.Once
	setupErr error
	suffix   string
	template string
	appRole  string
	// platformRole is the platform admin's role (BYPASSRLS), as keelctl
	// migrate makes it from ADMIN_DATABASE_URL.
	platformRole string
	owned        bool // this process created template and the roles, and drops them
)

const appPassword = "keel-test"

// AdminURL returns the superuser URL the tests use.
func AdminURL() string {
	if v := os.Getenv(EnvAdminURL); v != "" {
		return v
	}
	return DefaultAdminURL
}

// withDB returns base with its database (and user, when user is not empty) replaced.
func withDB(base, db, user, password string) string {
	u, err := url.Parse(base)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + db
	if user != "" {
		u.User = url.UserPassword(user, password)
	}
	q := u.Query()
	if q.Get("sslmode") == "" {
		q.Set("sslmode", "disable")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ID returns a random identifier for the name of a database or role a test
// creates: hex digits, starting with the run's tag (see EnvRun).
func ID() string { return runTag() + randHex(5) }

func runTag() string {
	tag := os.Getenv(EnvRun)
	if len(tag) > 8 || !isHex(tag) {
		return ""
	}
	return tag
}

func isHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func admin() (*sql.DB, error) {
	db, err := sql.Open(postgres.DriverName, AdminURL())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	return db, nil
}

func setName(s string) {
	suffix = s
	template = "keel_tpl_" + suffix
	appRole = "keel_app_" + suffix
	platformRole = "keel_padmin_" + suffix
}

func setup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := admin()
	if err != nil {
		return err
	}
	defer db.Close()
	if s := os.Getenv(envTemplate); s != "" && isHex(s) {
		setName(s)
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_database WHERE datname = $1`, template).Scan(&n); err == nil && n == 1 {
			return nil
		}
	}
	setName(ID())
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+postgres.QuoteIdentifier(template)); err != nil {
		return fmt.Errorf("create template database (is PostgreSQL running at %s? run `make services`): %w", config(AdminURL()), err)
	}
	owned = true
	m, err := migrate.New(withDB(AdminURL(), template, "", ""))
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.Up(ctx, io.Discard); err != nil {
		return err
	}
	if err := m.EnsureRoles(ctx, withDB(AdminURL(), template, appRole, appPassword),
		withDB(AdminURL(), template, platformRole, appPassword)); err != nil {
		return err
	}
	return os.Setenv(envTemplate, suffix)
}

func config(u string) string { return postgresRedact(u) }

func postgresRedact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "?"
	}
	p.User = nil
	return p.String()
}

// Main runs the package's tests and then drops the template and role, with
// every test database cloned from it, when this process created them.
func Main(m *testing.M) int {
	code := m.Run()
	if owned {
		if err := teardown(); err != nil {
			fmt.Fprintln(os.Stderr, "postgrestest: cleanup:", err)
		}
	}
	return code
}

func teardown() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := admin()
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+postgres.QuoteIdentifier(template)+" WITH (FORCE)"); err != nil {
		return err
	}
	// Databases a killed test or fuzz worker left behind still hold grants
	// to the role.
	rows, err := db.QueryContext(ctx, `SELECT datname FROM pg_database WHERE datname LIKE $1`, "keel_t_"+suffix+"_%")
	if err == nil {
		var names []string
		for rows.Next() {
			var n string
			_ = rows.Scan(&n)
			names = append(names, n)
		}
		rows.Close()
		for _, n := range names {
			_, _ = db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+postgres.QuoteIdentifier(n)+" WITH (FORCE)")
		}
	}
	_, err = db.ExecContext(ctx, "DROP ROLE IF EXISTS "+postgres.QuoteIdentifier(appRole))
	if _, err2 := db.ExecContext(ctx, "DROP ROLE IF EXISTS "+postgres.QuoteIdentifier(platformRole)); err == nil {
		err = err2
	}
	return err
}

// DB is one test's database.
type DB struct {
	Name     string
	OwnerURL string // superuser; for setup and assertions that must see every row
	AppURL   string // the non-owner application role, under Row Level Security
	Owner    *sqlx.DB
	App      *sqlx.DB
	// PlatformURL and Platform connect as the platform admin's role
	// (ADMIN_DATABASE_URL): BYPASSRLS, reading every organization, for the
	// admin capability only.
	PlatformURL string
	Platform    *sqlx.DB
}

// New returns a fresh, migrated database dropped when t ends.
func New(t testing.TB) *DB {
	t.Helper()
	once.Do(func() { setupErr = setup() })
	if setupErr != nil {
		t.Fatalf("postgrestest: %v", setupErr)
	}
	name := "keel_t_" + suffix + "_" + randHex(4)
	db, err := admin()
	if err != nil {
		t.Fatalf("postgrestest: %v", err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE " + postgres.QuoteIdentifier(name) + " TEMPLATE " + postgres.QuoteIdentifier(template)); err != nil {
		t.Fatalf("postgrestest: clone template: %v", err)
	}
	d := &DB{
		Name:     name,
		OwnerURL: withDB(AdminURL(), name, "", ""),
		AppURL:   withDB(AdminURL(), name, appRole, appPassword),
		// Opening connects nothing until the first query.
		PlatformURL: withDB(AdminURL(), name, platformRole, appPassword),
	}
	d.Owner = sqlx.MustOpen(postgres.DriverName, d.OwnerURL)
	d.Platform, err = postgres.Open(d.PlatformURL, postgres.Options{MaxOpenConns: 5, MaxIdleConns: 2})
	if err != nil {
		t.Fatalf("postgrestest: %v", err)
	}
	d.App, err = postgres.Open(d.AppURL, postgres.Options{MaxOpenConns: 20, MaxIdleConns: 5})
	if err != nil {
		t.Fatalf("postgrestest: %v", err)
	}
	t.Cleanup(func() {
		d.App.Close()
		d.Platform.Close()
		d.Owner.Close()
		db, err := admin()
		if err != nil {
			t.Errorf("postgrestest: %v", err)
			return
		}
		defer db.Close()
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + postgres.QuoteIdentifier(name) + " WITH (FORCE)"); err != nil {
			t.Errorf("postgrestest: drop %s: %v", name, err)
		}
	})
	return d
}

// AppRole is the non-owner role the app URLs connect as.
func AppRole() string { return appRole }

// PlatformRole is the platform admin's role the Platform URLs connect as.
func PlatformRole() string { return platformRole }

// Empty is a database with no schema and the name of an application role
// that does not exist yet: for tests of migrations and of a first start.
type Empty struct {
	Name        string
	OwnerURL    string // superuser, on this database
	AppRole     string
	AppPassword string
	AppURL      string // AppRole with AppPassword, on this database
	// PlatformURL is what to give ADMIN_DATABASE_URL for `keelctl migrate up`
	// to create the platform admin's role (PlatformRole, AppPassword); the
	// role is dropped at the end whether or not it was created.
	PlatformRole string
	PlatformURL  string
}

// NewEmpty creates an empty database with a random name. When t ends it drops
// the database and then the role, whoever created the role.
func NewEmpty(t testing.TB) *Empty {
	t.Helper()
	id := ID()
	e := &Empty{Name: "keel_e_" + id, AppRole: "keel_e_app_" + id, AppPassword: randHex(12), PlatformRole: "keel_e_adm_" + id}
	e.OwnerURL = withDB(AdminURL(), e.Name, "", "")
	e.AppURL = withDB(AdminURL(), e.Name, e.AppRole, e.AppPassword)
	e.PlatformURL = withDB(AdminURL(), e.Name, e.PlatformRole, e.AppPassword)
	db, err := admin()
	if err != nil {
		t.Fatalf("postgrestest: %v", err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE " + postgres.QuoteIdentifier(e.Name)); err != nil {
		t.Fatalf("postgrestest: create %s (is PostgreSQL running at %s?): %v", e.Name, config(AdminURL()), err)
	}
	t.Cleanup(func() {
		db, err := admin()
		if err != nil {
			t.Errorf("postgrestest: %v", err)
			return
		}
		defer db.Close()
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + postgres.QuoteIdentifier(e.Name) + " WITH (FORCE)"); err != nil {
			t.Errorf("postgrestest: drop %s: %v", e.Name, err)
		}
		if _, err := db.Exec("DROP ROLE IF EXISTS " + postgres.QuoteIdentifier(e.AppRole)); err != nil {
			t.Errorf("postgrestest: drop role %s: %v", e.AppRole, err)
		}
		if _, err := db.Exec("DROP ROLE IF EXISTS " + postgres.QuoteIdentifier(e.PlatformRole)); err != nil {
			t.Errorf("postgrestest: drop role %s: %v", e.PlatformRole, err)
		}
	})
	return e
}

// URL returns the test server's URL for database db as user (the admin's own
// credentials when user is empty).
func URL(db, user, password string) string { return withDB(AdminURL(), db, user, password) }

// UsageSQL reads an organization's counted usage of a metric ($1 the
// organization, $2 the metric) as the limits engine does: the counter row
// plus its pending deltas, never below zero. Run it as the owner.
const UsageSQL = `SELECT GREATEST(coalesce((SELECT value FROM usage_counters WHERE org_id = $1 AND metric = $2), 0)
	+ coalesce((SELECT sum(delta) FROM usage_deltas WHERE org_id = $1 AND metric = $2), 0), 0)::bigint`
