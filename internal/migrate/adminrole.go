package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"

	"github.com/keelhq/keel/internal/platform/postgres"
)

// AdminRoleUpdates are the only columns the platform-admin role may change:
// disabling a user, suspending an organization, revoking a user's sessions
// and API keys, and the admin flag, which only keelctl admin grant|revoke
// sets (the API has no route for it). Everything else it may only read, and
// audit_log is the one table it may insert into.
var AdminRoleUpdates = map[string][]string{
	"users":          {"disabled_at", "disabled_reason", "is_platform_admin", "updated_at"},
	"organizations":  {"suspended_at", "suspended_reason", "updated_at"},
	"refresh_tokens": {"revoked_at"},
	"api_keys":       {"revoked_at"},
}

// adminHiddenColumns is the predicate (on information_schema.columns) of
// the columns the admin role may not read even though it bypasses Row Level
// Security: password hashes, the TOTP secret and every stored token hash.
// Support never needs them, and a leaked admin connection must not carry
// what would let someone log in as a customer.
const adminHiddenColumns = `(column_name LIKE '%\_hash' OR column_name IN ('totp_secret'))`

// EnsureAdminRole makes sure the role named in adminURL (ADMIN_DATABASE_URL)
// exists as the platform admin's cross-tenant role: a login role with
// BYPASSRLS, so /api/v1/admin reads every organization without turning Row
// Level Security off for anyone else, but no superuser, owning nothing,
// reading no secret column and writing only AdminRoleUpdates and audit_log.
// appRole (the role DATABASE_URL names) must be another role and not a
// member of it, so ordinary handlers can never SET ROLE to it. Creating a
// BYPASSRLS role needs a superuser owner (PostgreSQL 15); where the owner is
// not one, a DBA creates the role once and this grants.
func (m *Migrator) EnsureAdminRole(ctx context.Context, adminURL, appRole string) error {
	u, err := url.Parse(adminURL)
	if err != nil || u.User == nil || u.User.Username() == "" {
		return errors.New("ADMIN_DATABASE_URL must name the platform admin role (postgres://ROLE[:PASSWORD]@host/db)")
	}
	role := u.User.Username()
	password, hasPassword := u.User.Password()
	if role == appRole {
		return fmt.Errorf("ADMIN_DATABASE_URL and DATABASE_URL both use role %q; the admin role bypasses Row Level Security and must be its own role", role)
	}
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("ensure admin role: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('keel.ensure_app_role'))`); err != nil {
		return fmt.Errorf("ensure admin role lock: %w", err)
	}
	var owner string
	if err := tx.QueryRowContext(ctx, `SELECT current_user`).Scan(&owner); err != nil {
		return fmt.Errorf("ensure admin role: %w", err)
	}
	if owner == role {
		return fmt.Errorf("ADMIN_DATABASE_URL and DATABASE_OWNER_URL both use role %q; the admin role must be its own role", role)
	}
	r := postgres.QuoteIdentifier(role)
	var super bool
	err = tx.QueryRowContext(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = $1`, role).Scan(&super)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		q := "CREATE ROLE " + r + " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS NOINHERIT"
		if hasPassword {
			q += " PASSWORD " + postgres.QuoteLiteral(password)
		}
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create admin role %s (creating a BYPASSRLS role needs a superuser DATABASE_OWNER_URL; otherwise have a DBA run CREATE ROLE %s LOGIN BYPASSRLS): %w", role, r, err)
		}
	case err != nil:
		return fmt.Errorf("look up role %s: %w", role, err)
	case super:
		return fmt.Errorf("role %q from ADMIN_DATABASE_URL is a superuser; the admin role must be a plain role with BYPASSRLS", role)
	default:
		q := "ALTER ROLE " + r + " LOGIN NOCREATEDB NOCREATEROLE BYPASSRLS"
		if hasPassword {
			q += " PASSWORD " + postgres.QuoteLiteral(password)
		}
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("restrict admin role %s: %w", role, err)
		}
	}
	if appRole != "" {
		var member bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)
			AND pg_has_role($1, $2, 'MEMBER')`, appRole, role).Scan(&member); err != nil {
			return fmt.Errorf("check admin role membership: %w", err)
		}
		if member {
			return fmt.Errorf("the application role %q is a member of the admin role %q and could SET ROLE past Row Level Security: REVOKE %s FROM %s",
				appRole, role, r, postgres.QuoteIdentifier(appRole))
		}
	}
	var owned int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
		WHERE r.rolname = $1 AND c.relnamespace = 'public'::regnamespace AND c.relkind NOT IN ('i', 'I', 't')`, role).Scan(&owned); err != nil {
		return fmt.Errorf("check admin role ownership: %w", err)
	}
	if owned > 0 {
		return fmt.Errorf("role %q owns %d tables, views or sequences; the admin role must own nothing", role, owned)
	}
	var dbname string
	if err := tx.QueryRowContext(ctx, `SELECT current_database()`).Scan(&dbname); err != nil {
		return fmt.Errorf("ensure admin role: %w", err)
	}
	stmts := []string{
		"GRANT CONNECT ON DATABASE " + postgres.QuoteIdentifier(dbname) + " TO " + r,
		"GRANT USAGE ON SCHEMA public TO " + r,
		// Start from nothing each time, so a privilege granted by hand or
		// by an older Keel does not linger.
		"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM " + r,
		"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM " + r,
		"GRANT INSERT ON audit_log TO " + r,
	}
	// Column privileges: every column but the hidden ones, table by table.
	rows, err := tx.QueryContext(ctx, `SELECT table_name, string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position)
		FROM information_schema.columns WHERE table_schema = 'public' AND NOT `+adminHiddenColumns+`
		AND table_name IN (SELECT tablename FROM pg_tables WHERE schemaname = 'public')
		GROUP BY table_name ORDER BY table_name`)
	if err != nil {
		return fmt.Errorf("list columns for admin role: %w", err)
	}
	for rows.Next() {
		var table, cols string
		if err := rows.Scan(&table, &cols); err != nil {
			rows.Close()
			return err
		}
		stmts = append(stmts, "GRANT SELECT ("+cols+") ON "+postgres.QuoteIdentifier(table)+" TO "+r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for table, cols := range AdminRoleUpdates {
		list := ""
		for i, c := range cols {
			if i > 0 {
				list += ", "
			}
			list += postgres.QuoteIdentifier(c)
		}
		stmts = append(stmts, "GRANT UPDATE ("+list+") ON "+postgres.QuoteIdentifier(table)+" TO "+r)
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("grant to admin role %s: %q: %w", role, s, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("ensure admin role: %w", err)
	}
	return nil
}

// EnsureRoles runs EnsureAppRole and, when adminURL is set, EnsureAdminRole:
// what keelctl migrate does after every change of the schema.
func (m *Migrator) EnsureRoles(ctx context.Context, appURL, adminURL string) error {
	if err := m.EnsureAppRole(ctx, appURL); err != nil {
		return err
	}
	if adminURL == "" {
		return nil
	}
	u, err := url.Parse(appURL)
	if err != nil {
		return err
	}
	return m.EnsureAdminRole(ctx, adminURL, u.User.Username())
}
