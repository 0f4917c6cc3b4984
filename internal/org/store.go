package org

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/tenant"
)

// Store is the organization storage the Service needs; orgdb.Store
// implements it on PostgreSQL. Tenant methods expect tx to have app.org_id
// set to the organization they name (Row Level Security hides every other
// row); lookups, updates and deletes of a missing row return ErrNotFound.
type Store interface {
	CreateOrg(ctx context.Context, tx sqlx.ExtContext, o *Organization) error
	Org(ctx context.Context, tx sqlx.QueryerContext, id uuid.UUID) (*Organization, error)
	RenameOrg(ctx context.Context, tx sqlx.ExtContext, o *Organization) error
	// UserMemberships reads before any tenant is set (a SECURITY DEFINER lookup).
	UserMemberships(ctx context.Context, db sqlx.QueryerContext, userID uuid.UUID) ([]auth.Membership, error)
	// AddMember inserts a membership; ErrConflict when it exists.
	AddMember(ctx context.Context, tx sqlx.ExtContext, orgID, userID uuid.UUID, role string) error
	// Member reads a membership with its user's email and name; lock takes a row lock.
	Member(ctx context.Context, tx sqlx.QueryerContext, orgID, userID uuid.UUID, lock bool) (*Member, error)
	// MemberByEmail finds the member whose account has email.
	MemberByEmail(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, email string) (*Member, error)
	Members(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, after *tenant.Cursor, limit int) ([]Member, error)
	// CountOwners locks the owners' rows, so concurrent demotions serialize.
	CountOwners(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID) (int, error)
	SetRole(ctx context.Context, tx sqlx.ExecerContext, orgID, userID uuid.UUID, role string) error
	RemoveMember(ctx context.Context, tx sqlx.ExecerContext, orgID, userID uuid.UUID) error
	// UserName returns a user's display name (inviters are named in emails).
	UserName(ctx context.Context, tx sqlx.QueryerContext, userID uuid.UUID) (string, error)
	// PendingInvitation returns the pending invitation of email, locked.
	PendingInvitation(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, email string) (*Invitation, error)
	// PutInvitation replaces a pending invitation of the same address.
	PutInvitation(ctx context.Context, tx sqlx.ExtContext, inv *Invitation) error
	Invitation(ctx context.Context, tx sqlx.QueryerContext, orgID, id uuid.UUID, lock bool) (*Invitation, error)
	// InvitationByToken finds a live invitation through a SECURITY DEFINER
	// lookup, sets tx's tenant to its organization and locks it.
	InvitationByToken(ctx context.Context, tx *sqlx.Tx, hash []byte) (*Invitation, error)
	Invitations(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, after *tenant.Cursor, limit int) ([]Invitation, error)
	// RefreshInvitation sets a pending invitation's token hash (nil: not
	// minted, the old link dies) and expiry.
	RefreshInvitation(ctx context.Context, tx sqlx.ExtContext, inv *Invitation) error
	// MintInvitation stores hash as the token of pending invitation id,
	// whose token is not minted yet (or, when again, may be: the new hash
	// replaces the old); ErrNotFound when it is not one.
	MintInvitation(ctx context.Context, tx sqlx.ExecerContext, orgID, id uuid.UUID, hash []byte, again bool) error
	AcceptInvitation(ctx context.Context, tx sqlx.ExecerContext, orgID, id uuid.UUID) error
	// CountSeats counts orgID's members and its pending invitations still
	// live at now: together, the seats the organization uses.
	CountSeats(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, now time.Time) (members, pending int64, err error)
	DeleteInvitation(ctx context.Context, tx sqlx.ExecerContext, orgID, id uuid.UUID) error
	CreateAPIKey(ctx context.Context, tx sqlx.ExtContext, k *APIKey) error
	APIKeys(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, after *tenant.Cursor, limit int) ([]APIKey, error)
	RevokeAPIKey(ctx context.Context, tx sqlx.QueryerContext, orgID, id uuid.UUID) (*APIKey, error)
	// APIKeyByPrefix reads before any tenant is set (a SECURITY DEFINER
	// lookup); the result has ID, OrgID, Role, SecretHash, ExpiresAt and
	// CreatorRole.
	APIKeyByPrefix(ctx context.Context, db sqlx.QueryerContext, prefix string) (*APIKey, error)
	TouchAPIKey(ctx context.Context, tx sqlx.ExecerContext, orgID, id uuid.UUID) error
}
