// Package orgdb stores organizations and their tenant tables: memberships,
// invitations, API keys and the audit log. Every statement on a tenant table
// carries org_id and runs in a transaction that set app.org_id, so the
// application filter and Row Level Security agree. The three lookups that
// happen before the tenant is known go through SECURITY DEFINER functions
// (see migrations/00100_identity.sql).
package orgdb

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/platform/postgres"
)

// Errors.
var (
	ErrNotFound = postgres.ErrNotFound
)

// Store runs the queries; its methods take the transaction they run in.
type Store struct{}

// Organization is an organizations row.
type Organization struct {
	ID          uuid.UUID  `db:"id"`
	Name        string     `db:"name"`
	SuspendedAt *time.Time `db:"suspended_at"`
	CreatedAt   time.Time  `db:"created_at"`
	UpdatedAt   time.Time  `db:"updated_at"`
}

const orgCols = `id, name, suspended_at, created_at, updated_at`

// CreateOrg inserts o.
func (Store) CreateOrg(ctx context.Context, tx sqlx.ExtContext, o *Organization) error {
	err := sqlx.GetContext(ctx, tx, o, `INSERT INTO organizations (id, name) VALUES ($1, $2) RETURNING `+orgCols, o.ID, o.Name)
	return postgres.Translate(err)
}

// Org returns one organization.
func (Store) Org(ctx context.Context, tx sqlx.QueryerContext, id uuid.UUID) (*Organization, error) {
	var o Organization
	err := sqlx.GetContext(ctx, tx, &o, `SELECT `+orgCols+` FROM organizations WHERE id = $1`, id)
	return &o, postgres.Translate(err)
}

// SuspendedAt returns when org was suspended (nil when active); the hot
// path of every authenticated request, so it reads one column.
func (Store) SuspendedAt(ctx context.Context, db sqlx.QueryerContext, id uuid.UUID) (*time.Time, error) {
	var at *time.Time
	err := db.QueryRowxContext(ctx, `SELECT suspended_at FROM organizations WHERE id = $1`, id).Scan(&at)
	return at, postgres.Translate(err)
}

// RenameOrg sets an organization's name.
func (Store) RenameOrg(ctx context.Context, tx sqlx.ExtContext, o *Organization) error {
	err := sqlx.GetContext(ctx, tx, o, `UPDATE organizations SET name = $2, updated_at = now() WHERE id = $1 RETURNING `+orgCols, o.ID, o.Name)
	return postgres.Translate(err)
}

// Membership is a memberships row.
type Membership struct {
	OrgID     uuid.UUID `db:"org_id"`
	UserID    uuid.UUID `db:"user_id"`
	Role      string    `db:"role"`
	CreatedAt time.Time `db:"created_at"`
	UpdatedAt time.Time `db:"updated_at"`
}

// UserMembership is one of a user's memberships, read before the tenant is known.
type UserMembership struct {
	OrgID     uuid.UUID `db:"org_id"`
	Role      string    `db:"role"`
	JoinedAt  time.Time `db:"joined_at"`
	OrgName   string    `db:"org_name"`
	Suspended bool      `db:"suspended"`
}

// UserMemberships lists every organization a user belongs to, oldest first,
// through the identity_user_memberships SECURITY DEFINER function.
func (Store) UserMemberships(ctx context.Context, db sqlx.QueryerContext, userID uuid.UUID) ([]UserMembership, error) {
	var out []UserMembership
	err := sqlx.SelectContext(ctx, db, &out, `SELECT org_id, role, joined_at, org_name, suspended FROM identity_user_memberships($1)`, userID)
	return out, err
}

// AddMember inserts m; ErrConflict when the user is already a member.
func (Store) AddMember(ctx context.Context, tx sqlx.ExtContext, m *Membership) error {
	err := sqlx.GetContext(ctx, tx, m, `INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, $3)
		RETURNING org_id, user_id, role, created_at, updated_at`, m.OrgID, m.UserID, m.Role)
	return postgres.Translate(err)
}

// Member returns one membership; lock takes a row lock.
func (Store) Member(ctx context.Context, tx sqlx.QueryerContext, orgID, userID uuid.UUID, lock bool) (*Membership, error) {
	q := `SELECT org_id, user_id, role, created_at, updated_at FROM memberships WHERE org_id = $1 AND user_id = $2`
	if lock {
		q += ` FOR UPDATE`
	}
	var m Membership
	err := sqlx.GetContext(ctx, tx, &m, q, orgID, userID)
	return &m, postgres.Translate(err)
}

