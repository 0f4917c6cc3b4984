// Package orgdb stores organizations and their tenant tables: memberships,
// invitations and API keys. Every statement on a tenant table carries org_id
// and runs in a transaction that set app.org_id, so the application filter
// and Row Level Security agree. The lookups that happen before the tenant is
// known go through SECURITY DEFINER functions (see
// migrations/00100_identity.sql). Rows map to org's types.
package orgdb

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/org"
	"github.com/keelhq/keel/internal/platform/postgres"
	"github.com/keelhq/keel/internal/tenant"
)

// Store runs the queries; its methods take the transaction (or pool) they
// run in.
type Store struct{}

var _ org.Store = Store{}

type orgRow struct {
	ID          uuid.UUID  `db:"id"`
	Name        string     `db:"name"`
	SuspendedAt *time.Time `db:"suspended_at"`
	CreatedAt   time.Time  `db:"created_at"`
	UpdatedAt   time.Time  `db:"updated_at"`
}

func (r *orgRow) into(o *org.Organization) {
	*o = org.Organization{ID: r.ID, Name: r.Name, SuspendedAt: r.SuspendedAt, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

const orgCols = `id, name, suspended_at, created_at, updated_at`

// CreateOrg inserts o.
func (Store) CreateOrg(ctx context.Context, tx sqlx.ExtContext, o *org.Organization) error {
	var r orgRow
	if err := sqlx.GetContext(ctx, tx, &r, `INSERT INTO organizations (id, name) VALUES ($1, $2) RETURNING `+orgCols, o.ID, o.Name); err != nil {
		return postgres.Translate(err)
	}
	r.into(o)
	return nil
}

// Org returns one organization.
func (Store) Org(ctx context.Context, tx sqlx.QueryerContext, id uuid.UUID) (*org.Organization, error) {
	var r orgRow
	if err := sqlx.GetContext(ctx, tx, &r, `SELECT `+orgCols+` FROM organizations WHERE id = $1`, id); err != nil {
		return nil, postgres.Translate(err)
	}
	var o org.Organization
	r.into(&o)
	return &o, nil
}

// RenameOrg sets an organization's name.
func (Store) RenameOrg(ctx context.Context, tx sqlx.ExtContext, o *org.Organization) error {
	var r orgRow
	if err := sqlx.GetContext(ctx, tx, &r, `UPDATE organizations SET name = $2, updated_at = now() WHERE id = $1 RETURNING `+orgCols, o.ID, o.Name); err != nil {
		return postgres.Translate(err)
	}
	r.into(o)
	return nil
}

// UserMemberships lists every organization a user belongs to, oldest first,
// through the identity_user_memberships SECURITY DEFINER function.
func (Store) UserMemberships(ctx context.Context, db sqlx.QueryerContext, userID uuid.UUID) ([]auth.Membership, error) {
	var rows []struct {
		OrgID     uuid.UUID `db:"org_id"`
		Role      string    `db:"role"`
		JoinedAt  time.Time `db:"joined_at"`
		OrgName   string    `db:"org_name"`
		Suspended bool      `db:"suspended"`
	}
	if err := sqlx.SelectContext(ctx, db, &rows, `SELECT org_id, role, joined_at, org_name, suspended FROM identity_user_memberships($1)`, userID); err != nil {
		return nil, err
	}
	out := make([]auth.Membership, len(rows))
	for i, m := range rows {
		out[i] = auth.Membership{OrgID: m.OrgID, OrgName: m.OrgName, Role: m.Role, JoinedAt: m.JoinedAt, Suspended: m.Suspended}
	}
	return out, nil
}

// AddMember inserts a membership; ErrConflict when the user is already a member.
func (Store) AddMember(ctx context.Context, tx sqlx.ExtContext, orgID, userID uuid.UUID, role string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, $3)`, orgID, userID, role)
	return postgres.Translate(err)
}

type memberRow struct {
	OrgID     uuid.UUID `db:"org_id"`
	UserID    uuid.UUID `db:"user_id"`
	Role      string    `db:"role"`
	CreatedAt time.Time `db:"created_at"`
	UpdatedAt time.Time `db:"updated_at"`
	Email     string    `db:"email"`
	Name      string    `db:"name"`
}

func (r *memberRow) member() org.Member {
	return org.Member{OrgID: r.OrgID, UserID: r.UserID, Role: r.Role, Email: r.Email, Name: r.Name, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

const memberSelect = `SELECT m.org_id, m.user_id, m.role, m.created_at, m.updated_at, u.email, u.name
	FROM memberships m JOIN users u ON u.id = m.user_id`

// Member returns one membership with its user's fields; lock takes a row
// lock on the membership.
func (Store) Member(ctx context.Context, tx sqlx.QueryerContext, orgID, userID uuid.UUID, lock bool) (*org.Member, error) {
	q := memberSelect + ` WHERE m.org_id = $1 AND m.user_id = $2`
	if lock {
		q += ` FOR UPDATE OF m`
	}
	var r memberRow
	if err := sqlx.GetContext(ctx, tx, &r, q, orgID, userID); err != nil {
		return nil, postgres.Translate(err)
	}
	m := r.member()
	return &m, nil
}

// MemberByEmail returns the member whose account has email.
func (Store) MemberByEmail(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, email string) (*org.Member, error) {
	var r memberRow
	if err := sqlx.GetContext(ctx, tx, &r, memberSelect+` WHERE m.org_id = $1 AND u.email = $2`, orgID, email); err != nil {
		return nil, postgres.Translate(err)
	}
	m := r.member()
	return &m, nil
}

// Members lists an organization's members after the cursor (joined_at, user_id), oldest first.
func (Store) Members(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, after *tenant.Cursor, limit int) ([]org.Member, error) {
	var rows []memberRow
	q, args := tenant.Keyset(memberSelect+` WHERE m.org_id = $1`, "m.created_at, m.user_id", false, orgID, after, limit)
	if err := sqlx.SelectContext(ctx, tx, &rows, q, args...); err != nil {
		return nil, err
	}
	out := make([]org.Member, len(rows))
	for i := range rows {
		out[i] = rows[i].member()
	}
	return out, nil
}

// CountOwners counts an organization's owners, locking their rows so two
// concurrent demotions cannot both see two owners.
func (Store) CountOwners(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID) (int, error) {
	var ids []uuid.UUID
	err := sqlx.SelectContext(ctx, tx, &ids, `SELECT user_id FROM memberships WHERE org_id = $1 AND role = 'owner' FOR UPDATE`, orgID)
	return len(ids), err
}

// SetRole changes a member's role.
func (Store) SetRole(ctx context.Context, tx sqlx.ExecerContext, orgID, userID uuid.UUID, role string) error {
	res, err := tx.ExecContext(ctx, `UPDATE memberships SET role = $3, updated_at = now() WHERE org_id = $1 AND user_id = $2`, orgID, userID, role)
	return affectedOne(res, err)
}

// RemoveMember deletes a membership.
func (Store) RemoveMember(ctx context.Context, tx sqlx.ExecerContext, orgID, userID uuid.UUID) error {
	res, err := tx.ExecContext(ctx, `DELETE FROM memberships WHERE org_id = $1 AND user_id = $2`, orgID, userID)
	return affectedOne(res, err)
}

// UserName returns a user's display name.
func (Store) UserName(ctx context.Context, tx sqlx.QueryerContext, userID uuid.UUID) (string, error) {
	var name string
	err := tx.QueryRowxContext(ctx, `SELECT name FROM users WHERE id = $1`, userID).Scan(&name)
	return name, postgres.Translate(err)
}

type invitationRow struct {
	ID         uuid.UUID  `db:"id"`
	OrgID      uuid.UUID  `db:"org_id"`
	Email      string     `db:"email"`
	Role       string     `db:"role"`
	TokenHash  []byte     `db:"token_hash"`
	InvitedBy  *uuid.UUID `db:"invited_by"`
	ExpiresAt  time.Time  `db:"expires_at"`
	AcceptedAt *time.Time `db:"accepted_at"`
	CreatedAt  time.Time  `db:"created_at"`
	UpdatedAt  time.Time  `db:"updated_at"`
}

func (r *invitationRow) into(i *org.Invitation) {
	*i = org.Invitation{ID: r.ID, OrgID: r.OrgID, Email: r.Email, Role: r.Role, TokenHash: r.TokenHash, InvitedBy: r.InvitedBy,
		ExpiresAt: r.ExpiresAt, AcceptedAt: r.AcceptedAt, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

const invCols = `id, org_id, email, role, token_hash, invited_by, expires_at, accepted_at, created_at, updated_at`

// PendingInvitation returns the pending invitation of email to orgID,
// locking it so a concurrent resend or revoke waits.
func (Store) PendingInvitation(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, email string) (*org.Invitation, error) {
	var r invitationRow
	if err := sqlx.GetContext(ctx, tx, &r, `SELECT `+invCols+` FROM invitations
		WHERE org_id = $1 AND email = $2 AND accepted_at IS NULL FOR UPDATE`, orgID, email); err != nil {
		return nil, postgres.Translate(err)
	}
	var inv org.Invitation
	r.into(&inv)
	return &inv, nil
}

// PutInvitation inserts inv, replacing a pending invitation of the same
// address to the same organization.
func (Store) PutInvitation(ctx context.Context, tx sqlx.ExtContext, inv *org.Invitation) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM invitations WHERE org_id = $1 AND email = $2 AND accepted_at IS NULL`,
		inv.OrgID, inv.Email); err != nil {
		return err
	}
	var r invitationRow
	err := sqlx.GetContext(ctx, tx, &r, `INSERT INTO invitations (id, org_id, email, role, token_hash, invited_by, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+invCols,
		inv.ID, inv.OrgID, inv.Email, inv.Role, inv.TokenHash, inv.InvitedBy, inv.ExpiresAt)
	if err != nil {
		return postgres.Translate(err)
	}
	r.into(inv)
	return nil
}

// Invitation returns one pending invitation; lock takes a row lock.
func (Store) Invitation(ctx context.Context, tx sqlx.QueryerContext, orgID, id uuid.UUID, lock bool) (*org.Invitation, error) {
	q := `SELECT ` + invCols + ` FROM invitations WHERE org_id = $1 AND id = $2 AND accepted_at IS NULL`
	if lock {
		q += ` FOR UPDATE`
	}
	var r invitationRow
	if err := sqlx.GetContext(ctx, tx, &r, q, orgID, id); err != nil {
		return nil, postgres.Translate(err)
	}
	var inv org.Invitation
	r.into(&inv)
	return &inv, nil
}

// InvitationByToken finds the live invitation with token hash: the
// SECURITY DEFINER lookup names its organization, then the row is read
// (and locked) under that tenant. The caller's tx must not have a tenant set
// yet; this sets it.
func (s Store) InvitationByToken(ctx context.Context, tx *sqlx.Tx, hash []byte) (*org.Invitation, error) {
	var ref struct {
		ID    uuid.UUID `db:"id"`
		OrgID uuid.UUID `db:"org_id"`
	}
	if err := sqlx.GetContext(ctx, tx, &ref, `SELECT id, org_id FROM identity_invitation_by_token($1)`, hash); err != nil {
		return nil, postgres.Translate(err)
	}
	if err := postgres.SetTenant(ctx, tx, ref.OrgID); err != nil {
		return nil, err
	}
	return s.Invitation(ctx, tx, ref.OrgID, ref.ID, true)
}

// Invitations lists pending invitations, newest first, after the cursor.
func (Store) Invitations(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, after *tenant.Cursor, limit int) ([]org.Invitation, error) {
	q, args := tenant.Keyset(`SELECT `+invCols+` FROM invitations WHERE org_id = $1 AND accepted_at IS NULL`, "created_at, id", true, orgID, after, limit)
	var rows []invitationRow
	if err := sqlx.SelectContext(ctx, tx, &rows, q, args...); err != nil {
		return nil, err
	}
	out := make([]org.Invitation, len(rows))
	for i := range rows {
		rows[i].into(&out[i])
	}
	return out, nil
}

// RefreshInvitation gives a pending invitation a new token hash (nil: not
// minted yet) and expiry (resend).
func (Store) RefreshInvitation(ctx context.Context, tx sqlx.ExtContext, inv *org.Invitation) error {
	var r invitationRow
	err := sqlx.GetContext(ctx, tx, &r, `UPDATE invitations SET token_hash = $3, expires_at = $4, updated_at = now()
		WHERE org_id = $1 AND id = $2 AND accepted_at IS NULL RETURNING `+invCols, inv.OrgID, inv.ID, inv.TokenHash, inv.ExpiresAt)
	if err != nil {
		return postgres.Translate(err)
	}
	r.into(inv)
	return nil
}

// MintInvitation stores hash as the token of the pending, unminted (or,
// when again, possibly minted) invitation id.
func (Store) MintInvitation(ctx context.Context, tx sqlx.ExecerContext, orgID, id uuid.UUID, hash []byte, again bool) error {
	res, err := tx.ExecContext(ctx, `UPDATE invitations SET token_hash = $3, updated_at = now()
		WHERE org_id = $1 AND id = $2 AND accepted_at IS NULL AND (token_hash IS NULL OR $4)`, orgID, id, hash, again)
	return affectedOne(res, err)
}

// AcceptInvitation marks an invitation used.
func (Store) AcceptInvitation(ctx context.Context, tx sqlx.ExecerContext, orgID, id uuid.UUID) error {
	res, err := tx.ExecContext(ctx, `UPDATE invitations SET accepted_at = now(), updated_at = now()
		WHERE org_id = $1 AND id = $2 AND accepted_at IS NULL`, orgID, id)
	return affectedOne(res, err)
}

// CountSeats implements org.Store.
func (Store) CountSeats(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, now time.Time) (int64, int64, error) {
	const q = `SELECT (SELECT count(*) FROM memberships WHERE org_id = $1),
		(SELECT count(*) FROM invitations WHERE org_id = $1 AND accepted_at IS NULL AND expires_at > $2)`
	var members, pending int64
	if err := tx.QueryRowxContext(ctx, q, orgID, now).Scan(&members, &pending); err != nil {
		return 0, 0, fmt.Errorf("count seats: %w", err)
	}
	return members, pending, nil
}

// DeleteInvitation revokes a pending invitation.
func (Store) DeleteInvitation(ctx context.Context, tx sqlx.ExecerContext, orgID, id uuid.UUID) error {
	res, err := tx.ExecContext(ctx, `DELETE FROM invitations WHERE org_id = $1 AND id = $2 AND accepted_at IS NULL`, orgID, id)
	return affectedOne(res, err)
}

type apiKeyRow struct {
	ID         uuid.UUID  `db:"id"`
	OrgID      uuid.UUID  `db:"org_id"`
	Name       string     `db:"name"`
	Role       string     `db:"role"`
	Prefix     string     `db:"prefix"`
	SecretHash []byte     `db:"secret_hash"`
	CreatedBy  *uuid.UUID `db:"created_by"`
	ExpiresAt  *time.Time `db:"expires_at"`
	LastUsedAt *time.Time `db:"last_used_at"`
	RevokedAt  *time.Time `db:"revoked_at"`
	CreatedAt  time.Time  `db:"created_at"`
}

func (r *apiKeyRow) into(k *org.APIKey) {
	*k = org.APIKey{ID: r.ID, OrgID: r.OrgID, Name: r.Name, Role: r.Role, Prefix: r.Prefix, SecretHash: r.SecretHash,
		CreatedBy: r.CreatedBy, ExpiresAt: r.ExpiresAt, LastUsedAt: r.LastUsedAt, RevokedAt: r.RevokedAt, CreatedAt: r.CreatedAt}
}

const keyCols = `id, org_id, name, role, prefix, secret_hash, created_by, expires_at, last_used_at, revoked_at, created_at`

// CreateAPIKey inserts k.
func (Store) CreateAPIKey(ctx context.Context, tx sqlx.ExtContext, k *org.APIKey) error {
	var r apiKeyRow
	err := sqlx.GetContext(ctx, tx, &r, `INSERT INTO api_keys (id, org_id, name, role, prefix, secret_hash, created_by, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING `+keyCols, k.ID, k.OrgID, k.Name, k.Role, k.Prefix, k.SecretHash, k.CreatedBy, k.ExpiresAt)
	if err != nil {
		return postgres.Translate(err)
	}
	r.into(k)
	return nil
}

// APIKeys lists an organization's live keys, newest first, after the cursor.
func (Store) APIKeys(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, after *tenant.Cursor, limit int) ([]org.APIKey, error) {
	q, args := tenant.Keyset(`SELECT `+keyCols+` FROM api_keys WHERE org_id = $1 AND revoked_at IS NULL`, "created_at, id", true, orgID, after, limit)
	var rows []apiKeyRow
	if err := sqlx.SelectContext(ctx, tx, &rows, q, args...); err != nil {
		return nil, err
	}
	out := make([]org.APIKey, len(rows))
	for i := range rows {
		rows[i].into(&out[i])
	}
	return out, nil
}

// RevokeAPIKey revokes a live key and returns it.
func (Store) RevokeAPIKey(ctx context.Context, tx sqlx.QueryerContext, orgID, id uuid.UUID) (*org.APIKey, error) {
	var r apiKeyRow
	err := sqlx.GetContext(ctx, tx, &r, `UPDATE api_keys SET revoked_at = now() WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL
		RETURNING `+keyCols, orgID, id)
	if err != nil {
		return nil, postgres.Translate(err)
	}
	var k org.APIKey
	r.into(&k)
	return &k, nil
}

// APIKeyByPrefix finds a live (unrevoked) key by its public prefix through
// the identity_api_key_by_prefix SECURITY DEFINER function; the result
// carries ID, OrgID, Role, SecretHash, ExpiresAt and CreatorRole (the
// creator's current role in the key's organization, empty when none).
func (Store) APIKeyByPrefix(ctx context.Context, db sqlx.QueryerContext, prefix string) (*org.APIKey, error) {
	var r struct {
		ID          uuid.UUID  `db:"id"`
		OrgID       uuid.UUID  `db:"org_id"`
		Role        string     `db:"role"`
		SecretHash  []byte     `db:"secret_hash"`
		ExpiresAt   *time.Time `db:"expires_at"`
		CreatorRole *string    `db:"creator_role"`
	}
	if err := sqlx.GetContext(ctx, db, &r, `SELECT id, org_id, role, secret_hash, expires_at, creator_role
		FROM identity_api_key_by_prefix($1)`, prefix); err != nil {
		return nil, postgres.Translate(err)
	}
	k := &org.APIKey{ID: r.ID, OrgID: r.OrgID, Role: r.Role, Prefix: prefix, SecretHash: r.SecretHash, ExpiresAt: r.ExpiresAt}
	if r.CreatorRole != nil {
		k.CreatorRole = *r.CreatorRole
	}
	return k, nil
}

// TouchAPIKey records a key's use, at most once a minute so busy keys do
// not turn every request into a write.
func (Store) TouchAPIKey(ctx context.Context, tx sqlx.ExecerContext, orgID, id uuid.UUID) error {
	_, err := tx.ExecContext(ctx, `UPDATE api_keys SET last_used_at = now() WHERE org_id = $1 AND id = $2
		AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`, orgID, id)
	return err
}

func affectedOne(res interface{ RowsAffected() (int64, error) }, err error) error {
	if err != nil {
		return postgres.Translate(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return postgres.ErrNotFound
	}
	return nil
}
