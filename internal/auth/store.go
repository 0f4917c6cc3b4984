package auth

import (
	"context"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/audit"
)

// UserStore is the account storage the Service needs; authdb.Store
// implements it on PostgreSQL. Every method runs in the transaction (or
// pool) it is given. Lookups return ErrNotFound for no row; CreateUser and
// UpdateUser return ErrEmailTaken for a used address.
type UserStore interface {
	CreateUser(ctx context.Context, tx sqlx.ExtContext, u *User) error
	UserByEmail(ctx context.Context, tx sqlx.QueryerContext, email string) (*User, error)
	UserByID(ctx context.Context, tx sqlx.QueryerContext, id uuid.UUID, lock bool) (*User, error)
	UpdateUser(ctx context.Context, tx sqlx.ExtContext, u *User) error
	// TouchLogin records a successful login's time (last_login_at).
	TouchLogin(ctx context.Context, tx sqlx.ExecerContext, id uuid.UUID) error
	// Disabled reports whether the user is disabled; ErrNotFound when the
	// account is gone.
	Disabled(ctx context.Context, q sqlx.QueryerContext, id uuid.UUID) (bool, error)
	// Profile reads a user, their memberships and whether activeOrg is
	// suspended in one statement: GET /me is the hottest authenticated read.
	Profile(ctx context.Context, db sqlx.QueryerContext, userID, activeOrg uuid.UUID) (*Profile, error)
	CreateRefreshToken(ctx context.Context, tx sqlx.ExtContext, t *RefreshToken) error
	// RefreshTokenByHash locks the row, so concurrent rotations of one token serialize.
	RefreshTokenByHash(ctx context.Context, tx sqlx.QueryerContext, hash []byte) (*RefreshToken, error)
	// CurrentRefreshToken returns, locked, the newest token of a login that
	// is neither rotated nor revoked (it may have expired); ErrNotFound when
	// the login was revoked or has no such token.
	CurrentRefreshToken(ctx context.Context, tx sqlx.QueryerContext, userID, family uuid.UUID) (*RefreshToken, error)
	MarkRotated(ctx context.Context, tx sqlx.ExecerContext, id uuid.UUID) error
	RevokeFamily(ctx context.Context, tx sqlx.ExecerContext, userID, family uuid.UUID) error
	// RevokeUserSessions revokes every login of the user except the family
	// keep (uuid.Nil: every login).
	RevokeUserSessions(ctx context.Context, tx sqlx.ExecerContext, userID, keep uuid.UUID) error
	CreateEmailToken(ctx context.Context, tx sqlx.ExtContext, t *EmailToken) error
	// VoidEmailTokens makes every unused link token of the user unusable,
	// whatever its purpose.
	VoidEmailTokens(ctx context.Context, tx sqlx.ExecerContext, userID uuid.UUID) error
	// UseEmailToken consumes a live token; ErrNotFound when unknown, used or
	// expired. A row whose token is not minted yet never matches.
	UseEmailToken(ctx context.Context, tx sqlx.QueryerContext, purpose string, hash []byte) (*EmailToken, error)
	// EmailTokenToMail returns row id, locked until tx ends, when its link
	// may still be mailed: not used or voided, not expired, and its token
	// not minted yet, or minted already when again (the send that minted it
	// never recorded SMTP's acceptance); ErrNotFound otherwise.
	EmailTokenToMail(ctx context.Context, tx sqlx.QueryerContext, id uuid.UUID, again bool) (*EmailToken, error)
	// MintEmailToken stores hash as the token of row id, which must be live
	// and unminted (or, when again, may be minted: the new hash replaces the
	// old), and returns the row's purpose; ErrNotFound when it is not such
	// a row.
	MintEmailToken(ctx context.Context, tx sqlx.QueryerContext, id uuid.UUID, hash []byte, again bool) (purpose string, err error)
	ReplaceRecoveryCodes(ctx context.Context, tx sqlx.ExtContext, userID uuid.UUID, hashes [][]byte) error
	UseRecoveryCode(ctx context.Context, tx sqlx.ExecerContext, userID uuid.UUID, hash []byte) (bool, error)
	DeleteRecoveryCodes(ctx context.Context, tx sqlx.ExecerContext, userID uuid.UUID) error
}

// Invite is a live invitation that an acceptance is about to use.
type Invite struct {
	ID    uuid.UUID
	OrgID uuid.UUID
	Email string
	Role  string
}

// Orgs is what accounts need of organizations; *org.Service provides it.
// The dependency runs one way: org imports auth (for these types and the
// token helpers), auth never imports org.
type Orgs interface {
	// CreateWithOwner inserts an organization owned by ownerID and records
	// it in the new organization's audit log, inside tx, leaving tx's tenant
	// set to it.
	CreateWithOwner(ctx context.Context, tx *sqlx.Tx, name string, ownerID uuid.UUID, meta audit.Meta) (uuid.UUID, error)
	// Memberships lists a user's organizations, oldest first; it reads
	// before any tenant is set.
	Memberships(ctx context.Context, q sqlx.QueryerContext, userID uuid.UUID) ([]Membership, error)
	// OpenInvitation finds the live invitation with the token hash, sets tx's
	// tenant to its organization and locks it; ErrNotFound when there is
	// none, tenant.ErrSuspended when its organization is suspended.
	OpenInvitation(ctx context.Context, tx *sqlx.Tx, tokenHash []byte) (*Invite, error)
	// JoinByInvitation makes userID a member with the invitation's role
	// (keeping an existing membership's role), marks the invitation used and
	// audits it; it returns the member's role.
	JoinByInvitation(ctx context.Context, tx *sqlx.Tx, inv *Invite, userID uuid.UUID, meta audit.Meta) (string, error)
}
