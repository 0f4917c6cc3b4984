// Package migrate applies Keel's embedded goose migrations as the owner role
// and provisions the application role that the binaries connect as.
package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/migrations"
)

// Migrator runs migrations on one database as its owner.
type Migrator struct {
	db       *sql.DB
	provider *goose.Provider
}

// New opens ownerURL and prepares the embedded migrations. The session lock
// makes two `keelctl migrate up` at once take turns instead of colliding.
func New(ownerURL string) (*Migrator, error) {
	db, err := sql.Open(postgres.DriverName, ownerURL)
	if err != nil {
		return nil, fmt.Errorf("open owner database: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS,
		goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return &Migrator{db: db, provider: p}, nil
}

// Close releases the connection.
func (m *Migrator) Close() error { return m.provider.Close() }

// Up applies every pending migration and reports each to w.
func (m *Migrator) Up(ctx context.Context, w io.Writer) error {
	res, err := m.provider.Up(ctx)
	report(w, res)
	if err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	if len(res) == 0 {
		fmt.Fprintln(w, "no pending migrations")
	}
	return nil
}

// Down rolls back the latest migration.
func (m *Migrator) Down(ctx context.Context, w io.Writer) error {
	r, err := m.provider.Down(ctx)
	if r != nil {
		report(w, []*goose.MigrationResult{r})
	}
	if errors.Is(err, goose.ErrNoNextVersion) {
		fmt.Fprintln(w, "nothing to roll back")
		return nil
	}
	if err != nil {
		return fmt.Errorf("migrate down: %w", err)
	}
	return nil
}

// DownAll rolls back every migration, back to an empty schema.
func (m *Migrator) DownAll(ctx context.Context, w io.Writer) error {
	res, err := m.provider.DownTo(ctx, 0)
	report(w, res)
	if err != nil {
		return fmt.Errorf("migrate down to 0: %w", err)
	}
	return nil
}

// Redo rolls back the latest migration and applies it again.
func (m *Migrator) Redo(ctx context.Context, w io.Writer) error {
	cur, err := m.provider.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("migrate redo: %w", err)
	}
	if cur == 0 {
		return errors.New("migrate redo: no migration is applied")
	}
	if err := m.Down(ctx, w); err != nil {
		return err
	}
	res, err := m.provider.UpTo(ctx, cur)
	report(w, res)
	if err != nil {
		return fmt.Errorf("migrate redo: %w", err)
	}
	return nil
}

// Status prints every migration with its state.
func (m *Migrator) Status(ctx context.Context, w io.Writer) error {
	st, err := m.provider.Status(ctx)
	if err != nil {
		return fmt.Errorf("migrate status: %w", err)
	}
	for _, s := range st {
		at := "-"
		if !s.AppliedAt.IsZero() {
			at = s.AppliedAt.UTC().Format("2006-01-02T15:04:05Z")
		}
		fmt.Fprintf(w, "%-8s %-22s %s\n", s.State, at, s.Source.Path)
	}
	return nil
}

// Pending reports the database's version, the newest embedded one, and
// whether anything is left to apply.
func (m *Migrator) Pending(ctx context.Context) (current, target int64, err error) {
	return m.provider.GetVersions(ctx)
}

func report(w io.Writer, res []*goose.MigrationResult) {
	for _, r := range res {
		if r == nil {
			continue
		}
		if r.Error != nil {
			fmt.Fprintf(w, "FAIL %s %s: %v\n", r.Direction, r.Source.Path, r.Error)
			continue
		}
		fmt.Fprintf(w, "OK   %-4s %s (%s)\n", r.Direction, r.Source.Path, r.Duration.Round(1e6))
	}
}

// EnsureAppRole makes sure the role named in appURL exists as a plain login
// role (no superuser, no BYPASSRLS, owning nothing) with the data privileges
// the binaries need on this database and nothing more. A password in appURL
// is set on the role so the URL works wherever password auth is on.
func (m *Migrator) EnsureAppRole(ctx context.Context, appURL string) error {
	u, err := url.Parse(appURL)
	if err != nil || u.User == nil || u.User.Username() == "" {
		return errors.New("DATABASE_URL must name the application role (postgres://ROLE[:PASSWORD]@host/db)")
	}
	role := u.User.Username()
	password, hasPassword := u.User.Password()

	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("ensure app role: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	// Two deploys running `migrate up` at once would otherwise race to create
	// the role (the loser fails on pg_authid's unique index) and to grant.
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('keel.ensure_app_role'))`); err != nil {
		return fmt.Errorf("ensure app role lock: %w", err)
	}

	var owner string
	if err := tx.QueryRowContext(ctx, `SELECT current_user`).Scan(&owner); err != nil {
		return fmt.Errorf("ensure app role: %w", err)
	}
	if owner == role {
		return fmt.Errorf("DATABASE_URL and DATABASE_OWNER_URL both use role %q; the application must connect as a separate, non-owner role so Row Level Security applies", role)
	}

	var super, bypass bool
	err = tx.QueryRowContext(ctx, `SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1`, role).Scan(&super, &bypass)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		q := "CREATE ROLE " + postgres.QuoteIdentifier(role) + " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT"
		if hasPassword {
			q += " PASSWORD " + postgres.QuoteLiteral(password)
		}
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create role %s: %w", role, err)
		}
	case err != nil:
		return fmt.Errorf("look up role %s: %w", role, err)
	case super || bypass:
		return fmt.Errorf("role %q from DATABASE_URL is a superuser or has BYPASSRLS; Row Level Security would not apply to it: use a plain role", role)
	default:
		// An existing role keeps its name and login but loses any power the
		// app does not need, whoever created it.
		q := "ALTER ROLE " + postgres.QuoteIdentifier(role) + " LOGIN NOCREATEDB NOCREATEROLE"
		if hasPassword {
			q += " PASSWORD " + postgres.QuoteLiteral(password)
		}
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("restrict role %s: %w", role, err)
		}
	}

	var owned int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE r.rolname = $1 AND n.nspname = 'public'
		AND c.relkind NOT IN ('i', 'I', 't')`, role).Scan(&owned); err != nil {
		return fmt.Errorf("check role ownership: %w", err)
	}
	if owned > 0 {
		return fmt.Errorf("role %q owns %d tables, views or sequences; the application role must own nothing, so Row Level Security binds it", role, owned)
	}

	r := postgres.QuoteIdentifier(role)
	var dbname string
	if err := tx.QueryRowContext(ctx, `SELECT current_database()`).Scan(&dbname); err != nil {
		return fmt.Errorf("ensure app role: %w", err)
	}
	stmts := []string{
		"GRANT CONNECT ON DATABASE " + postgres.QuoteIdentifier(dbname) + " TO " + r,
		"GRANT USAGE ON SCHEMA public TO " + r,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO " + r,
		"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO " + r,
		// The migration ledger is the owner's; the app only reads it (doctor, backup checks).
		"REVOKE ALL ON goose_db_version FROM " + r,
		"GRANT SELECT ON goose_db_version TO " + r,
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("grant to %s: %q: %w", role, s, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("ensure app role: %w", err)
	}
	return nil
}

// Latest returns the newest embedded migration version.
func Latest() (int64, error) {
	// The provider wants a handle but lists sources without connecting.
	db, err := sql.Open(postgres.DriverName, "")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return 0, err
	}
	src := p.ListSources()
	if len(src) == 0 {
		return 0, nil
	}
	return src[len(src)-1].Version, nil
}
