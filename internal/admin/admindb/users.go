package admindb

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/admin"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/tenant"
)

// userRow is a users row as the admin sees it: never a hash or the TOTP
// secret, which the admin role cannot read.
type userRow struct {
	ID             uuid.UUID  `db:"id"`
	Email          string     `db:"email"`
	Name           string     `db:"name"`
	CreatedAt      time.Time  `db:"created_at"`
	EmailVerified  bool       `db:"email_verified"`
	TOTP           bool       `db:"totp"`
	PlatformAdmin  bool       `db:"is_platform_admin"`
	DisabledAt     *time.Time `db:"disabled_at"`
	DisabledReason string     `db:"disabled_reason"`
	LastLoginAt    *time.Time `db:"last_login_at"`
	Organizations  int        `db:"organizations"`
}

const userCols = `u.id, u.email, u.name, u.created_at, u.email_verified_at IS NOT NULL AS email_verified,
	u.totp_enabled_at IS NOT NULL AS totp, u.is_platform_admin, u.disabled_at, u.disabled_reason, u.last_login_at,
	(SELECT count(*) FROM memberships m WHERE m.user_id = u.id) AS organizations`

func (r *userRow) summary() admin.UserSummary {
	return admin.UserSummary{ID: r.ID, Email: r.Email, Name: r.Name, CreatedAt: r.CreatedAt, EmailVerified: r.EmailVerified,
		TwoFactorEnabled: r.TOTP, PlatformAdmin: r.PlatformAdmin, DisabledAt: r.DisabledAt, DisabledReason: r.DisabledReason,
		LastLoginAt: r.LastLoginAt, Organizations: r.Organizations}
}

// ListUsers returns one page of users matching f, newest first. The text
// match is strpos on lower-cased values, so % and _ in a query are
// literal characters, not patterns.
func (Store) ListUsers(ctx context.Context, q sqlx.QueryerContext, f admin.UserFilter, after *tenant.Cursor, limit int) ([]admin.UserSummary, error) {
	base := `SELECT ` + userCols + ` FROM users u WHERE ($1 = '' OR strpos(u.email, lower($1)) > 0 OR strpos(lower(u.name), lower($1)) > 0)`
	args := []any{f.Query}
	if f.ID != uuid.Nil {
		base = `SELECT ` + userCols + ` FROM users u WHERE u.id = $1`
		args = []any{f.ID}
	}
	query, args := tenant.KeysetBy(base, args, "u.created_at", "u.id", true, after, limit)
	var rows []userRow
	if err := sqlx.SelectContext(ctx, q, &rows, query, args...); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	out := make([]admin.UserSummary, len(rows))
	for i := range rows {
		out[i] = rows[i].summary()
	}
	return out, nil
}

// GetUser returns one user.
func (Store) GetUser(ctx context.Context, q sqlx.QueryerContext, id uuid.UUID) (*admin.UserSummary, error) {
	const query = `SELECT ` + userCols + ` FROM users u WHERE u.id = $1`
	var r userRow
	if err := sqlx.GetContext(ctx, q, &r, query, id); err != nil {
		return nil, postgres.Translate(err)
	}
	s := r.summary()
	return &s, nil
}

// UserMemberships returns the user's memberships, oldest first.
func (Store) UserMemberships(ctx context.Context, q sqlx.QueryerContext, id uuid.UUID) ([]admin.UserMembership, error) {
	const query = `SELECT m.org_id, o.name, m.role, o.suspended_at IS NOT NULL AS suspended, m.created_at
		FROM memberships m JOIN organizations o ON o.id = m.org_id
		WHERE m.user_id = $1 ORDER BY m.created_at, m.org_id`
	var rows []struct {
		OrgID     uuid.UUID `db:"org_id"`
		Name      string    `db:"name"`
		Role      string    `db:"role"`
		Suspended bool      `db:"suspended"`
		CreatedAt time.Time `db:"created_at"`
	}
	if err := sqlx.SelectContext(ctx, q, &rows, query, id); err != nil {
		return nil, fmt.Errorf("user memberships: %w", err)
	}
	out := make([]admin.UserMembership, len(rows))
	for i, r := range rows {
		out[i] = admin.UserMembership{OrgID: r.OrgID, OrgName: r.Name, Role: r.Role, Suspended: r.Suspended, JoinedAt: r.CreatedAt}
	}
	return out, nil
}