// MemberRow is a membership with its user's public fields.
type MemberRow struct {
	Membership
	Email string `db:"email"`
	Name  string `db:"name"`
}

// Members lists an organization's members after the cursor (joined_at, user_id), oldest first.
func (Store) Members(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, after *Cursor, limit int) ([]MemberRow, error) {
	var out []MemberRow
	q, args := keyset(`SELECT m.org_id, m.user_id, m.role, m.created_at, m.updated_at, u.email, u.name
		FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1`, "m.created_at, m.user_id", false, orgID, after, limit)
	err := sqlx.SelectContext(ctx, tx, &out, q, args...)
	return out, err
}

// CountOwners counts an organization's owners, locking their rows so two
// concurrent demotions cannot both see two owners.
func (Store) CountOwners(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID) (int, error) {
	var ids []uuid.UUID
	err := sqlx.SelectContext(ctx, tx, &ids, `SELECT user_id FROM memberships WHERE org_id = $1 AND role = 'owner' FOR UPDATE`, orgID)
	return len(ids), err
}

// SetRole changes a member's role.
func (Store) SetRole(ctx context.Context, tx sqlx.ExtContext, m *Membership) error {
	err := sqlx.GetContext(ctx, tx, m, `UPDATE memberships SET role = $3, updated_at = now() WHERE org_id = $1 AND user_id = $2
		RETURNING org_id, user_id, role, created_at, updated_at`, m.OrgID, m.UserID, m.Role)
	return postgres.Translate(err)
}

// RemoveMember deletes a membership.
func (Store) RemoveMember(ctx context.Context, tx sqlx.ExecerContext, orgID, userID uuid.UUID) error {
	res, err := tx.ExecContext(ctx, `DELETE FROM memberships WHERE org_id = $1 AND user_id = $2`, orgID, userID)
	return affectedOne(res, err)
}

// Invitation is an invitations row.
type Invitation struct {
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

const invCols = `id, org_id, email, role, token_hash, invited_by, expires_at, accepted_at, created_at, updated_at`

// PutInvitation inserts inv, replacing a pending invitation of the same
// address to the same organization.
func (Store) PutInvitation(ctx context.Context, tx sqlx.ExtContext, inv *Invitation) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM invitations WHERE org_id = $1 AND email = $2 AND accepted_at IS NULL`,
		inv.OrgID, inv.Email); err != nil {
		return err
	}
	err := sqlx.GetContext(ctx, tx, inv, `INSERT INTO invitations (id, org_id, email, role, token_hash, invited_by, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+invCols,
		inv.ID, inv.OrgID, inv.Email, inv.Role, inv.TokenHash, inv.InvitedBy, inv.ExpiresAt)
	return postgres.Translate(err)
}

// Invitation returns one pending invitation; lock takes a row lock.
func (Store) Invitation(ctx context.Context, tx sqlx.QueryerContext, orgID, id uuid.UUID, lock bool) (*Invitation, error) {
	q := `SELECT ` + invCols + ` FROM invitations WHERE org_id = $1 AND id = $2 AND accepted_at IS NULL`
	if lock {
		q += ` FOR UPDATE`
	}
	var inv Invitation
	err := sqlx.GetContext(ctx, tx, &inv, q, orgID, id)
	return &inv, postgres.Translate(err)
}

// InvitationByToken finds the live invitation with token hash: the
// SECURITY DEFINER lookup names its organization, then the row is read
// (and locked) under that tenant. The caller's tx must not have a tenant set
// yet; SetTenant sets it.
func (s Store) InvitationByToken(ctx context.Context, tx *sqlx.Tx, hash []byte) (*Invitation, error) {
	var ref struct {
		ID    uuid.UUID `db:"id"`
		OrgID uuid.UUID `db:"org_id"`
	}
	if err := sqlx.GetContext(ctx, tx, &ref, `SELECT id, org_id FROM identity_invitation_by_token($1)`, hash); err != nil {
		return nil, postgres.Translate(err)
	}
	if err := SetTenant(ctx, tx, ref.OrgID); err != nil {
		return nil, err
	}
	return s.Invitation(ctx, tx, ref.OrgID, ref.ID, true)
}

