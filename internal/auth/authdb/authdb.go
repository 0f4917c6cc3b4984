// Package authdb stores users, sessions (refresh token families), email
// tokens and 2FA recovery codes in PostgreSQL. These are platform tables, not
// tenant tables: every query is keyed by a user ID or a token hash that the
// caller already proved it holds.
package authdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/platform/postgres"
)

// Store runs the queries; its methods take the transaction (or pool) they
// run in. It maps rows to auth's types.
type Store struct{}

var _ auth.UserStore = Store{}

// userRow is a users row.
type userRow struct {
	ID              uuid.UUID  `db:"id"`
	Email           string     `db:"email"`
	Name            string     `db:"name"`
	PasswordHash    string     `db:"password_hash"`
	EmailVerifiedAt *time.Time `db:"email_verified_at"`
	TOTPSecret      []byte     `db:"totp_secret"`
	TOTPEnabledAt   *time.Time `db:"totp_enabled_at"`
	TOTPLastStep    int64      `db:"totp_last_step"`
	IsPlatformAdmin bool       `db:"is_platform_admin"`
	DisabledAt      *time.Time `db:"disabled_at"`
	CreatedAt       time.Time  `db:"created_at"`
	UpdatedAt       time.Time  `db:"updated_at"`
}

func (r *userRow) user() *auth.User {
	return &auth.User{ID: r.ID, Email: r.Email, Name: r.Name, PasswordHash: r.PasswordHash, EmailVerifiedAt: r.EmailVerifiedAt,
		TOTPSecret: r.TOTPSecret, TOTPEnabledAt: r.TOTPEnabledAt, TOTPLastStep: r.TOTPLastStep, IsPlatformAdmin: r.IsPlatformAdmin,
		DisabledAt: r.DisabledAt, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

const userCols = `id, email, name, password_hash, email_verified_at, totp_secret, totp_enabled_at,
	totp_last_step, is_platform_admin, disabled_at, created_at, updated_at`

// CreateUser inserts u; ErrEmailTaken when the address is in use.
func (Store) CreateUser(ctx context.Context, tx sqlx.ExtContext, u *auth.User) error {
	const q = `INSERT INTO users (id, email, name, password_hash, email_verified_at)
		VALUES ($1, $2, $3, $4, $5) RETURNING created_at, updated_at`
	err := tx.QueryRowxContext(ctx, q, u.ID, u.Email, u.Name, u.PasswordHash, u.EmailVerifiedAt).Scan(&u.CreatedAt, &u.UpdatedAt)
	if postgres.IsUniqueViolation(err, "users_email_key") {
		return auth.ErrEmailTaken
	}
	return postgres.Translate(err)
}

// UserByEmail returns the user with email (already lower-cased).
func (Store) UserByEmail(ctx context.Context, tx sqlx.QueryerContext, email string) (*auth.User, error) {
	var u userRow
	if err := sqlx.GetContext(ctx, tx, &u, `SELECT `+userCols+` FROM users WHERE email = $1`, email); err != nil {
		return nil, postgres.Translate(err)
	}
	return u.user(), nil
}

// UserByID returns a user; lock takes a row lock for read-modify-write.
func (Store) UserByID(ctx context.Context, tx sqlx.QueryerContext, id uuid.UUID, lock bool) (*auth.User, error) {
	q := `SELECT ` + userCols + ` FROM users WHERE id = $1`
	if lock {
		q += ` FOR UPDATE`
	}
	var u userRow
	if err := sqlx.GetContext(ctx, tx, &u, q, id); err != nil {
		return nil, postgres.Translate(err)
	}
	return u.user(), nil
}

// UpdateUser writes the mutable fields of u.
func (Store) UpdateUser(ctx context.Context, tx sqlx.ExtContext, u *auth.User) error {
	const q = `UPDATE users SET email = $2, name = $3, password_hash = $4, email_verified_at = $5,
		totp_secret = $6, totp_enabled_at = $7, totp_last_step = $8, updated_at = now()
		WHERE id = $1 RETURNING updated_at`
	err := sqlx.GetContext(ctx, tx, &u.UpdatedAt, q, u.ID, u.Email, u.Name, u.PasswordHash, u.EmailVerifiedAt,
		u.TOTPSecret, u.TOTPEnabledAt, u.TOTPLastStep)
	if postgres.IsUniqueViolation(err, "users_email_key") {
		return auth.ErrEmailTaken
	}
	return postgres.Translate(err)
}

// refreshRow is a refresh_tokens row.
type refreshRow struct {
	ID          uuid.UUID  `db:"id"`
	FamilyID    uuid.UUID  `db:"family_id"`
	UserID      uuid.UUID  `db:"user_id"`
	ActiveOrgID uuid.UUID  `db:"active_org_id"` // uuid.Nil: none
	TokenHash   []byte     `db:"token_hash"`
	ExpiresAt   time.Time  `db:"expires_at"`
	RotatedAt   *time.Time `db:"rotated_at"`
	RevokedAt   *time.Time `db:"revoked_at"`
	// SecondFactor is "", "totp" or "recovery_code".
	SecondFactor string `db:"second_factor"`
}

// CreateRefreshToken inserts t.
func (Store) CreateRefreshToken(ctx context.Context, tx sqlx.ExtContext, t *auth.RefreshToken) error {
	const q = `INSERT INTO refresh_tokens (id, family_id, user_id, active_org_id, token_hash, expires_at, second_factor)
		VALUES ($1, $2, $3, NULLIF($4, '00000000-0000-0000-0000-000000000000'::uuid), $5, $6, $7)`
	_, err := tx.ExecContext(ctx, q, t.ID, t.FamilyID, t.UserID, t.ActiveOrgID, t.TokenHash, t.ExpiresAt, t.SecondFactor)
	return postgres.Translate(err)
}

const refreshCols = `id, family_id, user_id,
	COALESCE(active_org_id, '00000000-0000-0000-0000-000000000000'::uuid) AS active_org_id, token_hash, expires_at, rotated_at, revoked_at, second_factor`

func (t *refreshRow) token() *auth.RefreshToken {
	return &auth.RefreshToken{ID: t.ID, FamilyID: t.FamilyID, UserID: t.UserID, ActiveOrgID: t.ActiveOrgID, TokenHash: t.TokenHash,
		ExpiresAt: t.ExpiresAt, RotatedAt: t.RotatedAt, RevokedAt: t.RevokedAt, SecondFactor: t.SecondFactor}
}

// RefreshTokenByHash returns the token with hash, locked so two concurrent
// rotations of one token cannot both succeed.
func (Store) RefreshTokenByHash(ctx context.Context, tx sqlx.QueryerContext, hash []byte) (*auth.RefreshToken, error) {
	var t refreshRow
	if err := sqlx.GetContext(ctx, tx, &t, `SELECT `+refreshCols+` FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE`, hash); err != nil {
		return nil, postgres.Translate(err)
	}
	return t.token(), nil
}

// CurrentRefreshToken returns the live end of a login's chain, locked. A
// rotation that commits while this waits for the lock takes the row out of
// the result, so the caller may see ErrNotFound for a login that just
// rotated; it retries once with a fresh snapshot.
func (Store) CurrentRefreshToken(ctx context.Context, tx sqlx.QueryerContext, userID, family uuid.UUID) (*auth.RefreshToken, error) {
	const q = `SELECT ` + refreshCols + ` FROM refresh_tokens
		WHERE user_id = $1 AND family_id = $2 AND rotated_at IS NULL AND revoked_at IS NULL
		ORDER BY created_at DESC LIMIT 1 FOR UPDATE`
	var t refreshRow
	err := sqlx.GetContext(ctx, tx, &t, q, userID, family)
	if errors.Is(err, sql.ErrNoRows) {
		err = sqlx.GetContext(ctx, tx, &t, q, userID, family)
	}
	if err != nil {
		return nil, postgres.Translate(err)
	}
	return t.token(), nil
}

// MarkRotated records that t was exchanged for a successor.
func (Store) MarkRotated(ctx context.Context, tx sqlx.ExecerContext, id uuid.UUID) error {
	_, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET rotated_at = now() WHERE id = $1`, id)
	return err
}

// RevokeFamily revokes every token of a login.
func (Store) RevokeFamily(ctx context.Context, tx sqlx.ExecerContext, userID, family uuid.UUID) error {
	_, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET revoked_at = now()
		WHERE user_id = $1 AND family_id = $2 AND revoked_at IS NULL`, userID, family)
	return err
}

// RevokeUserSessions revokes every session of a user but the family keep.
func (Store) RevokeUserSessions(ctx context.Context, tx sqlx.ExecerContext, userID, keep uuid.UUID) error {
	_, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET revoked_at = now()
		WHERE user_id = $1 AND revoked_at IS NULL AND family_id <> $2`, userID, keep)
	return err
}

// emailTokenRow is an email_tokens row.
type emailTokenRow struct {
	ID        uuid.UUID  `db:"id"`
	UserID    uuid.UUID  `db:"user_id"`
	Purpose   string     `db:"purpose"`
	Email     string     `db:"email"`
	TokenHash []byte     `db:"token_hash"`
	ExpiresAt time.Time  `db:"expires_at"`
	UsedAt    *time.Time `db:"used_at"`
}

// CreateEmailToken inserts t and voids the user's earlier unused tokens of
// the same purpose, so only the newest link works. t.TokenHash is nil for
// a link the worker mints when it mails it.
func (Store) CreateEmailToken(ctx context.Context, tx sqlx.ExtContext, t *auth.EmailToken) error {
	if _, err := tx.ExecContext(ctx, `UPDATE email_tokens SET used_at = now()
		WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL`, t.UserID, t.Purpose); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO email_tokens (id, user_id, purpose, email, token_hash, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, t.ID, t.UserID, t.Purpose, t.Email, t.TokenHash, t.ExpiresAt)
	return postgres.Translate(err)
}

// VoidEmailTokens marks every unused token of the user used.
func (Store) VoidEmailTokens(ctx context.Context, tx sqlx.ExecerContext, userID uuid.UUID) error {
	_, err := tx.ExecContext(ctx, `UPDATE email_tokens SET used_at = now() WHERE user_id = $1 AND used_at IS NULL`, userID)
	return err
}

// UseEmailToken marks the live token with hash and purpose used and returns
// it; ErrNotFound when it is unknown, used or expired.
func (Store) UseEmailToken(ctx context.Context, tx sqlx.QueryerContext, purpose string, hash []byte) (*auth.EmailToken, error) {
	var t emailTokenRow
	err := sqlx.GetContext(ctx, tx, &t, `UPDATE email_tokens SET used_at = now()
		WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
		RETURNING id, user_id, purpose, email, token_hash, expires_at, used_at`, hash, purpose)
	if err != nil {
		return nil, postgres.Translate(err)
	}
	return &auth.EmailToken{ID: t.ID, UserID: t.UserID, Purpose: t.Purpose, Email: t.Email, TokenHash: t.TokenHash,
		ExpiresAt: t.ExpiresAt, UsedAt: t.UsedAt}, nil
}

// EmailTokenToMail returns, locked, the live token row id whose token is
// not minted yet (or, when again, may be); ErrNotFound when it is used,
// voided, expired, minted (unless again) or unknown.
func (Store) EmailTokenToMail(ctx context.Context, tx sqlx.QueryerContext, id uuid.UUID, again bool) (*auth.EmailToken, error) {
	var t emailTokenRow
	err := sqlx.GetContext(ctx, tx, &t, `SELECT id, user_id, purpose, email, token_hash, expires_at, used_at FROM email_tokens
		WHERE id = $1 AND (token_hash IS NULL OR $2) AND used_at IS NULL AND expires_at > now() FOR UPDATE`, id, again)
	if err != nil {
		return nil, postgres.Translate(err)
	}
	return &auth.EmailToken{ID: t.ID, UserID: t.UserID, Purpose: t.Purpose, Email: t.Email,
		ExpiresAt: t.ExpiresAt, UsedAt: t.UsedAt}, nil
}

// MintEmailToken stores hash as the token of the live, unminted (or, when
// again, possibly minted) row id and returns its purpose.
func (Store) MintEmailToken(ctx context.Context, tx sqlx.QueryerContext, id uuid.UUID, hash []byte, again bool) (string, error) {
	var purpose string
	err := tx.QueryRowxContext(ctx, `UPDATE email_tokens SET token_hash = $2
		WHERE id = $1 AND (token_hash IS NULL OR $3) AND used_at IS NULL RETURNING purpose`, id, hash, again).Scan(&purpose)
	return purpose, postgres.Translate(err)
}

// ReplaceRecoveryCodes stores a user's new recovery codes, dropping old ones.
func (Store) ReplaceRecoveryCodes(ctx context.Context, tx sqlx.ExtContext, userID uuid.UUID, hashes [][]byte) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM totp_recovery_codes WHERE user_id = $1`, userID); err != nil {
		return err
	}
	for _, h := range hashes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO totp_recovery_codes (id, user_id, code_hash) VALUES ($1, $2, $3)`,
			uuid.New(), userID, h); err != nil {
			return err
		}
	}
	return nil
}

// UseRecoveryCode consumes one unused code; false when none matches.
func (Store) UseRecoveryCode(ctx context.Context, tx sqlx.ExecerContext, userID uuid.UUID, hash []byte) (bool, error) {
	res, err := tx.ExecContext(ctx, `UPDATE totp_recovery_codes SET used_at = now()
		WHERE id = (SELECT id FROM totp_recovery_codes WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL LIMIT 1)`, userID, hash)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// DeleteRecoveryCodes drops a user's codes when 2FA is turned off.
func (Store) DeleteRecoveryCodes(ctx context.Context, tx sqlx.ExecerContext, userID uuid.UUID) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM totp_recovery_codes WHERE user_id = $1`, userID)
	return err
}

