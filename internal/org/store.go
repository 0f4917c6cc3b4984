package org

import (
	"context"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/keelhq/keel/internal/auth"
	"github.com/keelhq/keel/internal/auth/authdb"
	"github.com/keelhq/keel/internal/org/orgdb"
)

// Store is the organization storage the Service needs; orgdb.Store
// implements it on PostgreSQL. It includes what auth needs to create an
// organization. Tenant methods expect tx to have app.org_id set to the
// organization they name (RLS hides every other row); lookups, updates and
// deletes of a missing row return orgdb.ErrNotFound.
type Store interface {
	auth.OrgStore
	Org(ctx context.Context, tx sqlx.QueryerContext, id uuid.UUID) (*orgdb.Organization, error)
	RenameOrg(ctx context.Context, tx sqlx.ExtContext, o *orgdb.Organization) error
	Members(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, after *orgdb.Cursor, limit int) ([]orgdb.MemberRow, error)
	// CountOwners locks the owners' rows, so concurrent demotions serialize.
	CountOwners(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID) (int, error)
	SetRole(ctx context.Context, tx sqlx.ExtContext, m *orgdb.Membership) error
	RemoveMember(ctx context.Context, tx sqlx.ExecerContext, orgID, userID uuid.UUID) error
	// PutInvitation replaces a pending invitation of the same address.
	PutInvitation(ctx context.Context, tx sqlx.ExtContext, inv *orgdb.Invitation) error
	Invitation(ctx context.Context, tx sqlx.QueryerContext, orgID, id uuid.UUID, lock bool) (*orgdb.Invitation, error)
	Invitations(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, after *orgdb.Cursor, limit int) ([]orgdb.Invitation, error)
	RefreshInvitation(ctx context.Context, tx sqlx.ExtContext, inv *orgdb.Invitation) error
	DeleteInvitation(ctx context.Context, tx sqlx.ExecerContext, orgID, id uuid.UUID) error
	CreateAPIKey(ctx context.Context, tx sqlx.ExtContext, k *orgdb.APIKey) error
	APIKeys(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, after *orgdb.Cursor, limit int) ([]orgdb.APIKey, error)
	RevokeAPIKey(ctx context.Context, tx sqlx.QueryerContext, orgID, id uuid.UUID) (*orgdb.APIKey, error)
	// APIKeyByPrefix reads before any tenant is set (a SECURITY DEFINER lookup).
	APIKeyByPrefix(ctx context.Context, db sqlx.QueryerContext, prefix string) (*orgdb.KeyRef, error)
	TouchAPIKey(ctx context.Context, tx sqlx.ExecerContext, orgID, id uuid.UUID) error
	Audit(ctx context.Context, tx sqlx.QueryerContext, orgID uuid.UUID, after *orgdb.Cursor, limit int) ([]orgdb.AuditEntry, error)
}

// Users is the part of the account storage the Service reads.
type Users interface {
	UserByEmail(ctx context.Context, tx sqlx.QueryerContext, email string) (*authdb.User, error)
	UserByID(ctx context.Context, tx sqlx.QueryerContext, id uuid.UUID, lock bool) (*authdb.User, error)
}

var (
	_ Store = orgdb.Store{}
	_ Users = authdb.Store{}
)