// SetTenant sets app.org_id for the rest of tx; for transactions that learn
// their tenant from a lookup.
func SetTenant(ctx context.Context, tx sqlx.ExecerContext, orgID uuid.UUID) error {
	_, err := tx.ExecContext(ctx, `SELECT set_config('app.org_id', $1, true)`, orgID.String())
	return err
}

// Invitations lists pending invitations, newest first, after the cursor.
func (Store) Invitations(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, after *Cursor, limit int) ([]Invitation, error) {
	q, args := keyset(`SELECT `+invCols+` FROM invitations WHERE org_id = $1 AND accepted_at IS NULL`, "created_at, id", true, orgID, after, limit)
	var out []Invitation
	err := sqlx.SelectContext(ctx, tx, &out, q, args...)
	return out, err
}

// RefreshInvitation gives a pending invitation a new token and expiry (resend).
func (Store) RefreshInvitation(ctx context.Context, tx sqlx.ExtContext, inv *Invitation) error {
	err := sqlx.GetContext(ctx, tx, inv, `UPDATE invitations SET token_hash = $3, expires_at = $4, updated_at = now()
		WHERE org_id = $1 AND id = $2 AND accepted_at IS NULL RETURNING `+invCols, inv.OrgID, inv.ID, inv.TokenHash, inv.ExpiresAt)
	return postgres.Translate(err)
}

// AcceptInvitation marks an invitation used.
func (Store) AcceptInvitation(ctx context.Context, tx sqlx.ExecerContext, orgID, id uuid.UUID) error {
	res, err := tx.ExecContext(ctx, `UPDATE invitations SET accepted_at = now(), updated_at = now()
		WHERE org_id = $1 AND id = $2 AND accepted_at IS NULL`, orgID, id)
	return affectedOne(res, err)
}

// DeleteInvitation revokes a pending invitation.
func (Store) DeleteInvitation(ctx context.Context, tx sqlx.ExecerContext, orgID, id uuid.UUID) error {
	res, err := tx.ExecContext(ctx, `DELETE FROM invitations WHERE org_id = $1 AND id = $2 AND accepted_at IS NULL`, orgID, id)
	return affectedOne(res, err)
}

// APIKey is an api_keys row.
type APIKey struct {
	ID         uuid.UUID  `db:"id"`
	OrgID      uuid.UUID  `db:"org_id"`
	Name       string     `db:"name"`
	Role       string     `db:"role"`
	Prefix     string     `db:"prefix"`
	SecretHash []byte     `db:"secret_hash"`
	CreatedBy  *uuid.UUID `db:"created_by"`
	LastUsedAt *time.Time `db:"last_used_at"`
	RevokedAt  *time.Time `db:"revoked_at"`
	CreatedAt  time.Time  `db:"created_at"`
}

const keyCols = `id, org_id, name, role, prefix, secret_hash, created_by, last_used_at, revoked_at, created_at`