// Profile reads the user and their memberships (kept on the user's row by
// triggers; see migrations/00300_kernel.sql) with one primary-key lookup,
// and the state of activeOrg: from the memberships when the user belongs to
// it, else with a second, rare, lookup. activeOrg uuid.Nil reads as active.
func (Store) Profile(ctx context.Context, db sqlx.QueryerContext, userID, activeOrg uuid.UUID) (*auth.Profile, error) {
	var r struct {
		userRow
		Memberships []byte `db:"memberships"`
	}
	// Everything but the secrets: a profile never needs them.
	const q = `SELECT id, email, name, '' AS password_hash, email_verified_at, NULL::bytea AS totp_secret, totp_enabled_at,
		0 AS totp_last_step, is_platform_admin, disabled_at, created_at, updated_at, memberships FROM users WHERE id = $1`
	if err := sqlx.GetContext(ctx, db, &r, q, userID); err != nil {
		return nil, postgres.Translate(err)
	}
	var ms []struct {
		OrgID     uuid.UUID `json:"org_id"`
		Role      string    `json:"role"`
		JoinedAt  time.Time `json:"joined_at"`
		OrgName   string    `json:"org_name"`
		Suspended bool      `json:"suspended"`
	}
	if err := json.Unmarshal(r.Memberships, &ms); err != nil {
		return nil, fmt.Errorf("memberships of %s: %w", userID, err)
	}
	p := &auth.Profile{User: r.user(), Memberships: make([]auth.Membership, len(ms))}
	found := activeOrg == uuid.Nil
	for i, m := range ms {
		p.Memberships[i] = auth.Membership{OrgID: m.OrgID, OrgName: m.OrgName, Role: m.Role, JoinedAt: m.JoinedAt, Suspended: m.Suspended}
		if m.OrgID == activeOrg {
			found, p.ActiveOrgSuspended = true, m.Suspended
		}
	}
	if !found {
		// The token names an organization the user has left.
		var suspended bool
		err := db.QueryRowxContext(ctx, `SELECT suspended_at IS NOT NULL FROM organizations WHERE id = $1`, activeOrg).Scan(&suspended)
		switch err = postgres.Translate(err); {
		case errors.Is(err, postgres.ErrNotFound):
			p.ActiveOrgGone = true
		case err != nil:
			return nil, err
		default:
			p.ActiveOrgSuspended = suspended
		}
	}
	return p, nil
}

// TouchLogin records a successful login's time.
func (Store) TouchLogin(ctx context.Context, tx sqlx.ExecerContext, id uuid.UUID) error {
	_, err := tx.ExecContext(ctx, `UPDATE users SET last_login_at = now() WHERE id = $1`, id)
	return err
}

// Disabled reports whether the user is disabled.
func (Store) Disabled(ctx context.Context, q sqlx.QueryerContext, id uuid.UUID) (bool, error) {
	var d bool
	err := sqlx.GetContext(ctx, q, &d, `SELECT disabled_at IS NOT NULL FROM users WHERE id = $1`, id)
	return d, postgres.Translate(err)
}
