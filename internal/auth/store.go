package auth

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/auth/authdb"
	"github.com/keelhq/keel/internal/org/orgdb"
)

// UserStore is the account storage the Service needs; authdb.Store
// implements it on PostgreSQL. Every method runs in the transaction (or
// pool) it is given. Lookups return authdb.ErrNotFound for no row;
// CreateUser and UpdateUser return authdb.ErrEmailTaken for a used address.
type UserStore interface {
	CreateUser(ctx context.Context, tx sqlx.ExtContext, u *authdb.User) error
	UserByEmail(ctx context.Context, tx sqlx.QueryerContext, email string) (*authdb.User, error)
	UserByID(ctx context.Context, tx sqlx.QueryerContext, id uuid.UUID, lock bool) (*authdb.User, error)
	UpdateUser(ctx context.Context, tx sqlx.ExtContext, u *authdb.User) error
	CreateRefreshToken(ctx context.Context, tx sqlx.ExtContext, t *authdb.RefreshToken) error
	// RefreshTokenByHash locks the row, so concurrent rotations of one token serialize.
	RefreshTokenByHash(ctx context.Context, tx sqlx.QueryerContext, hash []byte) (*authdb.RefreshToken, error)
	MarkRotated(ctx context.Context, tx sqlx.ExecerContext, id uuid.UUID) error
	RevokeFamily(ctx context.Context, tx sqlx.ExecerContext, userID, family uuid.UUID) error
	RevokeUserSessions(ctx context.Context, tx sqlx.ExecerContext, userID uuid.UUID) error
	CreateEmailToken(ctx context.Context, tx sqlx.ExtContext, t *authdb.EmailToken) error
	// UseEmailToken consumes a live token; ErrNotFound when unknown, used or expired.
	UseEmailToken(ctx context.Context, tx sqlx.QueryerContext, purpose string, hash []byte) (*authdb.EmailToken, error)
	ReplaceRecoveryCodes(ctx context.Context, tx sqlx.ExtContext, userID uuid.UUID, hashes [][]byte) error
	UseRecoveryCode(ctx context.Context, tx sqlx.ExecerContext, userID uuid.UUID, hash []byte) (bool, error)
	DeleteRecoveryCodes(ctx context.Context, tx sqlx.ExecerContext, userID uuid.UUID) error
}

// OrgStore is the organization storage the Service needs (creating a first
// organization, memberships, invitations being accepted, audit entries);
// orgdb.Store implements it. Tenant methods expect tx to have app.org_id set
// to the organization they name; lookups return orgdb.ErrNotFound.
type OrgStore interface {
	CreateOrg(ctx context.Context, tx sqlx.ExtContext, o *orgdb.Organization) error
	SuspendedAt(ctx context.Context, db sqlx.QueryerContext, id uuid.UUID) (*time.Time, error)
	AddMember(ctx context.Context, tx sqlx.ExtContext, m *orgdb.Membership) error
	Member(ctx context.Context, tx sqlx.QueryerContext, orgID, userID uuid.UUID, lock bool) (*orgdb.Membership, error)
	// UserMemberships reads before any tenant is set (a SECURITY DEFINER lookup).
	UserMemberships(ctx context.Context, db sqlx.QueryerContext, userID uuid.UUID) ([]orgdb.UserMembership, error)
	// InvitationByToken finds a live invitation and sets tx's tenant to its organization.
	InvitationByToken(ctx context.Context, tx *sqlx.Tx, hash []byte) (*orgdb.Invitation, error)
	AcceptInvitation(ctx context.Context, tx sqlx.ExecerContext, orgID, id uuid.UUID) error
	AddAudit(ctx context.Context, tx sqlx.ExecerContext, e *orgdb.AuditEntry) error
}

var (
	_ UserStore = authdb.Store{}
	_ OrgStore  = orgdb.Store{}
)