// UserSessions returns the user's live logins: each family's first token
// opened it, its newest was the last refresh, and its live end (neither
// rotated nor revoked) says when it expires and where it is switched to.
func (Store) UserSessions(ctx context.Context, q sqlx.QueryerContext, id uuid.UUID, now time.Time) ([]admin.UserSession, error) {
	const query = `SELECT cur.family_id, f.opened_at, f.last_refreshed_at, cur.expires_at, cur.second_factor,
			COALESCE(cur.active_org_id, '00000000-0000-0000-0000-000000000000'::uuid) AS active_org_id
		FROM refresh_tokens cur
		JOIN LATERAL (SELECT min(t.created_at) AS opened_at, max(t.created_at) AS last_refreshed_at
			FROM refresh_tokens t WHERE t.user_id = cur.user_id AND t.family_id = cur.family_id) f ON true
		WHERE cur.user_id = $1 AND cur.revoked_at IS NULL AND cur.rotated_at IS NULL AND cur.expires_at > $2
		ORDER BY f.last_refreshed_at DESC, cur.family_id`
	var rows []struct {
		FamilyID     uuid.UUID `db:"family_id"`
		OpenedAt     time.Time `db:"opened_at"`
		LastRefresh  time.Time `db:"last_refreshed_at"`
		ExpiresAt    time.Time `db:"expires_at"`
		SecondFactor string    `db:"second_factor"`
		ActiveOrgID  uuid.UUID `db:"active_org_id"`
	}
	if err := sqlx.SelectContext(ctx, q, &rows, query, id, now); err != nil {
		return nil, fmt.Errorf("user sessions: %w", err)
	}
	out := make([]admin.UserSession, len(rows))
	for i, r := range rows {
		out[i] = admin.UserSession{FamilyID: r.FamilyID, OpenedAt: r.OpenedAt, LastRefreshedAt: r.LastRefresh,
			ExpiresAt: r.ExpiresAt, SecondFactor: r.SecondFactor, ActiveOrgID: r.ActiveOrgID}
	}
	return out, nil
}

// DisableUser marks the user disabled unless already so. The UPDATE takes
// the row lock, so two admins disabling at once record one disable.
func (Store) DisableUser(ctx context.Context, tx sqlx.ExtContext, id uuid.UUID, at time.Time, reason string) (bool, error) {
	const q = `UPDATE users SET disabled_at = $2, disabled_reason = $3, updated_at = $2
		WHERE id = $1 AND disabled_at IS NULL`
	return changedOrMissing(ctx, tx, id, q, id, at, reason)
}

// EnableUser clears the user's disable.
func (Store) EnableUser(ctx context.Context, tx sqlx.ExtContext, id uuid.UUID, at time.Time) (bool, error) {
	const q = `UPDATE users SET disabled_at = NULL, disabled_reason = '', updated_at = $2
		WHERE id = $1 AND disabled_at IS NOT NULL`
	return changedOrMissing(ctx, tx, id, q, id, at)
}

// changedOrMissing runs an UPDATE of one users row and reports whether it
// changed it; when it did not, ErrNotFound unless the user exists.
func changedOrMissing(ctx context.Context, tx sqlx.ExtContext, id uuid.UUID, q string, args ...any) (bool, error) {
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return n == 1, err
	}
	var one int
	const exists = `SELECT 1 FROM users WHERE id = $1`
	if err := sqlx.GetContext(ctx, tx, &one, exists, id); err != nil {
		return false, postgres.Translate(err)
	}
	return false, nil
}

// RevokeUserSessions revokes every unrevoked refresh token of the user
// and counts the logins that were live.
func (Store) RevokeUserSessions(ctx context.Context, tx sqlx.ExtContext, id uuid.UUID, now time.Time) (int, error) {
	const q = `WITH r AS (
			UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL
			RETURNING family_id, rotated_at IS NULL AND expires_at > $2 AS live)
		SELECT count(DISTINCT family_id) FROM r WHERE live`
	var n int
	if err := sqlx.GetContext(ctx, tx, &n, q, id, now); err != nil {
		return 0, fmt.Errorf("revoke user sessions: %w", err)
	}
	return n, nil
}

// RevokeUserAPIKeys revokes every live API key the user created, in every
// organization.
func (Store) RevokeUserAPIKeys(ctx context.Context, tx sqlx.ExtContext, id uuid.UUID, now time.Time) (map[uuid.UUID]int, error) {
	const q = `WITH r AS (
			UPDATE api_keys SET revoked_at = $2 WHERE created_by = $1 AND revoked_at IS NULL RETURNING org_id)
		SELECT org_id, count(*) AS n FROM r GROUP BY org_id`
	var rows []struct {
		OrgID uuid.UUID `db:"org_id"`
		N     int       `db:"n"`
	}
	if err := sqlx.SelectContext(ctx, tx, &rows, q, id, now); err != nil {
		return nil, fmt.Errorf("revoke user api keys: %w", err)
	}
	out := make(map[uuid.UUID]int, len(rows))
	for _, r := range rows {
		out[r.OrgID] = r.N
	}
	return out, nil
}