// CreateAPIKey inserts k.
func (Store) CreateAPIKey(ctx context.Context, tx sqlx.ExtContext, k *APIKey) error {
	err := sqlx.GetContext(ctx, tx, k, `INSERT INTO api_keys (id, org_id, name, role, prefix, secret_hash, created_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+keyCols, k.ID, k.OrgID, k.Name, k.Role, k.Prefix, k.SecretHash, k.CreatedBy)
	return postgres.Translate(err)
}

// APIKeys lists an organization's live keys, newest first, after the cursor.
func (Store) APIKeys(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, after *Cursor, limit int) ([]APIKey, error) {
	q, args := keyset(`SELECT `+keyCols+` FROM api_keys WHERE org_id = $1 AND revoked_at IS NULL`, "created_at, id", true, orgID, after, limit)
	var out []APIKey
	err := sqlx.SelectContext(ctx, tx, &out, q, args...)
	return out, err
}

// RevokeAPIKey revokes a live key and returns it.
func (Store) RevokeAPIKey(ctx context.Context, tx sqlx.QueryerContext, orgID, id uuid.UUID) (*APIKey, error) {
	var k APIKey
	err := sqlx.GetContext(ctx, tx, &k, `UPDATE api_keys SET revoked_at = now() WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL
		RETURNING `+keyCols, orgID, id)
	return &k, postgres.Translate(err)
}

// KeyRef is what the pre-tenant API key lookup returns.
type KeyRef struct {
	ID         uuid.UUID `db:"id"`
	OrgID      uuid.UUID `db:"org_id"`
	Role       string    `db:"role"`
	SecretHash []byte    `db:"secret_hash"`
}

// APIKeyByPrefix finds a live key by its public prefix through the
// identity_api_key_by_prefix SECURITY DEFINER function.
func (Store) APIKeyByPrefix(ctx context.Context, db sqlx.QueryerContext, prefix string) (*KeyRef, error) {
	var k KeyRef
	err := sqlx.GetContext(ctx, db, &k, `SELECT id, org_id, role, secret_hash FROM identity_api_key_by_prefix($1)`, prefix)
	return &k, postgres.Translate(err)
}

// TouchAPIKey records a key's use, at most once a minute so busy keys do
// not turn every request into a write.
func (Store) TouchAPIKey(ctx context.Context, tx sqlx.ExecerContext, orgID, id uuid.UUID) error {
	_, err := tx.ExecContext(ctx, `UPDATE api_keys SET last_used_at = now() WHERE org_id = $1 AND id = $2
		AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`, orgID, id)
	return err
}

// AuditEntry is an audit_log row.
type AuditEntry struct {
	ID            uuid.UUID       `db:"id"`
	OrgID         uuid.UUID       `db:"org_id"`
	ActorUserID   *uuid.UUID      `db:"actor_user_id"`
	ActorAPIKeyID *uuid.UUID      `db:"actor_api_key_id"`
	Action        string          `db:"action"`
	TargetType    string          `db:"target_type"`
	TargetID      string          `db:"target_id"`
	IP            string          `db:"ip"`
	UserAgent     string          `db:"user_agent"`
	Details       json.RawMessage `db:"details"`
	CreatedAt     time.Time       `db:"created_at"`
}

// AddAudit inserts e.
func (Store) AddAudit(ctx context.Context, tx sqlx.ExecerContext, e *AuditEntry) error {
	if e.ID == uuid.Nil {
		e.ID, _ = uuid.NewV7()
	}
	if len(e.Details) == 0 {
		e.Details = json.RawMessage(`{}`)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO audit_log (id, org_id, actor_user_id, actor_api_key_id, action, target_type, target_id, ip, user_agent, details)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		e.ID, e.OrgID, e.ActorUserID, e.ActorAPIKeyID, e.Action, e.TargetType, e.TargetID, e.IP, truncate(e.UserAgent, 512), []byte(e.Details))
	return err
}

// Audit lists an organization's audit log, newest first, after the cursor.
func (Store) Audit(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, after *Cursor, limit int) ([]AuditEntry, error) {
	q, args := keyset(`SELECT id, org_id, actor_user_id, actor_api_key_id, action, target_type, target_id, ip, user_agent, details, created_at
		FROM audit_log WHERE org_id = $1`, "created_at, id", true, orgID, after, limit)
	var out []AuditEntry
	err := sqlx.SelectContext(ctx, tx, &out, q, args...)
	return out, err
}

// Cursor is a keyset position: the last row's time and ID.
type Cursor struct {
	At time.Time
	ID uuid.UUID
}

func affectedOne(res interface{ RowsAffected() (int64, error) }, err error) error {
	if err != nil {
		return postgres.Translate(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// keyset completes base (a SELECT whose WHERE binds org_id to $1) into one
// page ordered by key ("time_col, id_col"), ascending or descending, that
// starts after the cursor; limit is clamped to 1..1000.
func keyset(base, key string, desc bool, orgID uuid.UUID, after *Cursor, limit int) (string, []any) {
	if limit <= 0 || limit > 1000 {
		limit = 20
	}
	cmp, dir := ">", ""
	if desc {
		cmp, dir = "<", " DESC"
	}
	col, id, _ := strings.Cut(key, ", ")
	q, args := base, []any{orgID}
	if after != nil {
		q += ` AND (` + key + `) ` + cmp + ` ($2, $3)`
		args = append(args, after.At, after.ID)
	}
	return q + ` ORDER BY ` + col + dir + `, ` + id + dir + ` LIMIT ` + strconv.Itoa(limit), args
}
