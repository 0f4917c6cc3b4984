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
	"slices"
	"strings"

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
	if err := refuseEscalation(ctx, tx, role, owner); err != nil {
		return err
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
	fns, err := definerFunctions(ctx, tx)
	if err != nil {
		return err
	}
	for _, f := range fns {
		// A SECURITY DEFINER function runs as the owner, past RLS: only
		// the application role may call the ones it needs, and nobody the
		// rest (triggers need no EXECUTE privilege).
		stmts = append(stmts, "REVOKE EXECUTE ON FUNCTION "+f.name+" FROM PUBLIC, "+r)
		if slices.Contains(AppFunctions, f.signature) {
			stmts = append(stmts, "GRANT EXECUTE ON FUNCTION "+f.name+" TO "+r)
		}
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

// AppFunctions are the SECURITY DEFINER functions (by name and argument
// types) that the application role may execute: the lookups made before a
// tenant is known. EnsureAppRole revokes EXECUTE on every other SECURITY
// DEFINER function in public from everyone; a migration that adds a lookup
// the application calls adds it here.
var AppFunctions = []string{
	"identity_user_memberships(uuid)",
	"identity_api_key_by_prefix(text)",
	"identity_invitation_by_token(bytea)",
	// Billing: an organization's plan wherever the limiter asks (the rate
	// limiter asks outside a tenant), and the organizations the billing
	// jobs have work for.
	"billing_plan_of(uuid)",
	"billing_orgs_with_status(text[])",
	"billing_org_of_customer(text)",
	"billing_customers_all()",
}

// Queryer is what the role checks read the catalog through (*sql.DB,
// *sql.Tx, *sqlx.DB).
type Queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

type definerFunction struct {
	name      string // as regprocedure prints it, for statements
	signature string // name(argument types), as in AppFunctions
	public    bool   // every role may execute it
}

// definerFunctions lists the SECURITY DEFINER functions in schema public.
func definerFunctions(ctx context.Context, q Queryer) ([]definerFunction, error) {
	rows, err := q.QueryContext(ctx, `SELECT p.oid::regprocedure::text,
		p.proname || '(' || COALESCE((SELECT string_agg(format_type(a.t, NULL), ',' ORDER BY a.i)
			FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, i)), '') || ')',
		EXISTS (SELECT 1 FROM aclexplode(COALESCE(p.proacl, acldefault('f', p.proowner))) x
			WHERE x.grantee = 0 AND x.privilege_type = 'EXECUTE')
		FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef ORDER BY 2`)
	if err != nil {
		return nil, fmt.Errorf("list security definer functions: %w", err)
	}
	defer rows.Close()
	var out []definerFunction
	for rows.Next() {
		var f definerFunction
		if err := rows.Scan(&f.name, &f.signature, &f.public); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// escalations lists, as "name (why)", the roles that role is a member of,
// directly or through other roles, and that Row Level Security does not
// bind: superusers, roles with BYPASSRLS, owner (the migration owner; empty
// when unknown) and any role owning a table, view or sequence in public.
// Membership alone is enough: NOINHERIT or not, a member may SET ROLE.
func escalations(ctx context.Context, q Queryer, role, owner string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT r.rolname, r.rolsuper, r.rolbypassrls,
		(SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid AND c.relnamespace = 'public'::regnamespace
			AND c.relkind NOT IN ('i', 'I', 't'))
		FROM pg_roles r WHERE r.rolname <> $1 AND pg_has_role($1, r.oid, 'MEMBER') ORDER BY 1`, role)
	if err != nil {
		return nil, fmt.Errorf("check role memberships: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var (
			name          string
			super, bypass bool
			owned         int
		)
		if err := rows.Scan(&name, &super, &bypass, &owned); err != nil {
			return nil, err
		}
		var why []string
		if name == owner {
			why = append(why, "the migration owner")
		}
		if super {
			why = append(why, "superuser")
		}
		if bypass {
			why = append(why, "BYPASSRLS")
		}
		if owned > 0 {
			why = append(why, fmt.Sprintf("owns %d tables, views or sequences", owned))
		}
		if len(why) > 0 {
			out = append(out, fmt.Sprintf("%s (%s)", name, strings.Join(why, ", ")))
		}
	}
	return out, rows.Err()
}

func refuseEscalation(ctx context.Context, q Queryer, role, owner string) error {
	roles, err := escalations(ctx, q, role, owner)
	if err != nil {
		return err
	}
	if len(roles) > 0 {
		return fmt.Errorf("role %q from DATABASE_URL is a member of %s; with SET ROLE it would escape Row Level Security: REVOKE those roles FROM %s",
			role, strings.Join(roles, ", "), postgres.QuoteIdentifier(role))
	}
	return nil
}

// CheckAppRole reports what makes role (the role DATABASE_URL connects as)
// unfit to run under Row Level Security, for keelctl doctor: membership in a
// role RLS does not bind, and SECURITY DEFINER functions that everyone may
// execute (keelctl migrate up fixes those). nil means fit.
func CheckAppRole(ctx context.Context, q Queryer, role string) error {
	if err := refuseEscalation(ctx, q, role, ""); err != nil {
		return err
	}
	fns, err := definerFunctions(ctx, q)
	if err != nil {
		return err
	}
	var open []string
	for _, f := range fns {
		if f.public {
			open = append(open, f.signature)
		}
	}
	if len(open) > 0 {
		return fmt.Errorf("SECURITY DEFINER functions executable by every role: %s; run keelctl migrate up", strings.Join(open, ", "))
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
